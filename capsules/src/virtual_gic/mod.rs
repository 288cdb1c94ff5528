// SPDX-License-Identifier: MIT OR Apache-2.0
//! A virtual GICv2: the guest's interrupt controller at 0x0800_0000.
//!
//! A VM with one to [`MAX_VCPUS`] vCPUs sees a GICv2 distributor at
//! [`DISTRIBUTOR`] and its CPU interface at [`CPU_INTERFACE`]
//! (`arm,cortex-a15-gic` in the device tree), with the registers Linux's
//! `irq-gic.c` uses. There are 64 interrupt ids: SGIs 0-15, PPIs 16-31 and
//! SPIs 32-63 (SPI n is id 32 + n). How interrupts reach a vCPU is the
//! VM's interrupt backend (`hyp::interrupts`): [`SoftwareBackend`]
//! emulates the CPU interface too ([`cpu_interface`], one vCPU only) and
//! drives the vCPU's IRQ input (HCR.VI) from [`VirtualGic::pending_irq`];
//! on a host GIC with the virtualization extensions the CPU interface is
//! the hardware's own, one [`GicV2Backend`] serves each vCPU, and only the
//! distributor ([`distributor`]) is emulated.
//!
//! Devices hold [`InterruptLine`]s: a handle on one SPI of their VM's GIC
//! (the id from their row of `hyp::guest_platform`), which they raise and
//! lower as their interrupt status changes ([`InterruptLine::set`]), or
//! schedule to rise at a time of the hypervisor's clock
//! ([`InterruptLine::raise_at`], for a device whose interrupt is a
//! deadline, such as the PL031's match). A line that moves marks every
//! vCPU's interrupts *stale*: the backends already look at that mark before
//! an entry (for SGIs and SPIs another vCPU gives), so they learn of the
//! device without knowing it, and a line that stays where it is costs a
//! compare. Scheduled lines are raised by the backends when due
//! ([`VirtualGic::raise_due`]), which also tell the kernel when to wake
//! them. A vCPU's own PPIs (the virtual timer, `hyp::guest_platform::
//! VIRTUAL_TIMER`) are the backends' business:
//! [`VirtualGic::set_private_level`] and [`VirtualGic::trigger_private`].
//!
//! Banked and shared state. Each vCPU has its own copy (bank) of ids 0-31:
//! their enable, pending, active and line state, their priorities, the
//! edge or level configuration of its PPIs (GICD_ICFGR1), and its pending
//! SGIs by source. The SPIs (32-63) are shared: one enable, pending,
//! active, line, configuration, priority and target byte each. Every
//! vCPU reaches the distributor through its own view,
//! [`VirtualGic::distributor_for`], which reads and writes that vCPU's
//! bank in the banked registers below.
//!
//! Distributor (4 KiB window):
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | GICD_CTLR | bit 0 (enable) stored, shared |
//! | 0x004 | GICD_TYPER | ITLinesNumber 1 (64 ids), CPUNumber the vCPU count minus one, no Security Extensions: 0x01 with one vCPU |
//! | 0x008 | GICD_IIDR | 0x0200_043b: implementer Arm (0x43b), product 0x02, as a GIC-400 |
//! | 0x080-0x0fc | GICD_IGROUPRn | RAZ/WI: every interrupt is Group 0 |
//! | 0x100-0x1fc | GICD_IS/ICENABLERn | enable bits, word 0 banked; SGIs always enabled (RAO/WI) |
//! | 0x200-0x2fc | GICD_IS/ICPENDRn | pending bits, word 0 banked; SGI bits read-only (use S/CPENDSGIR), set while any source is pending |
//! | 0x300-0x3fc | GICD_IS/ICACTIVERn | active bits, every id, word 0 banked |
//! | 0x400-0x7f8 | GICD_IPRIORITYRn | byte per id, top 5 bits kept (32 levels); ids 0-31 banked |
//! | 0x800-0xbf8 | GICD_ITARGETSRn | ids 0-31 read the accessing vCPU's bit (1 << vCPU), WI; SPIs keep the bits of existing vCPUs, reset 0x01 (vCPU 0) |
//! | 0xc00-0xcfc | GICD_ICFGRn | bit 2F+1: edge (1) or level (0); SGIs edge (RO); PPIs (banked) and SPIs writable, reset level |
//! | 0xf00 | GICD_SGIR | write-only; filters 0 (the list, bits of missing vCPUs ignored), 1 (every vCPU but the sender), 2 (the sender); 3 ignored |
//! | 0xf10-0xf1c | GICD_CPENDSGIRn | byte per SGI of the accessing vCPU, bit n (source vCPU n): 1 clears |
//! | 0xf20-0xf2c | GICD_SPENDSGIRn | byte per SGI of the accessing vCPU, bit n (source vCPU n): 1 sets (existing vCPUs only) |
//! | 0xfd0-0xffc | ICPIDRn, ICCIDRn | GIC-400's identification values |
//!
//! CPU interface (8 KiB window), emulated for vCPU 0 only:
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | GICC_CTLR | bit 0 (enable) and bit 9 (EOImode) stored, the rest RAZ/WI |
//! | 0x004 | GICC_PMR | top 5 bits kept, reset 0 (everything masked) |
//! | 0x008 | GICC_BPR | 2-7, reset 2; smaller values read back as 2 |
//! | 0x00c | GICC_IAR | acknowledge: id of the signalled interrupt, an SGI's source vCPU in bits 12:10; or 1023 |
//! | 0x010 | GICC_EOIR | write-only: priority drop; with EOImode 0 also deactivate (id in bits 9:0) |
//! | 0x014 | GICC_RPR | running priority: highest active group priority, 0xff when idle |
//! | 0x018 | GICC_HPPIR | highest-priority pending interrupt, PMR and running priority ignored |
//! | 0x01c | GICC_ABPR | RAZ/WI |
//! | 0x020, 0x028 | GICC_AIAR, GICC_AHPPIR | read 1023: there is never a Group 1 interrupt |
//! | 0x024 | GICC_AEOIR | WI |
//! | 0x0d0 | GICC_APR0 | active priority levels: bit n is group priority n << 3 |
//! | 0x0fc | GICC_IIDR | 0x0202_143b: Arm, architecture version 2, product 0x020 |
//! | 0x1000 | GICC_DIR | write-only: deactivate (with either EOImode; id in bits 9:0) |
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
//! - *SGI sources.* An SGI is pending for a vCPU once per source vCPU;
//!   acknowledging takes the lowest-numbered source first and leaves the
//!   others pending. Its active state is one per SGI id, not per source, so
//!   the sources of one SGI are delivered one after another.
//! - *SPI routing.* An SPI is forwarded to the lowest-numbered vCPU in its
//!   target byte only, never to several (the 1-of-N choice of a real GIC
//!   made fixed); an SPI whose target byte is zero is forwarded to nobody.
//! - *EOI.* A write to GICC_EOIR of an existing id drops the highest active
//!   priority (the architecture expects the id last acknowledged; anything
//!   else is UNPREDICTABLE) and, with GICC_CTLR.EOImode 0, deactivates the
//!   id. Spurious and unimplemented ids (1020-1023, 64-1019) are ignored.
//!   GICC_DIR deactivates whatever EOImode says (UNPREDICTABLE in mode 0).
//!
//! Kicks. With more than one vCPU, an action on the GIC (a distributor
//! write by one vCPU, a device raising an SPI) can give interrupts to a vCPU
//! running on another physical CPU. The GIC compares each vCPU's forwarded
//! interrupts (pending, enabled, inactive and routed to it, with the
//! distributor enabled) before and after every such action, notes the
//! vCPUs that gained one, and [`VirtualGic::take_kicks`] hands the set to
//! the kernel, which interrupts those CPUs. A GIC with one vCPU does none
//! of this work.
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
//! gicd.write(0x104, Word, 1 << 1).unwrap(); // ISENABLER1: id 33 (SPI 1)
//! gicd.write(0x420, Word, 0xa0 << 8).unwrap(); // IPRIORITYR8: id 33 at 0xa0
//! gicc.write(0x004, Word, 0xf0).unwrap(); // GICC_PMR
//! gicc.write(0x000, Word, 1).unwrap(); // GICC_CTLR: enable
//! // The line of a device whose row gives SPI 1 (the PL011's).
//! let id = hyp::guest_platform::UART.interrupt.unwrap();
//! let line = gic.line(id);
//! line.raise();
//! assert!(gic.pending_irq());
//! assert_eq!(gicc.read(0x00c, Word), Ok(id)); // GICC_IAR
//! ```
//!
//! With two vCPUs, vCPU 0 sends SGI 5 to vCPU 1:
//!
//! ```
//! use capsules::virtual_gic::VirtualGic;
//! use hyp::dispatch::MmioDevice;
//! use hyp::trap::AccessSize::{Byte, Word};
//!
//! let gic = VirtualGic::with_vcpus(2);
//! gic.distributor().write(0x000, Word, 1).unwrap(); // GICD_CTLR: enable
//! gic.distributor().write(0xf00, Word, 0x0002_0005).unwrap(); // GICD_SGIR
//! assert_eq!(gic.take_kicks(), 1 << 1, "vCPU 1 has an interrupt");
//! // vCPU 1's GICD_SPENDSGIR1, byte of SGI 5: pending from vCPU 0.
//! assert_eq!(gic.distributor_for(1).read(0xf25, Byte), Ok(1 << 0));
//! ```

