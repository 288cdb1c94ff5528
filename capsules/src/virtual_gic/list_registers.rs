// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv2-virtualization interrupt backend: the distributor emulated,
//! the CPU interface in hardware, fed through the list registers.
//!
//! For boards whose GIC has the virtualization extensions (qemu-virt, every
//! GIC-400 SoC). The guest's CPU interface window (IPA 0x0801_0000) is
//! mapped by stage 2 onto the GIC's virtual CPU interface (GICV), so the
//! guest acknowledges, ends and masks interrupts (IAR, EOIR, PMR, ...)
//! without an exit. The VM's [`VirtualGic`] stays the distributor and the
//! record of each interrupt's state; the list registers are a cache of it
//! that the hypervisor fills before an entry and reads back when it needs
//! the truth:
//!
//! - *Fill*: the forwarded interrupts (pending, enabled, inactive) go into
//!   free list registers, highest priority first. When more are waiting
//!   than registers are free, the backend asks for the underflow
//!   maintenance interrupt, which comes when the guest has emptied all but
//!   one, so the rest are delivered then.
//! - *Read back* (before a fill, before the guest's distributor is read or
//!   written, when the VM waits): a register the guest has ended is free
//!   again and its interrupt inactive; an active one marks its interrupt
//!   active; one still pending is taken out again (its pending state goes
//!   back to the distributor), so the distributor alone decides what is
//!   delivered next.
//! - *Level-sensitive interrupts* (every device's line) are written with the
//!   end-of-interrupt maintenance request: when the guest ends one whose
//!   line is still high, the maintenance interrupt brings an exit and the
//!   interrupt is delivered again.
//! - *Devices' lines* ([`super::InterruptLine`]): a line that moves marks
//!   the vCPUs stale, and the backend refreshes before the next entry; a
//!   line scheduled to rise is raised here when due, and its deadline is
//!   the alarm this backend asks of the kernel. The backend names no
//!   device.
//! - *The virtual timer* (the guest platform's PPI 11): its physical
//!   interrupt (the CPU's CNTV output, which the board names in
//!   [`HostInterrupts`]) is taken by the hypervisor, which tells this backend
//!   ([`InterruptBackend::physical_interrupt`]). The backend masks the
//!   physical interrupt at the GIC, raises the virtual line, and writes the
//!   interrupt with the end-of-interrupt maintenance request; when the
//!   guest ends it, the maintenance exit lowers the line and unmasks the
//!   physical interrupt, which fires again if the guest's timer is still
//!   due. *Mask and inject*, rather than a list register linked to the
//!   physical interrupt (hardware bit), which would save the maintenance
//!   exit. A first try of the linked form lost timer interrupts (the
//!   timer test guest received 15 of its 200), but it also took pending
//!   entries back out of the list registers when the guest waited, which
//!   breaks the link. A second try, leaving linked entries in place and
//!   with the host's interrupts in Group 1, received all 200 with one exit
//!   each (so QEMU 7.2's GICv2 does forward the guest's deactivation), but
//!   the guest's WFI then completed at once some 400,000 times a run: a
//!   wake-up for an interrupt it could not take yet, not understood in
//!   time. Mask and inject needs nothing of the GIC beyond enable bits. The
//!   mask belongs to the VM: it is lifted while the VM is switched out (so
//!   the next VM's timer can interrupt) and set again when it is switched
//!   back in. Nothing polls CNTV while the VM runs; only a waiting VM's
//!   deadline is computed, to wake it.
//!
//! The context switched with the VM: the list registers, the interface
//! state (GICH_VMCR, GICH_APR) and the timer interrupt's mask.
//!
//! A VM with several vCPUs has one backend per vCPU, each over its own
//! physical CPU's list registers, serving its vCPU's bank of the shared
//! [`VirtualGic`] (its SGIs and PPIs, the timer's PPI included, and the
//! SPIs routed to it). Two more rules come with that:
//!
//! - *SGIs* carry their source vCPU: an SGI's entry holds it in bits 12:10
//!   of [`ListEntry::id`], where GICH_LR has its CPUID field and GICC_IAR
//!   reports it (the chip's list-register driver must write those bits to
//!   GICH_LR.CPUID). One source goes in at a time, the lowest first; the
//!   others stay pending in the distributor and go in once the guest has
//!   ended that one, so no two list registers ever hold the same SGI.
//! - *Kicks*: what one vCPU or a device does to the GIC can give another
//!   vCPU interrupts. The GIC marks that vCPU stale, and its backend
//!   refreshes at its next [`InterruptBackend::before_entry`]; the kernel
//!   learns whose physical CPU to interrupt from
//!   [`InterruptBackend::take_kicks`]. A one-vCPU VM has neither.

use super::software::earliest;
use super::{GicDistributor, VirtualGic, ID_BITS, NUM_INTERRUPTS, SOURCE_SHIFT};
use crate::virtual_timer::TIMER_INTERRUPT;
use core::cell::Cell;
use hyp::capabilities::InterruptRoutingCapability;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::hil::interrupt::InterruptController;
use hyp::hil::list_registers::{
    EntryState, HostInterrupts, InterfaceState, ListEntry, ListRegisters, MAX_LIST_REGISTERS,
};
use hyp::interrupts::{InterruptBackend, Poll, VirtualTimer};
use hyp::trap::AccessSize;

/// How many SGIs there are (ids 0-15).
const NUM_SGIS: u32 = 16;

