// SPDX-License-Identifier: MIT OR Apache-2.0
//! A virtual GICv2: the guest's interrupt controller at 0x0800_0000.
//!
//! One VM with one CPU sees a GICv2 distributor at [`DISTRIBUTOR_BASE`] and
//! its CPU interface at [`CPU_INTERFACE_BASE`] (`arm,cortex-a15-gic` in the
//! device tree), with the registers Linux's `irq-gic.c` uses. There are 64
//! interrupt ids: SGIs 0-15, PPIs 16-31 and SPIs 32-63 (SPI n is id 32 + n).
//! How interrupts reach the vCPU is the VM's interrupt backend
//! (`hyp::interrupts`): [`SoftwareBackend`] emulates the CPU interface too
//! ([`cpu_interface`]) and drives the vCPU's IRQ input (HCR.VI) from
//! [`VirtualGic::pending_irq`]; on a host GIC with the virtualization
//! extensions the CPU interface is the hardware's own and only the
//! distributor ([`distributor`]) is emulated. Devices drive lines with [`VirtualGic::set_level`] (level-sensitive
//! sources such as the PL011, id 33, and the virtual timer, id 27) or
//! [`VirtualGic::trigger`] (a single edge).
//!
//! Distributor (4 KiB window):
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | GICD_CTLR | bit 0 (enable) stored |
//! | 0x004 | GICD_TYPER | 0x0000_0001: 64 ids, one CPU, no Security Extensions |
//! | 0x008 | GICD_IIDR | 0x0200_043b: implementer Arm (0x43b), product 0x02, as a GIC-400 |
//! | 0x080-0x0fc | GICD_IGROUPRn | RAZ/WI: every interrupt is Group 0 |
//! | 0x100-0x1fc | GICD_IS/ICENABLERn | enable bits; SGIs always enabled (RAO/WI) |
//! | 0x200-0x2fc | GICD_IS/ICPENDRn | pending bits; SGI bits read-only (use S/CPENDSGIR) |
//! | 0x300-0x3fc | GICD_IS/ICACTIVERn | active bits, every id |
//! | 0x400-0x7f8 | GICD_IPRIORITYRn | byte per id, top 5 bits kept (32 levels) |
//! | 0x800-0xbf8 | GICD_ITARGETSRn | ids 0-31 read 0x01, WI; SPIs keep bit 0 (CPU 0), reset 0x01 |
//! | 0xc00-0xcfc | GICD_ICFGRn | bit 2F+1: edge (1) or level (0); SGIs edge (RO); PPIs and SPIs writable, reset level |
//! | 0xf00 | GICD_SGIR | write-only; filters 0 (list), 1 (others), 2 (self) |
//! | 0xf10-0xf1c | GICD_CPENDSGIRn | byte per SGI, bit 0 (source CPU 0): 1 clears |
//! | 0xf20-0xf2c | GICD_SPENDSGIRn | byte per SGI, bit 0 (source CPU 0): 1 sets |
//! | 0xfd0-0xffc | ICPIDRn, ICCIDRn | GIC-400's identification values |
//!
//! CPU interface (8 KiB window):
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | GICC_CTLR | bit 0 (enable) and bit 9 (EOImode) stored, the rest RAZ/WI |
//! | 0x004 | GICC_PMR | top 5 bits kept, reset 0 (everything masked) |
//! | 0x008 | GICC_BPR | 2-7, reset 2; smaller values read back as 2 |
//! | 0x00c | GICC_IAR | acknowledge: id of the signalled interrupt, or 1023 |
//! | 0x010 | GICC_EOIR | write-only: priority drop; with EOImode 0 also deactivate |
//! | 0x014 | GICC_RPR | running priority: highest active group priority, 0xff when idle |
//! | 0x018 | GICC_HPPIR | highest-priority pending interrupt, PMR and running priority ignored |
//! | 0x01c | GICC_ABPR | RAZ/WI |
//! | 0x020, 0x028 | GICC_AIAR, GICC_AHPPIR | read 1023: there is never a Group 1 interrupt |
//! | 0x024 | GICC_AEOIR | WI |
//! | 0x0d0 | GICC_APR0 | active priority levels: bit n is group priority n << 3 |
//! | 0x0fc | GICC_IIDR | 0x0202_143b: Arm, architecture version 2, product 0x020 |
//! | 0x1000 | GICC_DIR | write-only: deactivate (with either EOImode) |
//!
//! Every other offset in the windows is reserved or an unimplemented id's
//! register: it reads as zero and ignores writes, as do writes to read-only
//! registers and reads of write-only ones.
//!
//! Choices the architecture leaves open, or that this model simplifies:
//! - *No interrupt grouping.* Without the Security Extensions GICv2 still
//!   has Group 0 and Group 1; this model has Group 0 only (IGROUPR RAZ/WI,
//!   only the Group 0 enable bits of the two CTLRs, FIQEn RAZ/WI so
//!   everything is an IRQ). Linux never assigns groups on a GICv2.
//! - *Access sizes.* Every register takes word accesses. IPRIORITYR,
//!   ITARGETSR, CPENDSGIR and SPENDSGIR also take byte accesses, as the
//!   architecture allows; other byte and all halfword accesses read as zero
//!   and are ignored (and have no side effect: a byte read of IAR does not
//!   acknowledge). An access not aligned to its size, and any doubleword
//!   access, is refused with [`MmioError::BadSize`] and the guest takes a
//!   data abort, which is what a real GIC's bus or the CPU's own alignment
//!   check for Device memory gives it.
//! - *Pending state.* A level-sensitive interrupt is pending while its line
//!   is high or while a latch set by GICD_ISPENDR is; acknowledging clears
//!   the latch only, so the interrupt stays pending (active and pending)
//!   while the line stays high. An edge-sensitive interrupt is pending from
//!   a rising edge (or [`VirtualGic::trigger`], GICD_ISPENDR, GICD_SGIR)
//!   until acknowledged, and can be pending and active at once. An active
//!   interrupt is never signalled again until it is deactivated. Among
//!   interrupts of equal priority the lowest id wins.
//! - *EOI.* A write to GICC_EOIR of an existing id drops the highest active
//!   priority (the architecture expects the id last acknowledged; anything
//!   else is UNPREDICTABLE) and, with GICC_CTLR.EOImode 0, deactivates the
//!   id. Spurious and unimplemented ids (1020-1023, 64-1019) are ignored.
//!   GICC_DIR deactivates whatever EOImode says (UNPREDICTABLE in mode 0).
//!
//! Usage (the board makes both views `'static` alongside the GIC):
//!
//! ```
//! use capsules::virtual_gic::VirtualGic;
//! use hyp::dispatch::MmioDevice;
//! use hyp::trap::AccessSize::Word;
//!
//! let gic = VirtualGic::new();
//! let (gicd, gicc) = (gic.distributor(), gic.cpu_interface());
//! gicd.write(0x000, Word, 1).unwrap(); // GICD_CTLR: enable
//! gicd.write(0x104, Word, 1 << 1).unwrap(); // ISENABLER1: id 33
//! gicd.write(0x420, Word, 0xa0 << 8).unwrap(); // IPRIORITYR8: id 33 at 0xa0
//! gicc.write(0x004, Word, 0xf0).unwrap(); // GICC_PMR
//! gicc.write(0x000, Word, 1).unwrap(); // GICC_CTLR: enable
//! gic.set_level(33, true);
//! assert!(gic.pending_irq());
//! assert_eq!(gicc.read(0x00c, Word), Ok(33)); // GICC_IAR
//! ```