use core::cell::Cell;
use hyp::config::MAX_VCPUS;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::GuestDevice;
use hyp::guest_platform::FIRST_SPI;
use hyp::trap::AccessSize;

/// The distributor's row of the guest platform (name, window).
pub const DISTRIBUTOR: GuestDevice = hyp::guest_platform::GIC_DISTRIBUTOR;
/// The CPU interface's row (its window holds GICC_DIR at 0x1000).
pub const CPU_INTERFACE: GuestDevice = hyp::guest_platform::GIC_CPU_INTERFACE;
/// Interrupt ids 0..NUM_INTERRUPTS exist: 16 SGIs, 16 PPIs, 32 SPIs.
pub const NUM_INTERRUPTS: u32 = 64;
/// The id GICC_IAR returns when nothing can be acknowledged.
pub const SPURIOUS: u32 = 1023;

/// The SGIs' bits in a bank: always enabled, always edge-triggered.
const SGI_MASK: u32 = 0xffff;
/// How many SGIs there are (ids 0-15).
const NUM_SGIS: usize = 16;
/// How many ids a bank holds: the banked ids 0-31, or the 32 SPIs.
const BANK_IDS: u32 = 32;
/// No line scheduled ([`VirtualGic::raise_at`]).
const NEVER: u64 = u64::MAX;
/// The interrupt id in GICC_IAR, GICC_EOIR, GICC_DIR and a list register
/// (bits 9:0).
pub(crate) const ID_BITS: u32 = 0x3ff;
/// Where GICC_IAR and a list register carry an SGI's source CPU (bits
/// 12:10).
pub(crate) const SOURCE_SHIFT: u32 = 10;
/// The vCPU whose CPU interface [`GicCpuInterface`] emulates.
const CPU_INTERFACE_VCPU: usize = 0;
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
/// GICD_TYPER's ITLinesNumber: 1, 64 ids.
const TYPER_IT_LINES: u32 = 1;
/// Where GICD_TYPER's CPUNumber (bits 7:5, CPUs minus one) lies.
const TYPER_CPU_NUMBER_SHIFT: u32 = 5;
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