/// One vCPU's interrupt delivery through its physical CPU's list
/// registers.
pub struct GicV2Backend<'a> {
    gic: &'a VirtualGic,
    /// The vCPU of the VM this backend serves.
    vcpu: usize,
    list_registers: &'a dyn ListRegisters,
    host: &'a dyn InterruptController,
    /// The host GIC's maintenance and virtual timer interrupts.
    host_interrupts: HostInterrupts,
    /// How many list registers are used (the GIC's count, at most
    /// [`MAX_LIST_REGISTERS`]).
    count: usize,
    /// The interrupt each list register was last given, an SGI's source
    /// in bits 12:10 (the registers themselves only say what state it is
    /// in).
    held: Cell<[Option<u32>; MAX_LIST_REGISTERS]>,
    /// The list registers while the VM is switched out.
    saved: Cell<[ListEntry; MAX_LIST_REGISTERS]>,
    /// GICH_VMCR and GICH_APR while the VM is switched out.
    interface: Cell<InterfaceState>,
    /// Whether the timer's physical interrupt is masked for this VM (its
    /// virtual interrupt is with the guest).
    timer_masked: Cell<bool>,
    /// Whether more interrupts wait than list registers are free.
    waiting: Cell<bool>,
    /// Whether the VM is switched in.
    loaded: Cell<bool>,
    /// Whether the distributor may have changed since the list registers
    /// were last filled (the guest accessed it, a restart); a device's
    /// line marks the GIC stale instead.
    dirty: Cell<bool>,
    /// Interrupts in list registers whose pending state came from a latch
    /// (an edge, GICD_ISPENDR), not only from a line.
    from_latch: Cell<u64>,
}

impl core::fmt::Debug for GicV2Backend<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GicV2Backend")
            .field("vcpu", &self.vcpu)
            .field("held", &self.held.get())
            .field("loaded", &self.loaded.get())
            .finish()
    }
}

impl<'a> GicV2Backend<'a> {
    /// A backend for vCPU `vcpu` of the VM whose distributor is `gic`,
    /// delivering through `list_registers` (those of the physical CPU the
    /// vCPU runs on); `host` is the physical GIC, whose interrupts
    /// `host_interrupts` are the backend's: the maintenance interrupt, and
    /// the virtual timer's, which it masks and injects into this vCPU (a
    /// routing of a physical interrupt, which only a board may set up:
    /// `_routing`).
    ///
    /// # Panics
    ///
    /// Unless `vcpu` is one of `gic`'s vCPUs (a board error).
    pub fn new(
        gic: &'a VirtualGic,
        vcpu: usize,
        list_registers: &'a dyn ListRegisters,
        host: &'a dyn InterruptController,
        host_interrupts: HostInterrupts,
        _routing: &dyn InterruptRoutingCapability,
    ) -> Self {
        assert!(vcpu < gic.vcpus(), "no such vCPU in this GIC");
        GicV2Backend {
            gic,
            vcpu,
            list_registers,
            host,
            host_interrupts,
            count: list_registers.count().min(MAX_LIST_REGISTERS),
            held: Cell::new([None; MAX_LIST_REGISTERS]),
            saved: Cell::new([ListEntry::FREE; MAX_LIST_REGISTERS]),
            interface: Cell::new(InterfaceState::default()),
            timer_masked: Cell::new(false),
            waiting: Cell::new(false),
            loaded: Cell::new(false),
            dirty: Cell::new(true),
            from_latch: Cell::new(0),
        }
    }