use core::cell::Cell;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::trap::AccessSize;

/// The distributor's name, as VM tables claim it.
pub const DISTRIBUTOR_NAME: &str = "gic-distributor";
/// The CPU interface's name, as VM tables claim it.
pub const CPU_INTERFACE_NAME: &str = "gic-cpu-interface";
/// Where the guest platform puts the distributor
/// (`hyp::device_tree::GIC_DISTRIBUTOR`).
pub const DISTRIBUTOR_BASE: u64 = hyp::device_tree::GIC_DISTRIBUTOR.0 as u64;
/// The distributor's register window.
pub const DISTRIBUTOR_SIZE: u64 = hyp::device_tree::GIC_DISTRIBUTOR.1 as u64;
/// Where the guest platform puts the CPU interface.
pub const CPU_INTERFACE_BASE: u64 = hyp::device_tree::GIC_CPU_INTERFACE.0 as u64;
/// The CPU interface's register window (GICC_DIR is at 0x1000).
pub const CPU_INTERFACE_SIZE: u64 = hyp::device_tree::GIC_CPU_INTERFACE.1 as u64;
/// Interrupt ids 0..NUM_INTERRUPTS exist: 16 SGIs, 16 PPIs, 32 SPIs.
pub const NUM_INTERRUPTS: u32 = 64;
/// The virtual PL011's interrupt id (SPI 1; `crate::virtual_uart`).
pub const UART_INTERRUPT: u32 = 33;
/// The id GICC_IAR returns when nothing can be acknowledged.
pub const SPURIOUS: u32 = 1023;