/// The state of 32 interrupt ids: a vCPU's banked ids 0-31 (bit k is id
/// k) or the shared SPIs (bit k is id 32 + k).
#[derive(Debug)]
struct Bank {
    enabled: Cell<u32>,
    /// Pending state that is not a line level: edges, GICD_ISPENDR, and
    /// for SGIs whether any source is pending.
    latched: Cell<u32>,
    /// The input lines as devices drive them.
    lines: Cell<u32>,
    active: Cell<u32>,
    /// 1: edge-triggered, 0: level-sensitive.
    edge: Cell<u32>,
    priorities: Cell<[u8; BANK_IDS as usize]>,
}

impl Bank {
    /// A bank in its reset state whose `fixed` ids (the SGIs of a vCPU's
    /// bank) are always enabled and edge-triggered.
    const fn new(fixed: u32) -> Bank {
        Bank {
            enabled: Cell::new(fixed),
            latched: Cell::new(0),
            lines: Cell::new(0),
            active: Cell::new(0),
            edge: Cell::new(fixed),
            priorities: Cell::new([0; BANK_IDS as usize]),
        }
    }

    /// Back to the reset state, the lines kept.
    fn reset(&self, fixed: u32) {
        self.enabled.set(fixed);
        self.latched.set(0);
        self.active.set(0);
        self.edge.set(fixed);
        self.priorities.set([0; BANK_IDS as usize]);
    }

    fn pending(&self) -> u32 {
        self.latched.get() | (self.lines.get() & !self.edge.get())
    }

    /// Pending, enabled and inactive.
    fn ready(&self) -> u32 {
        self.pending() & self.enabled.get() & !self.active.get()
    }

    fn priority(&self, k: u32) -> u8 {
        self.priorities.as_array_of_cells()[k as usize].get()
    }