    /// The guest's distributor window as this backend's vCPU sees it,
    /// reading back the list registers before each access so that it sees
    /// (and changes) the whole state.
    pub fn distributor(&'a self) -> GicV2Distributor<'a> {
        GicV2Distributor { backend: self }
    }

    /// The vCPU this backend serves.
    pub fn vcpu(&self) -> usize {
        self.vcpu
    }

    /// Whether the VM is switched in.
    pub fn is_loaded(&self) -> bool {
        self.loaded.get()
    }

    /// Something outside this backend changed the distributor's state:
    /// look again before the next entry. The backend's own sources (the
    /// guest's distributor accesses, the timer and maintenance interrupts)
    /// need no such call, and neither do devices' lines nor, with several
    /// vCPUs, anything that gives this vCPU an interrupt through the GIC
    /// (they mark the vCPU stale).
    pub fn invalidate(&self) {
        self.dirty.set(true);
    }

    fn read_entry(&self, n: usize) -> ListEntry {
        if self.loaded.get() {
            self.list_registers.read(n)
        } else {
            self.saved.get()[n]
        }
    }

    fn write_entry(&self, n: usize, entry: ListEntry) {
        if self.loaded.get() {
            self.list_registers.write(n, entry);
        } else {
            let mut saved = self.saved.get();
            saved[n] = entry;
            self.saved.set(saved);
        }
    }

    /// Reads the list registers back into the distributor: ended
    /// interrupts become inactive, acknowledged ones active, and ones the
    /// guest has not acknowledged are taken out again (their pending state
    /// returns to the distributor). Afterwards only active interrupts are
    /// in list registers.
    pub fn read_back(&self) {
        self.read_back_pending();
    }

    /// [`Self::read_back`]; returns whether a pending interrupt went back
    /// to the distributor (it must be filled in again).
    fn read_back_pending(&self) -> bool {
        if self.held.get() == [None; MAX_LIST_REGISTERS] {
            // Nothing in the list registers: nothing to read.
            return false;
        }
        // An SPI deactivated here can be forwarded to another vCPU now.
        // What goes back to this vCPU's own state is for the callers to
        // fill in again.
        self.gic.tracked_by(self.vcpu, || self.read_back_entries())
    }

    fn read_back_entries(&self) -> bool {
        let vcpu = self.vcpu;
        let mut returned = false;
        let mut held = self.held.get();
        for (n, slot) in held.iter_mut().enumerate().take(self.count) {
            let Some(tag) = *slot else { continue };
            let id = tag & ID_BITS;
            let entry = self.read_entry(n);
            match entry.state {
                EntryState::Invalid => {
                    self.from_latch.set(self.from_latch.get() & !(1 << id));
                    self.gic.set_active(vcpu, id, false);
                    if entry.notify_end {
                        // An ended entry that asked for the maintenance
                        // interrupt keeps raising it until it is cleared.
                        self.write_entry(n, ListEntry::FREE);
                    }
                    if id == TIMER_INTERRUPT {
                        // The guest ended the timer's interrupt: the line
                        // is low until the physical one fires again.
                        self.gic.drive_private_line(vcpu, id, false);
                        self.unmask_timer();
                    }
                    *slot = None;
                }
                EntryState::Active => {
                    // Acknowledged: its latch is spent.
                    self.from_latch.set(self.from_latch.get() & !(1 << id));
                    self.gic.set_active(vcpu, id, true);
                }
                EntryState::PendingActive => {
                    self.gic.set_active(vcpu, id, true);
                    self.return_pending(tag);
                    returned = true;
                    self.write_entry(
                        n,
                        ListEntry {
                            state: EntryState::Active,
                            ..entry
                        },
                    );
                }
                EntryState::Pending => {
                    self.return_pending(tag);
                    returned = true;
                    self.write_entry(n, ListEntry::FREE);
                    *slot = None;
                }
            }
        }
        self.held.set(held);
        returned
    }

    /// An interrupt's pending state comes back from a list register (whose
    /// entry is `tag`) to the distributor: an SGI's from its source; latched
    /// for an edge-triggered one and for one made pending by a latch
    /// (GICD_ISPENDR); a level-sensitive one pending by its line only is
    /// pending while the line is high, and latching it would deliver it
    /// again after the line has dropped.
    fn return_pending(&self, tag: u32) {
        let id = tag & ID_BITS;
        if id < NUM_SGIS {
            self.gic.add_sgi_source(self.vcpu, id, tag >> SOURCE_SHIFT);
            return;
        }
        let latch = 1u64 << id;
        if self.gic.is_edge(self.vcpu, id) || self.from_latch.get() & latch != 0 {
            self.gic.set_latched(self.vcpu, id);
        }
        self.from_latch.set(self.from_latch.get() & !latch);
    }

    /// Fills free list registers with the interrupts forwarded to this
    /// vCPU, highest priority first; returns whether some had to wait. An
    /// SGI goes in from one source, the lowest pending; one already in a
    /// list register does not go in again until it leaves.
    fn fill(&self) -> bool {
        let vcpu = self.vcpu;
        let mut candidates = self.gic.forwarded(vcpu);
        if candidates == 0 {
            return false;
        }
        let mut held = self.held.get();
        for tag in held.iter().flatten() {
            candidates &= !(1u64 << (tag & ID_BITS));
        }
        for (n, slot) in held.iter_mut().enumerate().take(self.count) {
            if candidates == 0 {
                break;
            }
            if slot.is_some() {
                continue;
            }
            let Some((id, priority)) = self.gic.best_of(vcpu, candidates) else {
                break;
            };
            candidates &= !(1u64 << id);
            // The pending state moves into the list register.
            let tag = if id < NUM_SGIS {
                self.gic
                    .take_sgi_source(vcpu, id)
                    .map_or(id, |source| id | (source << SOURCE_SHIFT))
            } else {
                if self.gic.is_latched(vcpu, id) {
                    self.from_latch.set(self.from_latch.get() | 1 << id);
                }
                self.gic.clear_latched(vcpu, id);
                id
            };
            let mut entry = ListEntry::pending(tag, priority);
            // Level-sensitive (the timer included): hear of the end.
            entry.notify_end = !self.gic.is_edge(vcpu, id);
            self.write_entry(n, entry);
            *slot = Some(tag);
        }
        self.held.set(held);
        candidates != 0
    }

    /// Reads back, fills, and asks for the underflow interrupt when
    /// interrupts are left waiting.
    fn refresh(&self) {
        self.dirty.set(false);
        self.read_back();
        // Everything forwarded to this vCPU is presented now: it needs no
        // kick, and is not stale.
        self.gic.seen(self.vcpu);
        let waiting = self.fill();
        if waiting != self.waiting.replace(waiting) && self.loaded.get() {
            self.list_registers.notify_underflow(waiting);
        }
    }

    /// The common case of a timer interrupt, without a full refresh: when
    /// nothing else waits for a list register (so the priority order
    /// holds), the guest's distributor forwards it and a register is free,
    /// writes it there. Returns whether it did.
    fn inject_timer(&self) -> bool {
        if self.waiting.get()
            || self.dirty.get()
            || self.gic.is_stale(self.vcpu)
            || !self.gic.forwards(self.vcpu, TIMER_INTERRUPT)
        {
            return false;
        }
        let mut held = self.held.get();
        let mut free = None;
        for (n, slot) in held.iter().enumerate().take(self.count) {
            match slot {
                Some(TIMER_INTERRUPT) => return false,
                None if free.is_none() => free = Some(n),
                _ => {}
            }
        }
        let Some(n) = free else {
            return false;
        };
        let priority = self.gic.priority(self.vcpu, TIMER_INTERRUPT);
        let mut entry = ListEntry::pending(TIMER_INTERRUPT, priority);
        entry.notify_end = true;
        self.write_entry(n, entry);
        held[n] = Some(TIMER_INTERRUPT);
        self.held.set(held);
        true
    }

    /// Lifts this VM's mask of the timer's physical interrupt.
    fn unmask_timer(&self) {
        if self.timer_masked.replace(false) && self.loaded.get() {
            self.host.enable(self.host_interrupts.virtual_timer);
        }
    }

    /// The guest's priority mask now.
    fn priority_mask(&self) -> u8 {
        if self.loaded.get() {
            self.list_registers.priority_mask()
        } else {
            self.list_registers
                .saved_priority_mask(&self.interface.get())
        }
    }
}

impl InterruptBackend for GicV2Backend<'_> {
    /// The list registers are all free while no VM is switched in (every
    /// `switch_out` empties them), so only this VM's occupied ones are
    /// written.
    fn switch_in(&self) {
        self.loaded.set(true);
        for (n, entry) in self.saved.get().iter().enumerate().take(self.count) {
            if !entry.is_free() {
                self.list_registers.write(n, *entry);
            }
        }
        self.list_registers
            .enable(&self.interface.get(), self.waiting.get());
        if self.timer_masked.get() {
            self.host.disable(self.host_interrupts.virtual_timer);
        }
    }

    fn switch_out(&self) {
        // Only registers this backend filled can hold anything.
        let mut saved = [ListEntry::FREE; MAX_LIST_REGISTERS];
        let held = self.held.get();
        for (n, entry) in saved.iter_mut().enumerate().take(self.count) {
            if held[n].is_some() {
                *entry = self.list_registers.read(n);
                self.list_registers.write(n, ListEntry::FREE);
            }
        }
        self.saved.set(saved);
        self.interface.set(self.list_registers.disable());
        if self.timer_masked.get() {
            // The next VM's timer must be able to interrupt.
            self.host.enable(self.host_interrupts.virtual_timer);
        }
        self.loaded.set(false);
    }