const SGI_MASK: u64 = 0xffff;
/// Implemented priority bits (GICD_IPRIORITYR, GICC_PMR): 32 levels.
const PRIORITY_BITS: u8 = 0xf8;
/// The smallest binary point that 5 priority bits allow.
const MIN_BINARY_POINT: u32 = 2;
const IDLE_PRIORITY: u32 = 0xff;

const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_IIDR: u64 = 0x008;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ISPENDR: u64 = 0x200;
const GICD_ICPENDR: u64 = 0x280;
const GICD_ISACTIVER: u64 = 0x300;
const GICD_ICACTIVER: u64 = 0x380;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
const GICD_SGIR: u64 = 0xf00;
const GICD_CPENDSGIR: u64 = 0xf10;
const GICD_SPENDSGIR: u64 = 0xf20;
const GICD_ID: u64 = 0xfd0;
/// ICPIDR4-7, ICPIDR0-3, ICCIDR0-3 of a GIC-400 (part 0x490, ArchRev 2).
const GICD_ID_VALUES: [u32; 12] = [
    0x04, 0x00, 0x00, 0x00, 0x90, 0xb4, 0x2b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];
/// GICD_TYPER: ITLinesNumber 1 (64 ids), CPUNumber 0, SecurityExtn 0.
const TYPER_VALUE: u32 = 0x0000_0001;
const DISTRIBUTOR_IIDR: u32 = 0x0200_043b;

const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
const GICC_BPR: u64 = 0x008;
const GICC_IAR: u64 = 0x00c;
const GICC_EOIR: u64 = 0x010;
const GICC_RPR: u64 = 0x014;
const GICC_HPPIR: u64 = 0x018;
const GICC_AIAR: u64 = 0x020;
const GICC_AHPPIR: u64 = 0x028;
const GICC_APR0: u64 = 0x0d0;
const GICC_IIDR: u64 = 0x0fc;
const GICC_DIR: u64 = 0x1000;
const CPU_INTERFACE_IIDR: u32 = 0x0202_143b;
const GICC_CTLR_ENABLE: u32 = 1 << 0;
const GICC_CTLR_EOIMODE: u32 = 1 << 9;

/// The bit of interrupt `id` in a 64-bit state mask.
const fn bit(id: u32) -> u64 {
    1 << id
}

/// Word `n` of a set-enable/clear-enable style bit array over `mask`.
fn word_of(mask: u64, n: u64) -> u32 {
    if n < 2 {
        (mask >> (32 * n)) as u32
    } else {
        0
    }
}

/// The ids that bit array word `n` holding `value` names, as a mask.
fn bits_of(value: u32, n: u64) -> u64 {
    if n < 2 {
        u64::from(value) << (32 * n)
    } else {
        0
    }
}