    /// Drives line `k`: a rising edge latches an edge-triggered interrupt.
    fn drive(&self, k: u32, high: bool) {
        let lines = self.lines.get();
        if high {
            if lines & (1 << k) == 0 && self.edge.get() & (1 << k) != 0 {
                set_bits(&self.latched, 1 << k, true);
            }
            self.lines.set(lines | (1 << k));
        } else {
            self.lines.set(lines & !(1 << k));
        }
    }
}

/// Sets (`on`) or clears `bits` in `cell`.
fn set_bits(cell: &Cell<u32>, bits: u32, on: bool) {
    if on {
        cell.set(cell.get() | bits);
    } else {
        cell.set(cell.get() & !bits);
    }
}

/// One vCPU's banked state.
#[derive(Debug)]
struct Banked {
    /// Ids 0-31. Bit s of `latched` (an SGI) is set while `sgi_sources[s]`
    /// is not zero.
    bank: Bank,
    /// The pending SGIs by id: bit n is pending from source vCPU n.
    sgi_sources: Cell<[u8; NUM_SGIS]>,
}

impl Banked {
    const fn new() -> Banked {
        Banked {
            bank: Bank::new(SGI_MASK),
            sgi_sources: Cell::new([0; NUM_SGIS]),
        }
    }
}

/// Per vCPU, the SPIs routed to it after a reset: all to vCPU 0.
const fn reset_routes() -> [u32; MAX_VCPUS] {
    let mut routes = [0; MAX_VCPUS];
    routes[0] = u32::MAX;
    routes
}

/// One VM's interrupt controller: the distributor, the CPU interface of
/// vCPU 0, and the interrupt lines devices drive. State is kept as 32-bit
/// masks, one bank of ids 0-31 per vCPU and one of the SPIs, with a
/// priority per id.
#[derive(Debug)]
pub struct VirtualGic {
    /// How many vCPUs the VM has (1 to [`MAX_VCPUS`]).
    vcpus: usize,
    distributor_enabled: Cell<bool>,
    cpu_control: Cell<u32>,
    priority_mask: Cell<u8>,
    binary_point: Cell<u32>,
    /// GICC_APR0: bit n set while an interrupt of group priority n << 3 is
    /// active and its priority has not been dropped.
    active_priorities: Cell<u32>,
    /// Ids 0-31 of each vCPU (those beyond `vcpus` unused).
    banked: [Banked; MAX_VCPUS],
    /// The SPIs, ids 32-63.
    spis: Bank,
    /// The SPIs' GICD_ITARGETSR bytes (bit n: vCPU n).
    targets: Cell<[u8; BANK_IDS as usize]>,
    /// Per vCPU, the SPIs forwarded to it (bit k: id 32 + k): those whose
    /// lowest target is that vCPU. Follows `targets`.
    routes: Cell<[u32; MAX_VCPUS]>,
    /// The vCPUs whose forwarded interrupts grew since the kernel last
    /// asked ([`VirtualGic::take_kicks`]); only with more than one vCPU.
    kicks: Cell<u32>,
    /// The vCPUs whose interrupts may have changed since their backend
    /// last presented them: their forwarded interrupts grew (only with
    /// more than one vCPU), or a device's line moved (always).
    stale: Cell<u32>,
    /// When each SPI's line is scheduled to rise (bit k: id 32 + k),
    /// [`NEVER`] if it is not.
    deadlines: [Cell<u64>; BANK_IDS as usize],
    /// The earliest of `deadlines`: one compare tells a backend whether
    /// any line is scheduled.
    next_deadline: Cell<u64>,
}

impl Default for VirtualGic {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualGic {
    /// A GIC for a VM with one vCPU, in its reset state with every line
    /// low.
    pub const fn new() -> VirtualGic {
        Self::with_vcpus(1)
    }

    /// A GIC for a VM with `vcpus` vCPUs (taken as 1 if 0, and as
    /// [`MAX_VCPUS`] if more), in its reset state with every line low.
    pub const fn with_vcpus(vcpus: usize) -> VirtualGic {
        let vcpus = if vcpus == 0 {
            1
        } else if vcpus > MAX_VCPUS {
            MAX_VCPUS
        } else {
            vcpus
        };
        VirtualGic {
            vcpus,
            distributor_enabled: Cell::new(false),
            cpu_control: Cell::new(0),
            priority_mask: Cell::new(0),
            binary_point: Cell::new(MIN_BINARY_POINT),
            active_priorities: Cell::new(0),
            banked: [const { Banked::new() }; MAX_VCPUS],
            spis: Bank::new(0),
            targets: Cell::new([1; BANK_IDS as usize]),
            routes: Cell::new(reset_routes()),
            kicks: Cell::new(0),
            stale: Cell::new(0),
            deadlines: [const { Cell::new(NEVER) }; BANK_IDS as usize],
            next_deadline: Cell::new(NEVER),
        }
    }