    /// This backend knows what can change its VM's interrupts (its
    /// distributor window, its physical interrupts, a restart, and the
    /// GIC's stale mark: a device's line moved, or another vCPU gave this
    /// one an interrupt) and refills only then. The kernel calls it only
    /// after an exit that can have changed something
    /// ([`Self::polls_every_entry`] is false): a hypercall exit does not
    /// come here at all, and the timer's own interrupt, injected at once,
    /// costs three flag checks. A device line scheduled to rise is raised
    /// here once due, and until then its deadline is the alarm asked for
    /// (the timer interrupts physically: it needs none).
    fn before_entry(
        &self,
        _timer: &dyn VirtualTimer,
        now: &dyn Fn() -> u64,
        _changed: bool,
    ) -> Option<u64> {
        let lines_due = match self.gic.next_deadline() {
            None => None,
            Some(_) => self.gic.raise_due(now()),
        };
        if self.dirty.get() || self.gic.is_stale(self.vcpu) {
            self.refresh();
        }
        lines_due
    }

    /// Only after a change: the timer interrupts physically.
    fn polls_every_entry(&self) -> bool {
        false
    }

    fn poll(&self, timer: &dyn VirtualTimer, now: u64) -> Poll {
        let lines_due = match self.gic.next_deadline() {
            None => None,
            Some(_) => self.gic.raise_due(now),
        };
        self.read_back();
        let mut candidates = self.gic.forwarded(self.vcpu);
        let mut wake_at = lines_due;
        if VirtualTimerState::control_armed(timer.virtual_timer_control()) {
            let state = timer.virtual_timer();
            if state.fired(now) {
                // Due: its physical interrupt is pending (or will be once
                // the VM's timer is in the CPU again).
                if self.gic.forwards(self.vcpu, TIMER_INTERRUPT) {
                    candidates |= 1 << TIMER_INTERRUPT;
                }
            } else {
                wake_at = earliest(wake_at, Some(state.deadline));
            }
        }
        // What was read back is filled in again before the next entry.
        self.dirty.set(true);
        let mask = self.priority_mask();
        let pending = self
            .gic
            .best_of(self.vcpu, candidates)
            .is_some_and(|(_, priority)| priority < mask);
        // What was read back goes in again when the VM next runs (the
        // kernel marks a new slice as changed).
        Poll {
            pending,
            wake_at: if pending { None } else { wake_at },
        }
    }

    fn physical_interrupt(&self, id: u32) -> bool {
        if !self.loaded.get() {
            // Forwarded lines concern the VM switched in only.
            return false;
        }
        let HostInterrupts {
            maintenance,
            virtual_timer,
        } = self.host_interrupts;
        match id {
            // The maintenance interrupt is a level: it stays raised while
            // an ended entry that asked for it is in a list register, or
            // while they underflow with interrupts waiting. Read back and
            // refill now, which lowers it.
            _ if id == maintenance => {
                self.refresh();
                true
            }
            _ if id == virtual_timer => {
                // A list register holding the previous one, which the
                // guest has ended since, is read back first: reading it
                // back later would lower the line this interrupt raises.
                // Interrupts still pending come out of their registers
                // then, and go in again before the next entry.
                if self.read_back_pending() {
                    self.dirty.set(true);
                }
                // Masked until the guest ends the virtual interrupt (the
                // physical line stays high until the guest reprograms its
                // timer).
                self.host.disable(virtual_timer);
                self.timer_masked.set(true);
                // This vCPU's own line: the interrupt is presented right
                // here, no other vCPU needs to hear of it.
                self.gic
                    .drive_private_line(self.vcpu, TIMER_INTERRUPT, true);
                if !self.inject_timer() {
                    self.dirty.set(true);
                }
                true
            }
            _ => false,
        }
    }

    fn reset(&self) {
        for n in 0..self.count {
            self.write_entry(n, ListEntry::FREE);
        }
        self.held.set([None; MAX_LIST_REGISTERS]);
        self.from_latch.set(0);
        self.gic.reset();
        self.gic
            .set_private_level(self.vcpu, TIMER_INTERRUPT, false);
        self.waiting.set(false);
        self.dirty.set(true);
        self.unmask_timer();
        if self.loaded.get() {
            self.list_registers
                .enable(&InterfaceState::default(), false);
        } else {
            self.interface.set(InterfaceState::default());
        }
    }

    /// The other vCPUs the GIC says need a kick. This vCPU's own mark
    /// goes too: it stays stale, so this backend refreshes before its
    /// next entry by itself.
    fn take_kicks(&self) -> u32 {
        self.gic.take_kicks() & !(1 << self.vcpu)
    }
}

use hyp::interrupts::VirtualTimerState;

/// The guest's distributor window for one vCPU of a VM with the GICv2
/// backend: every access first reads back that vCPU's list registers
/// (`GICD_ISPENDR` and `GICD_ISACTIVER` must see interrupts the guest
/// holds; a write may change them), then goes to the vCPU's view of the
/// distributor; the kernel refills them before the next entry.
#[derive(Clone, Copy, Debug)]
pub struct GicV2Distributor<'a> {
    backend: &'a GicV2Backend<'a>,
}

impl GicV2Distributor<'_> {
    /// The distributor as the backend's vCPU sees it.
    fn view(&self) -> GicDistributor<'_> {
        GicDistributor {
            gic: self.backend.gic,
            vcpu: self.backend.vcpu,
        }
    }
}

impl MmioDevice for GicV2Distributor<'_> {
    fn name(&self) -> &'static str {
        super::DISTRIBUTOR.name
    }

    /// The VM's distributor state back to reset (its list registers and
    /// CPU interface are the backend's: `InterruptBackend::reset`).
    fn reset(&self) -> Result<(), NotResettable> {
        self.backend.gic.reset();
        Ok(())
    }

    fn base(&self) -> u64 {
        u64::from(super::DISTRIBUTOR.base)
    }

    fn size(&self) -> u64 {
        u64::from(super::DISTRIBUTOR.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        self.backend.read_back();
        self.backend.invalidate();
        self.view().read(offset, size)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        self.backend.read_back();
        self.backend.invalidate();
        let result = self.view().write(offset, size, value);
        // The access traps on the vCPU's own CPU, which refreshes before
        // it enters again (dirty): its own marks (an SGI to itself, say)
        // call for no kick.
        self.backend.gic.seen(self.backend.vcpu);
        result
    }
}