/// One single-CPU VM's interrupt controller: distributor, CPU interface
/// and the interrupt lines devices drive. All state is 64-bit masks (bit n
/// is id n) and a priority per id.
#[derive(Debug)]
pub struct VirtualGic {
    distributor_enabled: Cell<bool>,
    cpu_control: Cell<u32>,
    priority_mask: Cell<u8>,
    binary_point: Cell<u32>,
    /// GICC_APR0: bit n set while an interrupt of group priority n << 3 is
    /// active and its priority has not been dropped.
    active_priorities: Cell<u32>,
    enabled: Cell<u64>,
    /// Pending state that is not a line level: edges, GICD_ISPENDR, SGIs.
    latched: Cell<u64>,
    /// The input lines as devices drive them.
    lines: Cell<u64>,
    active: Cell<u64>,
    /// 1: edge-triggered, 0: level-sensitive.
    edge: Cell<u64>,
    /// Which ids target CPU 0 (always the SGIs and PPIs).
    targeted: Cell<u64>,
    priorities: Cell<[u8; NUM_INTERRUPTS as usize]>,
}

impl Default for VirtualGic {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualGic {
    /// A GIC in its reset state with every line low.
    pub const fn new() -> VirtualGic {
        VirtualGic {
            distributor_enabled: Cell::new(false),
            cpu_control: Cell::new(0),
            priority_mask: Cell::new(0),
            binary_point: Cell::new(MIN_BINARY_POINT),
            active_priorities: Cell::new(0),
            enabled: Cell::new(SGI_MASK),
            latched: Cell::new(0),
            lines: Cell::new(0),
            active: Cell::new(0),
            edge: Cell::new(SGI_MASK),
            targeted: Cell::new(u64::MAX),
            priorities: Cell::new([0; NUM_INTERRUPTS as usize]),
        }
    }

    /// Puts the GIC back in its reset state for a VM restart. The input
    /// lines keep their levels: they belong to the devices driving them.
    pub fn reset(&self) {
        let lines = self.lines.get();
        let fresh = VirtualGic::new();
        self.distributor_enabled
            .set(fresh.distributor_enabled.get());
        self.cpu_control.set(fresh.cpu_control.get());
        self.priority_mask.set(fresh.priority_mask.get());
        self.binary_point.set(fresh.binary_point.get());
        self.active_priorities.set(fresh.active_priorities.get());
        self.enabled.set(fresh.enabled.get());
        self.latched.set(fresh.latched.get());
        self.lines.set(lines);
        self.active.set(fresh.active.get());
        self.edge.set(fresh.edge.get());
        self.targeted.set(fresh.targeted.get());
        self.priorities.set(fresh.priorities.get());
    }

    /// The distributor as a virtual device at [`DISTRIBUTOR_BASE`].
    pub fn distributor(&self) -> GicDistributor<'_> {
        GicDistributor { gic: self }
    }