    /// How many vCPUs the VM has.
    pub const fn vcpus(&self) -> usize {
        self.vcpus
    }

    /// Puts the GIC back in its reset state for a VM restart: every vCPU's
    /// bank and the shared state. The input lines keep their levels and
    /// schedules: they belong to the devices driving them (which reset
    /// them with their own state).
    pub fn reset(&self) {
        self.distributor_enabled.set(false);
        self.cpu_control.set(0);
        self.priority_mask.set(0);
        self.binary_point.set(MIN_BINARY_POINT);
        self.active_priorities.set(0);
        for banked in &self.banked {
            banked.bank.reset(SGI_MASK);
            banked.sgi_sources.set([0; NUM_SGIS]);
        }
        self.spis.reset(0);
        self.targets.set([1; BANK_IDS as usize]);
        self.routes.set(reset_routes());
        self.kicks.set(0);
        self.stale.set(0);
    }

    /// The distributor as vCPU 0 sees it, a virtual device at
    /// [`DISTRIBUTOR`] (all a one-vCPU VM needs).
    pub fn distributor(&self) -> GicDistributor<'_> {
        self.distributor_for(0)
    }

    /// The distributor as vCPU `vcpu` sees it: its banked registers are
    /// that vCPU's, and its SGIs come from it.
    ///
    /// # Panics
    ///
    /// Unless `vcpu` is one of the VM's vCPUs (a board error).
    pub fn distributor_for(&self, vcpu: usize) -> GicDistributor<'_> {
        assert!(vcpu < self.vcpus, "no such vCPU in this GIC");
        GicDistributor { gic: self, vcpu }
    }

    /// The CPU interface of vCPU 0 as a virtual device at
    /// [`CPU_INTERFACE`].
    pub fn cpu_interface(&self) -> GicCpuInterface<'_> {
        GicCpuInterface { gic: self }
    }

    /// The line of SPI `id` (32-63), for the device that drives it.
    ///
    /// # Panics
    ///
    /// Unless `id` is an SPI of this GIC (a board error: the guest
    /// platform's rows give SPIs).
    pub fn line(&self, id: u32) -> InterruptLine<'_> {
        assert!(
            (FIRST_SPI..NUM_INTERRUPTS).contains(&id),
            "a device's line is an SPI"
        );
        InterruptLine { gic: self, id }
    }

    /// Drives the input line of PPI or SPI `id` (16-63). A rising edge
    /// makes an edge-triggered interrupt pending; a level-sensitive one is
    /// pending while the line is high. An SPI's line that moves marks
    /// every vCPU stale (a line left where it was costs a compare). A
    /// PPI's line is vCPU 0's (see [`Self::set_private_level`] for the
    /// others). SGIs have no line and other ids do not exist: those calls
    /// are ignored.
    pub fn set_level(&self, id: u32, high: bool) {
        match id {
            16..FIRST_SPI => self.set_private_level(0, id, high),
            FIRST_SPI..NUM_INTERRUPTS => {
                let k = id - FIRST_SPI;
                if (self.spis.lines.get() & (1 << k) != 0) == high {
                    return;
                }
                self.tracked(|| self.spis.drive(k, high));
                self.stale
                    .set(self.stale.get() | u32::from(self.vcpu_mask()));
            }
            _ => {}
        }
    }

    /// Schedules SPI `id`'s line to rise once the hypervisor's clock reads
    /// `deadline` (`None`: not at all), replacing any earlier schedule; a
    /// backend raises it when due ([`Self::raise_due`]). Other ids are
    /// ignored.
    pub fn raise_at(&self, id: u32, deadline: Option<u64>) {
        if !(FIRST_SPI..NUM_INTERRUPTS).contains(&id) {
            return;
        }
        self.deadlines[(id - FIRST_SPI) as usize].set(deadline.unwrap_or(NEVER));
        let next = self.deadlines.iter().map(Cell::get).min().unwrap_or(NEVER);
        self.next_deadline.set(next);
    }

    /// When the earliest scheduled line rises, if any is (a load and a
    /// compare: backends ask before every look).
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        let next = self.next_deadline.get();
        (next != NEVER).then_some(next)
    }

    /// Raises the scheduled lines due at `now` (each once: its schedule
    /// ends); returns when the next one is due.
    pub fn raise_due(&self, now: u64) -> Option<u64> {
        if self.next_deadline.get() > now {
            return self.next_deadline();
        }
        let mut next = NEVER;
        for (k, deadline) in self.deadlines.iter().enumerate() {
            let at = deadline.get();
            if at <= now {
                deadline.set(NEVER);
                self.set_level(FIRST_SPI + k as u32, true);
            } else {
                next = next.min(at);
            }
        }
        self.next_deadline.set(next);
        self.next_deadline()
    }

    /// One edge on PPI or SPI `id` (16-63): the interrupt becomes pending
    /// until acknowledged, as a write to GICD_ISPENDR would make it (also
    /// for a level-sensitive one). A PPI is vCPU 0's (see
    /// [`Self::trigger_private`]). Other ids are ignored.
    pub fn trigger(&self, id: u32) {
        match id {
            16..FIRST_SPI => self.trigger_private(0, id),
            FIRST_SPI..NUM_INTERRUPTS => {
                self.tracked(|| set_bits(&self.spis.latched, 1 << (id - FIRST_SPI), true));
            }
            _ => {}
        }
    }

    /// Drives the input line of PPI `id` (16-31) of vCPU `vcpu`, as
    /// [`Self::set_level`] does an SPI's. Other ids and vCPUs are ignored.
    pub fn set_private_level(&self, vcpu: usize, id: u32, high: bool) {
        self.tracked(|| self.drive_private_line(vcpu, id, high));
    }

    /// One edge on PPI `id` (16-31) of vCPU `vcpu`, as [`Self::trigger`]
    /// is on an SPI. Other ids and vCPUs are ignored.
    pub fn trigger_private(&self, vcpu: usize, id: u32) {
        if vcpu < self.vcpus && (16..FIRST_SPI).contains(&id) {
            self.tracked(|| set_bits(&self.banked[vcpu].bank.latched, 1 << id, true));
        }
    }

    /// Drives PPI `id`'s line of `vcpu` like [`Self::set_private_level`],
    /// noting nothing for kicks: for the vCPU's own backend, which presents
    /// the change itself (no other vCPU can gain from it).
    pub(crate) fn drive_private_line(&self, vcpu: usize, id: u32, high: bool) {
        if vcpu < self.vcpus && (16..FIRST_SPI).contains(&id) {
            self.banked[vcpu].bank.drive(id, high);
        }
    }

    /// The vCPUs (bit n: vCPU n) whose forwarded interrupts gained one
    /// since the last call, through an action on this GIC (a distributor
    /// write, a line or edge, a GICC_EOIR or GICC_DIR, another vCPU's list
    /// registers read back), and whose backend has not filled its list
    /// registers since: the kernel kicks the physical CPUs they run on.
    /// What a [`GicV2Backend`] does in its own vCPU's exit (the guest's
    /// distributor accesses, reading back its list registers) does not
    /// count for its own vCPU, which refreshes before it enters again.
    /// Clears the set. Always 0 with one vCPU.
    pub fn take_kicks(&self) -> u32 {
        self.kicks.replace(0)
    }

    /// Runs `change` and notes every vCPU whose forwarded interrupts it
    /// grew (for [`Self::take_kicks`] and the vCPU's backend). With one
    /// vCPU it only runs `change`: nobody else needs to hear of it.
    pub(crate) fn tracked<R>(&self, change: impl FnOnce() -> R) -> R {
        self.track(0, change)
    }

    /// [`Self::tracked`] for a change `vcpu`'s own backend makes (taking
    /// interrupts out of its list registers): only the other vCPUs are
    /// noted, as the backend presents its own vCPU's gains itself.
    pub(crate) fn tracked_by<R>(&self, vcpu: usize, change: impl FnOnce() -> R) -> R {
        self.track(1 << vcpu, change)
    }

    /// Runs `change`, noting the vCPUs not in `quiet` that it gave an
    /// interrupt.
    fn track<R>(&self, quiet: u32, change: impl FnOnce() -> R) -> R {
        if self.vcpus == 1 {
            return change();
        }
        let mut before = [0; MAX_VCPUS];
        for (vcpu, forwarded) in before.iter_mut().enumerate().take(self.vcpus) {
            *forwarded = self.forwarded(vcpu);
        }
        let result = change();
        let mut grown = 0;
        for (vcpu, forwarded) in before.iter().enumerate().take(self.vcpus) {
            if self.forwarded(vcpu) & !forwarded != 0 {
                grown |= 1 << vcpu;
            }
        }
        grown &= !quiet;
        if grown != 0 {
            self.kicks.set(self.kicks.get() | grown);
            self.stale.set(self.stale.get() | grown);
        }
        result
    }

    /// Whether `vcpu`'s forwarded interrupts grew since its backend last
    /// said it had seen them ([`Self::seen`]).
    pub(crate) fn is_stale(&self, vcpu: usize) -> bool {
        self.stale.get() & (1 << vcpu) != 0
    }

    /// `vcpu`'s backend is about to present everything forwarded to it:
    /// it needs no kick and is no longer stale.
    pub(crate) fn seen(&self, vcpu: usize) {
        let others = !(1 << vcpu);
        self.stale.set(self.stale.get() & others);
        self.kicks.set(self.kicks.get() & others);
    }

    /// The bank holding interrupt `id` for `vcpu`, and its bit there.
    fn bank(&self, vcpu: usize, id: u32) -> Option<(&Bank, u32)> {
        match id {
            0..FIRST_SPI => Some((&self.banked[vcpu].bank, id)),
            FIRST_SPI..NUM_INTERRUPTS => Some((&self.spis, id - FIRST_SPI)),
            _ => None,
        }
    }

    /// The bits of the existing vCPUs in a target list or source byte.
    fn vcpu_mask(&self) -> u8 {
        ((1u32 << self.vcpus) - 1) as u8
    }

    /// The sources of SGI `sgi` pending for `vcpu` (bit n: vCPU n).
    fn sgi_sources(&self, vcpu: usize, sgi: u32) -> u8 {
        self.banked[vcpu].sgi_sources.as_array_of_cells()[sgi as usize].get()
    }

    /// Sets the sources of SGI `sgi` pending for `vcpu`; the SGI is
    /// pending while there is one.
    fn set_sgi_sources(&self, vcpu: usize, sgi: u32, sources: u8) {
        let banked = &self.banked[vcpu];
        banked.sgi_sources.as_array_of_cells()[sgi as usize].set(sources);
        set_bits(&banked.bank.latched, 1 << sgi, sources != 0);
    }

    /// Makes SGI `sgi` pending for `vcpu` from source vCPU `source` (its
    /// pending state comes back from a list register).
    pub(crate) fn add_sgi_source(&self, vcpu: usize, sgi: u32, source: u32) {
        if (sgi as usize) < NUM_SGIS && (source as usize) < self.vcpus {
            let sources = self.sgi_sources(vcpu, sgi) | (1 << source);
            self.set_sgi_sources(vcpu, sgi, sources);
        }
    }

    /// Takes the lowest-numbered source of SGI `sgi` pending for `vcpu`,
    /// if any: that one is no longer pending, the others stay.
    pub(crate) fn take_sgi_source(&self, vcpu: usize, sgi: u32) -> Option<u32> {
        if sgi as usize >= NUM_SGIS {
            return None;
        }
        let sources = self.sgi_sources(vcpu, sgi);
        if sources == 0 {
            return None;
        }
        self.set_sgi_sources(vcpu, sgi, sources & (sources - 1));
        Some(sources.trailing_zeros())
    }

    /// Whether the distributor forwards interrupt `id` to `vcpu` when it
    /// is pending: enabled, inactive and routed to `vcpu` (every banked
    /// id is; an SPI if `vcpu` is its lowest target), with the distributor
    /// enabled.
    pub(crate) fn forwards(&self, vcpu: usize, id: u32) -> bool {
        let Some((bank, k)) = self.bank(vcpu, id) else {
            return false;
        };
        let routed = if id < FIRST_SPI {
            u32::MAX
        } else {
            self.routes.get()[vcpu]
        };
        self.distributor_enabled.get()
            && (bank.enabled.get() & !bank.active.get() & routed) & (1 << k) != 0
    }

    /// Interrupt `id`'s priority for `vcpu` (0 for ids that do not exist).
    pub(crate) fn priority(&self, vcpu: usize, id: u32) -> u8 {
        self.bank(vcpu, id).map_or(0, |(bank, k)| bank.priority(k))
    }

    /// Sets or clears interrupt `id`'s active state for `vcpu` (the list
    /// registers report what the guest did with it).
    pub(crate) fn set_active(&self, vcpu: usize, id: u32, active: bool) {
        if let Some((bank, k)) = self.bank(vcpu, id) {
            set_bits(&bank.active, 1 << k, active);
        }
    }

    /// Latches PPI or SPI `id` pending for `vcpu` (its pending state comes
    /// back from a list register). SGIs are pending per source:
    /// [`Self::add_sgi_source`].
    pub(crate) fn set_latched(&self, vcpu: usize, id: u32) {
        if let Some((bank, k)) = self.bank(vcpu, id).filter(|_| id >= NUM_SGIS as u32) {
            set_bits(&bank.latched, 1 << k, true);
        }
    }

    /// Clears PPI or SPI `id`'s latched pending state for `vcpu` (it moved
    /// into a list register); a level-sensitive one stays pending while
    /// its line is high. SGIs: [`Self::take_sgi_source`].
    pub(crate) fn clear_latched(&self, vcpu: usize, id: u32) {
        if let Some((bank, k)) = self.bank(vcpu, id).filter(|_| id >= NUM_SGIS as u32) {
            set_bits(&bank.latched, 1 << k, false);
        }
    }

    /// Whether interrupt `id`'s pending state for `vcpu` is latched (an
    /// edge, GICD_ISPENDR, an SGI from any source), not only its line's
    /// level.
    pub(crate) fn is_latched(&self, vcpu: usize, id: u32) -> bool {
        self.bank(vcpu, id)
            .is_some_and(|(bank, k)| bank.latched.get() & (1 << k) != 0)
    }

    /// Whether interrupt `id` is edge-triggered for `vcpu`.
    pub(crate) fn is_edge(&self, vcpu: usize, id: u32) -> bool {
        self.bank(vcpu, id)
            .is_some_and(|(bank, k)| bank.edge.get() & (1 << k) != 0)
    }

    /// The interrupts the distributor forwards to `vcpu` now: pending,
    /// enabled, inactive and routed to it, while the distributor is
    /// enabled (a mask, bit n for id n).
    pub(crate) fn forwarded(&self, vcpu: usize) -> u64 {
        if !self.distributor_enabled.get() {
            return 0;
        }
        let banked = self.banked[vcpu].bank.ready();
        let spis = self.spis.ready() & self.routes.get()[vcpu];
        (u64::from(spis) << 32) | u64::from(banked)
    }

    /// The highest-priority interrupt of `candidates`, with its priority
    /// for `vcpu` (among equal priorities, the lowest id).
    pub(crate) fn best_of(&self, vcpu: usize, mut candidates: u64) -> Option<(u32, u8)> {
        // Per-id cells: no copy of the whole priority arrays per call.
        let banked = self.banked[vcpu].bank.priorities.as_array_of_cells();
        let spis = self.spis.priorities.as_array_of_cells();
        let mut best: Option<(u32, u8)> = None;
        while candidates != 0 {
            let id = candidates.trailing_zeros();
            candidates &= candidates - 1;
            let priority = if id < FIRST_SPI {
                banked[id as usize].get()
            } else {
                spis[(id - FIRST_SPI) as usize].get()
            };
            if best.is_none_or(|(_, best_priority)| priority < best_priority) {
                best = Some((id, priority));
            }
        }
        best
    }
}