const _: () = assert!(TIMER_INTERRUPT < NUM_INTERRUPTS);

#[cfg(test)]
mod tests {
    use super::*;
    use hyp::hil::interrupt::Acknowledged;
    use hyp::interrupts::VirtualTimerState;
    use hyp::trap::AccessSize::Word;

    /// The fake host GIC's interrupts, as a board would name them: other
    /// ids than any real GICv2's, so that a backend that took them from
    /// anywhere but its board would fail.
    const HOST: HostInterrupts = HostInterrupts {
        maintenance: 20,
        virtual_timer: 22,
    };
    const MAINTENANCE_INTERRUPT: u32 = HOST.maintenance;
    const PHYSICAL_TIMER_INTERRUPT: u32 = HOST.virtual_timer;

    /// Declares a switched-in backend over fresh fakes: the GICH `$gich`,
    /// the host GIC `$host`, the VM's distributor `$gic`.
    macro_rules! fixture {
        ($gich:ident, $host:ident, $gic:ident, $backend:ident) => {
            let $gich = FakeGich::default();
            let $host = FakeHost::default();
            let $gic = VirtualGic::new();
            let $backend = GicV2Backend::new(
                &$gic,
                0,
                &$gich,
                &$host,
                HOST,
                &hyp::capabilities::testing::TestCapability,
            );
            $backend.switch_in();
        };
    }

    /// A GICH with four list registers; the tests play the guest by
    /// changing entries' states as a virtual CPU interface would.
    #[derive(Default)]
    struct FakeGich {
        entries: Cell<[ListEntry; 4]>,
        mask: Cell<u8>,
        on: Cell<bool>,
        underflow: Cell<bool>,
    }

    impl FakeGich {
        fn entry(&self, n: usize) -> ListEntry {
            self.entries.get()[n]
        }
        fn set_state(&self, n: usize, state: EntryState) {
            let mut entries = self.entries.get();
            entries[n].state = state;
            self.entries.set(entries);
        }
        /// What the guest would acknowledge: the highest-priority pending
        /// entry below the mask.
        fn ids(&self) -> std::vec::Vec<u32> {
            self.entries
                .get()
                .iter()
                .filter(|entry| !entry.is_free())
                .map(|entry| entry.id)
                .collect()
        }
    }

    extern crate std;

    impl ListRegisters for FakeGich {
        fn count(&self) -> usize {
            4
        }
        fn read(&self, n: usize) -> ListEntry {
            self.entry(n)
        }
        fn write(&self, n: usize, entry: ListEntry) {
            let mut entries = self.entries.get();
            entries[n] = entry;
            self.entries.set(entries);
        }
        fn priority_mask(&self) -> u8 {
            self.mask.get()
        }
        fn saved_priority_mask(&self, state: &InterfaceState) -> u8 {
            state.control as u8
        }
        fn enable(&self, state: &InterfaceState, notify_underflow: bool) {
            self.on.set(true);
            self.mask.set(state.control as u8);
            self.underflow.set(notify_underflow);
        }
        fn notify_underflow(&self, on: bool) {
            self.underflow.set(on);
        }
        fn disable(&self) -> InterfaceState {
            self.on.set(false);
            InterfaceState {
                control: u32::from(self.mask.get()),
                active_priorities: 0,
            }
        }
    }

    /// The host GIC: enables and active states.
    #[derive(Default)]
    struct FakeHost {
        enabled: Cell<u64>,
        active: Cell<u64>,
    }

    impl FakeHost {
        fn is_enabled(&self, line: u32) -> bool {
            self.enabled.get() & (1 << line) != 0
        }
    }

    impl InterruptController for FakeHost {
        fn enable(&self, line: u32) {
            self.enabled.set(self.enabled.get() | 1 << line);
        }
        fn disable(&self, line: u32) {
            self.enabled.set(self.enabled.get() & !(1 << line));
        }
        fn acknowledge(&self) -> Option<Acknowledged> {
            None
        }
        fn is_active(&self, line: u32) -> bool {
            self.active.get() & (1 << line) != 0
        }
        fn set_active(&self, line: u32, active: bool) {
            let others = self.active.get() & !(1 << line);
            self.active.set(others | (u64::from(active) << line));
        }
    }

    struct Timer(VirtualTimerState);
    impl VirtualTimer for Timer {
        fn virtual_timer_control(&self) -> u32 {
            self.0.control
        }
        fn virtual_timer_deadline(&self) -> u64 {
            self.0.deadline
        }
    }
    const OFF: Timer = Timer(VirtualTimerState {
        control: 0,
        deadline: 0,
    });

    /// The guest's distributor enabled, with `ids` enabled at priorities
    /// 0x80 + 8 * their position.
    fn guest_enables(gic: &VirtualGic, ids: &[u32]) {
        let gicd = gic.distributor();
        gicd.write(0x000, Word, 1).unwrap();
        for (k, &id) in ids.iter().enumerate() {
            gicd.write(0x100 + u64::from(id / 32) * 4, Word, 1 << (id % 32))
                .unwrap();
            gicd.write(0x400 + u64::from(id), AccessSize::Byte, 0x80 + 8 * k as u32)
                .unwrap();
        }
    }

    /// An entry after the tests drove the distributor's lines directly.
    fn entry(backend: &GicV2Backend) {
        backend.invalidate();
        backend.before_entry(&OFF, &|| 0, true);
    }