    /// The CPU interface as a virtual device at [`CPU_INTERFACE_BASE`].
    pub fn cpu_interface(&self) -> GicCpuInterface<'_> {
        GicCpuInterface { gic: self }
    }

    /// Drives the input line of PPI or SPI `id` (16-63). A rising edge
    /// makes an edge-triggered interrupt pending; a level-sensitive one is
    /// pending while the line is high. SGIs have no line and other ids do
    /// not exist: those calls are ignored.
    pub fn set_level(&self, id: u32, high: bool) {
        if !(16..NUM_INTERRUPTS).contains(&id) {
            return;
        }
        let was_high = self.lines.get() & bit(id) != 0;
        if high {
            self.lines.set(self.lines.get() | bit(id));
            if !was_high && self.edge.get() & bit(id) != 0 {
                self.latched.set(self.latched.get() | bit(id));
            }
        } else {
            self.lines.set(self.lines.get() & !bit(id));
        }
    }

    /// One edge on PPI or SPI `id` (16-63): the interrupt becomes pending
    /// until acknowledged, as a write to GICD_ISPENDR would make it (also
    /// for a level-sensitive one). Other ids are ignored.
    pub fn trigger(&self, id: u32) {
        if (16..NUM_INTERRUPTS).contains(&id) {
            self.latched.set(self.latched.get() | bit(id));
        }
    }

    fn pending(&self) -> u64 {
        self.latched.get() | (self.lines.get() & !self.edge.get())
    }

    /// Whether the distributor forwards interrupt `id` when it is pending:
    /// enabled, inactive and targeting CPU 0, with the distributor enabled.
    pub(crate) fn forwards(&self, id: u32) -> bool {
        id < NUM_INTERRUPTS
            && self.distributor_enabled.get()
            && (self.enabled.get() & !self.active.get() & self.targeted.get()) & bit(id) != 0
    }

    /// Interrupt `id`'s priority (0 for ids that do not exist).
    pub(crate) fn priority(&self, id: u32) -> u8 {
        self.priorities
            .as_array_of_cells()
            .get(id as usize)
            .map_or(0, Cell::get)
    }

    /// Sets or clears interrupt `id`'s active state (the list registers
    /// report what the guest did with it).
    pub(crate) fn set_active(&self, id: u32, active: bool) {
        if id < NUM_INTERRUPTS {
            let mask = self.active.get() & !bit(id);
            self.active.set(mask | (u64::from(active) << id));
        }
    }

    /// Latches interrupt `id` pending (its pending state comes back from a
    /// list register).
    pub(crate) fn set_latched(&self, id: u32) {
        if id < NUM_INTERRUPTS {
            self.latched.set(self.latched.get() | bit(id));
        }
    }

    /// Clears interrupt `id`'s latched pending state (it moved into a list
    /// register); a level-sensitive one stays pending while its line is
    /// high.
    pub(crate) fn clear_latched(&self, id: u32) {
        if id < NUM_INTERRUPTS {
            self.latched.set(self.latched.get() & !bit(id));
        }
    }

    /// Whether interrupt `id`'s pending state is latched (an edge,
    /// GICD_ISPENDR, an SGI), not only its line's level.
    pub(crate) fn is_latched(&self, id: u32) -> bool {
        id < NUM_INTERRUPTS && self.latched.get() & bit(id) != 0
    }

    /// Whether interrupt `id` is edge-triggered.
    pub(crate) fn is_edge(&self, id: u32) -> bool {
        id < NUM_INTERRUPTS && self.edge.get() & bit(id) != 0
    }

    /// The interrupts the distributor forwards to the CPU interface now:
    /// pending, enabled, inactive and targeting CPU 0, while the
    /// distributor is enabled (a mask, bit n for id n).
    pub(crate) fn forwarded(&self) -> u64 {
        if !self.distributor_enabled.get() {
            return 0;
        }
        self.pending() & self.enabled.get() & !self.active.get() & self.targeted.get()
    }

    /// The highest-priority interrupt of `candidates`, with its priority
    /// (among equal priorities, the lowest id).
    pub(crate) fn best_of(&self, mut candidates: u64) -> Option<(u32, u8)> {
        // Per-id cells: no copy of the whole priority array per call.
        let priorities = self.priorities.as_array_of_cells();
        let mut best: Option<(u32, u8)> = None;
        while candidates != 0 {
            let id = candidates.trailing_zeros();
            candidates &= candidates - 1;
            let priority = priorities[id as usize].get();
            if best.is_none_or(|(_, best_priority)| priority < best_priority) {
                best = Some((id, priority));
            }
        }
        best
    }
}

/// Refuses doubleword accesses and accesses not aligned to their size.
fn check_access(offset: u64, size: AccessSize) -> Result<AccessSize, MmioError> {
    let bytes = u64::from(size.bytes());
    if bytes > 4 || !offset.is_multiple_of(bytes) {
        return Err(MmioError::BadSize);
    }
    Ok(size)
}

pub mod cpu_interface;
pub mod distributor;
pub mod list_registers;
mod software;

pub use cpu_interface::GicCpuInterface;
pub use distributor::GicDistributor;
pub use list_registers::{GicV2Backend, GicV2Distributor};
pub use software::SoftwareBackend;

#[cfg(test)]
mod tests;