/// A device's interrupt line: one SPI of its VM's [`VirtualGic`]. The
/// device raises it while its interrupt is asserted (level-sensitive, as
/// the guest platform's devices are) and lowers it when it is not; the
/// GIC and the VM's backend do the rest. Cheap to copy: a reference and an
/// id.
///
/// ```
/// use capsules::virtual_gic::VirtualGic;
/// let gic = VirtualGic::new();
/// let line = gic.line(34);
/// line.set(true);
/// assert!(line.is_high());
/// line.lower();
/// line.raise_at(Some(1000)); // rises when the clock reads 1000
/// assert_eq!(gic.raise_due(999), Some(1000));
/// assert!(!line.is_high());
/// assert_eq!(gic.raise_due(1000), None);
/// assert!(line.is_high());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct InterruptLine<'a> {
    gic: &'a VirtualGic,
    id: u32,
}

impl InterruptLine<'_> {
    /// The interrupt id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Drives the line high (`true`) or low.
    pub fn set(&self, high: bool) {
        self.gic.set_level(self.id, high);
    }

    /// Drives the line high.
    pub fn raise(&self) {
        self.set(true);
    }

    /// Drives the line low.
    pub fn lower(&self) {
        self.set(false);
    }

    /// Whether the line is high.
    pub fn is_high(&self) -> bool {
        self.gic.spis.lines.get() & (1 << (self.id - FIRST_SPI)) != 0
    }

    /// Schedules the line to rise when the hypervisor's clock reads
    /// `deadline` (`None` cancels): [`VirtualGic::raise_at`].
    pub fn raise_at(&self, deadline: Option<u64>) {
        self.gic.raise_at(self.id, deadline);
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