    #[test]
    fn pending_interrupts_fill_list_registers_by_priority_and_the_rest_wait_for_underflow() {
        fixture!(gich, host, gic, backend);
        let spis = [40, 41, 42, 43, 44, 45];
        // Earlier in the list, more urgent: 45 is the least urgent.
        guest_enables(&gic, &spis);
        for id in spis {
            gic.trigger(id);
        }
        entry(&backend);
        assert_eq!(gich.ids(), [40, 41, 42, 43], "the four most urgent");
        assert_eq!(gich.entry(0).priority, 0x80);
        assert_eq!(gich.entry(0).state, EntryState::Pending);
        assert!(gich.underflow.get(), "two wait: underflow requested");
        // The guest acknowledges and ends three; the maintenance interrupt
        // brings an exit and the waiting two go in.
        for n in 0..3 {
            gich.set_state(n, EntryState::Invalid);
        }
        gich.set_state(3, EntryState::Active);
        entry(&backend);
        let mut ids = gich.ids();
        ids.sort_unstable();
        assert_eq!(ids, [43, 44, 45]);
        assert!(!gich.underflow.get(), "nothing waits any more");
        assert_eq!(
            gic.distributor().read(0x304, Word),
            Ok(1 << (43 - 32)),
            "GICD_ISACTIVER1: 43 is active"
        );
        assert_eq!(
            gic.distributor().read(0x204, Word).map(|w| w & (1 << 8)),
            Ok(0)
        );
    }

    #[test]
    fn a_level_interrupt_asks_for_the_end_and_is_delivered_again_while_high() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[50]);
        gic.set_level(50, true);
        entry(&backend);
        assert_eq!(gich.entry(0).id, 50);
        assert!(
            gich.entry(0).notify_end,
            "level: end-of-interrupt maintenance"
        );
        // The guest ends it; the maintenance interrupt is a level that
        // stays up while the ended entry is there: the backend reads back
        // and refills when it is taken, before any entry.
        gich.set_state(0, EntryState::Invalid);
        assert!(backend.physical_interrupt(MAINTENANCE_INTERRUPT));
        assert_eq!(gich.entry(0).state, EntryState::Pending, "line still high");
        gich.set_state(0, EntryState::Invalid);
        gic.set_level(50, false);
        entry(&backend);
        assert!(gich.ids().is_empty());
        // Taken back while pending (the guest's distributor is read), a
        // level interrupt whose line then drops is not delivered again.
        gic.set_level(50, true);
        entry(&backend);
        assert_eq!(gich.entry(0).state, EntryState::Pending);
        backend.distributor().read(0x204, Word).unwrap();
        gic.set_level(50, false);
        entry(&backend);
        assert!(gich.ids().is_empty(), "the line dropped: nothing pending");
        // An edge interrupt does not ask.
        gic.distributor().write(0xc0c, Word, 0b10 << 4).unwrap(); // ICFGR3: 50 edge
        gic.trigger(50);
        entry(&backend);
        assert!(!gich.entry(0).notify_end);
    }

    #[test]
    fn the_timer_is_masked_until_the_guest_ends_it_and_the_mask_follows_the_vm() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[TIMER_INTERRUPT]);
        host.enable(PHYSICAL_TIMER_INTERRUPT);
        // The platform took the timer's physical interrupt.
        assert!(backend.physical_interrupt(PHYSICAL_TIMER_INTERRUPT));
        assert!(!backend.physical_interrupt(40), "not the backend's");
        assert!(!host.is_enabled(PHYSICAL_TIMER_INTERRUPT), "masked");
        entry(&backend);
        assert_eq!(gich.entry(0).id, TIMER_INTERRUPT);
        assert!(gich.entry(0).notify_end, "level: the end is heard");
        // Switched out mid-interrupt: the next VM's timer is unmasked; the
        // mask comes back with this VM.
        gich.set_state(0, EntryState::Active);
        backend.switch_out();
        assert!(host.is_enabled(PHYSICAL_TIMER_INTERRUPT));
        assert!(gich.ids().is_empty() && !gich.on.get());
        assert!(
            !backend.physical_interrupt(PHYSICAL_TIMER_INTERRUPT),
            "not loaded"
        );
        backend.switch_in();
        assert!(!host.is_enabled(PHYSICAL_TIMER_INTERRUPT));
        assert_eq!(gich.entry(0).state, EntryState::Active);
        // The guest ends it: the line is low and the physical interrupt
        // unmasked, to fire again if the timer is still due.
        gich.set_state(0, EntryState::Invalid);
        entry(&backend);
        assert!(gich.ids().is_empty());
        assert!(host.is_enabled(PHYSICAL_TIMER_INTERRUPT));
        assert_eq!(
            gic.distributor().read(0x200, Word).map(|w| w >> 27 & 1),
            Ok(0)
        );
    }

    #[test]
    fn a_timer_interrupt_goes_straight_into_a_free_list_register_and_other_exits_cost_no_refresh() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[TIMER_INTERRUPT]);
        entry(&backend);
        assert!(backend.physical_interrupt(PHYSICAL_TIMER_INTERRUPT));
        assert_eq!(gich.entry(0).id, TIMER_INTERRUPT, "written at once");
        assert_eq!(gich.entry(0).priority, 0x80);
        // An exit that changed nothing the backend owns (a hypercall, the
        // timer's own interrupt) leaves the list registers alone, even
        // when the kernel says something changed: the guest has taken the
        // interrupt meanwhile and the register says so.
        gich.set_state(0, EntryState::Active);
        backend.before_entry(&OFF, &|| 0, true);
        assert_eq!(gich.entry(0).state, EntryState::Active);
        // The guest's distributor accesses are the backend's business.
        backend.distributor().write(0x200, Word, 0).unwrap();
        gich.set_state(0, EntryState::Invalid);
        backend.before_entry(&OFF, &|| 0, false);
        assert!(
            gich.ids().is_empty(),
            "read back after a distributor access"
        );
        assert!(host.is_enabled(PHYSICAL_TIMER_INTERRUPT), "ended: unmasked");
    }

    #[test]
    fn interrupts_the_timer_path_reads_back_pending_go_in_again_before_the_next_entry() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[40, TIMER_INTERRUPT]);
        gic.trigger(40);
        entry(&backend);
        assert_eq!(gich.ids(), [40]);
        // Not acknowledged yet when the timer fires: reading back takes 40
        // out of its list register, and it must go in again.
        assert!(backend.physical_interrupt(PHYSICAL_TIMER_INTERRUPT));
        backend.before_entry(&OFF, &|| 0, true);
        let mut ids = gich.ids();
        ids.sort_unstable();
        assert_eq!(ids, [TIMER_INTERRUPT, 40]);
    }

    #[test]
    fn a_waiting_vm_wakes_for_unmasked_interrupts_and_at_its_timer_deadline() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[TIMER_INTERRUPT, 40]);
        gich.mask.set(0xf0);
        let armed = Timer(VirtualTimerState {
            control: VirtualTimerState::ENABLE,
            deadline: 500,
        });
        assert_eq!(
            backend.poll(&armed, 100),
            Poll {
                pending: false,
                wake_at: Some(500)
            }
        );
        assert!(backend.poll(&armed, 500).pending, "due: pending");
        // A pending SPI wakes it, unless the guest's priority mask hides it.
        gic.trigger(40);
        assert!(backend.poll(&OFF, 0).pending);
        gich.mask.set(0x80);
        assert!(!backend.poll(&OFF, 0).pending, "masked by GICV_PMR");
        // Switched out, the saved mask counts.
        backend.switch_out();
        assert!(!backend.poll(&OFF, 0).pending);
    }

    #[test]
    fn the_guests_distributor_sees_interrupts_held_in_list_registers_and_reset_empties_them() {
        fixture!(gich, host, gic, backend);
        guest_enables(&gic, &[40]);
        gic.trigger(40);
        entry(&backend);
        assert_eq!(gich.ids(), [40]);
        // Not acknowledged yet: GICD_ISPENDR1 shows it pending (read back
        // from the list register), and a GICD_ICPENDR1 write removes it.
        let gicd = backend.distributor();
        assert_eq!(gicd.read(0x204, Word), Ok(1 << 8));
        gicd.write(0x284, Word, 1 << 8).unwrap();
        entry(&backend);
        assert!(gich.ids().is_empty(), "cleared: not delivered");
        gic.trigger(40);
        entry(&backend);
        host.enable(PHYSICAL_TIMER_INTERRUPT);
        backend.physical_interrupt(PHYSICAL_TIMER_INTERRUPT);
        backend.reset();
        assert!(gich.ids().is_empty());
        assert!(
            host.is_enabled(PHYSICAL_TIMER_INTERRUPT),
            "the mask is lifted"
        );
        assert_eq!(gicd.read(0x000, Word), Ok(0), "distributor reset");
    }

    /// Declares a GIC of three vCPUs `$gic` and a switched-in backend per
    /// vCPU (`$backends[n]`, over the GICH `$gichs[n]`), sharing the host
    /// GIC `$host`.
    macro_rules! smp_fixture {
        ($gichs:ident, $host:ident, $gic:ident, $backends:ident) => {
            let $gichs: [FakeGich; 3] = Default::default();
            let $host = FakeHost::default();
            let $gic = VirtualGic::with_vcpus(3);
            let $backends: [GicV2Backend; 3] = core::array::from_fn(|vcpu| {
                GicV2Backend::new(
                    &$gic,
                    vcpu,
                    &$gichs[vcpu],
                    &$host,
                    HOST,
                    &hyp::capabilities::testing::TestCapability,
                )
            });
            for backend in &$backends {
                backend.switch_in();
            }
            $gic.distributor().write(0x000, Word, 1).unwrap();
        };
    }

    /// An SGI's list register entry id: the SGI and its source vCPU.
    fn sgi_entry(sgi: u32, source: u32) -> u32 {
        sgi | source << 10
    }

    #[test]
    #[should_panic(expected = "no such vCPU")]
    fn a_backend_for_a_missing_vcpu_is_a_board_error() {
        let (gich, host, gic) = (FakeGich::default(), FakeHost::default(), VirtualGic::new());
        let capability = hyp::capabilities::testing::TestCapability;
        GicV2Backend::new(&gic, 1, &gich, &host, HOST, &capability);
    }

    #[test]
    fn an_sgi_goes_in_with_its_source_and_its_sources_one_after_another() {
        smp_fixture!(gichs, host, gic, backends);
        // vCPU 0's guest gives SGI 3 priority 0x40 in its bank.
        backends[0]
            .distributor()
            .write(0x403, AccessSize::Byte, 0x40)
            .unwrap();
        // vCPUs 2 and 1 send it to vCPU 0.
        backends[2]
            .distributor()
            .write(0xf00, Word, 0x0001_0003)
            .unwrap();
        backends[1]
            .distributor()
            .write(0xf00, Word, 0x0001_0003)
            .unwrap();
        backends[0].before_entry(&OFF, &|| 0, false);
        assert_eq!(gichs[0].ids(), [sgi_entry(3, 1)], "source 1 first, alone");
        assert_eq!(gichs[0].entry(0).priority, 0x40);
        assert!(!gichs[0].entry(0).notify_end, "SGIs are edges");
        // Taken back out unacknowledged, it goes in again from the same
        // source.
        let gicd = backends[0].distributor();
        assert_eq!(gicd.read(0xf23, AccessSize::Byte), Ok(0b110));
        assert_eq!(gic.take_kicks(), 0, "its own read-back: no kick");
        entry(&backends[0]);
        assert_eq!(gichs[0].ids(), [sgi_entry(3, 1)]);
        // Acknowledged: still one register; ended: the next source.
        gichs[0].set_state(0, EntryState::Active);
        entry(&backends[0]);
        assert_eq!(gichs[0].ids(), [sgi_entry(3, 1)]);
        assert_eq!(gicd.read(0xf23, AccessSize::Byte), Ok(0b100));
        gichs[0].set_state(0, EntryState::Invalid);
        entry(&backends[0]);
        assert_eq!(gichs[0].ids(), [sgi_entry(3, 2)]);
        gichs[0].set_state(0, EntryState::Invalid);
        entry(&backends[0]);
        assert!(gichs[0].ids().is_empty());
        assert!(gichs[1].ids().is_empty() && gichs[2].ids().is_empty());
    }

    #[test]
    fn a_vcpus_distributor_window_and_timer_are_its_own() {
        smp_fixture!(gichs, host, gic, backends);
        let gicd = backends[1].distributor();
        assert_eq!(gicd.read(0x800, Word), Ok(0x0202_0202), "ITARGETSR0");
        // vCPU 1's guest enables its timer PPI; the timer fires on its CPU.
        gicd.write(0x100, Word, 1 << TIMER_INTERRUPT).unwrap();
        backends[1].before_entry(&OFF, &|| 0, true);
        host.enable(PHYSICAL_TIMER_INTERRUPT);
        assert!(backends[1].physical_interrupt(PHYSICAL_TIMER_INTERRUPT));
        assert_eq!(gichs[1].ids(), [TIMER_INTERRUPT], "straight in");
        assert_eq!(gic.take_kicks(), 0, "nobody else concerned");
        for (vcpu, backend) in backends.iter().enumerate() {
            entry(backend);
            let pending = backend.distributor().read(0x200, Word).unwrap();
            assert_eq!(pending >> TIMER_INTERRUPT & 1, u32::from(vcpu == 1));
        }
        assert!(gichs[0].ids().is_empty() && gichs[2].ids().is_empty());
        // In again after the read; the guest ends it: vCPU 1's line drops.
        entry(&backends[1]);
        assert_eq!(gichs[1].ids(), [TIMER_INTERRUPT]);
        gichs[1].set_state(0, EntryState::Invalid);
        entry(&backends[1]);
        assert_eq!(gicd.read(0x200, Word), Ok(0));
        assert!(host.is_enabled(PHYSICAL_TIMER_INTERRUPT));
    }

    #[test]
    fn kicks_reach_the_other_vcpu_which_refreshes_before_its_next_entry() {
        smp_fixture!(gichs, host, gic, backends);
        for backend in &backends {
            backend.before_entry(&OFF, &|| 0, true);
        }
        // vCPU 0 sends SGI 1 to vCPU 1: the kernel on vCPU 0 hears to kick
        // vCPU 1, whose backend refreshes without being told.
        backends[0]
            .distributor()
            .write(0xf00, Word, 0x0002_0001)
            .unwrap();
        assert_eq!(backends[0].take_kicks(), 1 << 1);
        assert_eq!(backends[0].take_kicks(), 0);
        backends[1].before_entry(&OFF, &|| 0, false);
        assert_eq!(gichs[1].ids(), [sgi_entry(1, 0)]);
        // A vCPU's SGI to itself is no kick, but goes in.
        backends[2]
            .distributor()
            .write(0xf00, Word, 0x0200_0002)
            .unwrap();
        assert_eq!(gic.take_kicks(), 0);
        backends[2].before_entry(&OFF, &|| 0, false);
        assert_eq!(gichs[2].ids(), [sgi_entry(2, 2)]);
        // SPI 40 targeted at vCPU 2, raised by a device: vCPU 2 is kicked
        // (whichever backend the kernel asks) and takes it.
        let gicd = backends[0].distributor();
        gicd.write(0x104, Word, 1 << 8).unwrap();
        gicd.write(0x828, AccessSize::Byte, 0x04).unwrap();
        gic.set_level(40, true);
        assert_eq!(backends[1].take_kicks(), 1 << 2);
        backends[2].before_entry(&OFF, &|| 0, false);
        assert!(gichs[2].ids().contains(&40));
        backends[0].before_entry(&OFF, &|| 0, false);
        assert!(!gichs[0].ids().contains(&40));
        // Asked on vCPU 2 itself, a kick of vCPU 2 is left out (and
        // dropped); its backend refreshes by itself.
        gicd.write(0x104, Word, 1 << 9).unwrap();
        gicd.write(0x829, AccessSize::Byte, 0x04).unwrap();
        gic.set_level(41, true);
        assert_eq!(backends[2].take_kicks(), 0);
        assert_eq!(gic.take_kicks(), 0, "dropped");
        backends[2].before_entry(&OFF, &|| 0, false);
        assert!(gichs[2].ids().contains(&41));
        // A vCPU's own read-back puts what it had not acknowledged back in
        // the distributor: no kick either.
        gicd.write(0x104, Word, 1 << 10).unwrap();
        gic.trigger(42);
        backends[0].before_entry(&OFF, &|| 0, false);
        assert!(gichs[0].ids().contains(&42));
        assert_eq!(gic.take_kicks(), 0, "vCPU 0 refreshed");
        assert_eq!(gicd.read(0x204, Word).map(|w| w >> 10 & 1), Ok(1));
        assert_eq!(gic.take_kicks(), 0);
        // A vCPU that refreshed before anyone asked needs no kick.
        backends[1]
            .distributor()
            .write(0xf00, Word, 0x0001_0004)
            .unwrap();
        backends[0].before_entry(&OFF, &|| 0, false);
        assert!(gichs[0].ids().contains(&sgi_entry(4, 1)));
        assert_eq!(gic.take_kicks(), 0);
    }

    #[test]
    fn an_spi_retargeted_while_active_goes_to_its_new_vcpu_when_ended() {
        smp_fixture!(gichs, host, gic, backends);
        let gicd = backends[0].distributor();
        gicd.write(0x104, Word, 1 << 11).unwrap();
        gic.set_level(43, true);
        assert_eq!(gic.take_kicks(), 1 << 0, "routed to vCPU 0");
        backends[0].before_entry(&OFF, &|| 0, false);
        assert_eq!(gichs[0].ids(), [43]);
        // The guest on vCPU 0 takes it, moves it to vCPU 1 and ends it;
        // the line stays high.
        gichs[0].set_state(0, EntryState::Active);
        gicd.write(0x82b, AccessSize::Byte, 0x02).unwrap();
        assert_eq!(gic.take_kicks(), 0, "active: nobody has it yet");
        gichs[0].set_state(0, EntryState::Invalid);
        backends[0].before_entry(&OFF, &|| 0, false);
        assert!(gichs[0].ids().is_empty());
        assert_eq!(backends[0].take_kicks(), 1 << 1, "vCPU 1's now");
        backends[1].before_entry(&OFF, &|| 0, false);
        assert_eq!(gichs[1].ids(), [43]);
    }
}
