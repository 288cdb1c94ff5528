//! A virtual GICv2: the guest's interrupt controller at 0x0800_0000.
//!
//! One VM with one CPU sees a GICv2 distributor at [`DISTRIBUTOR_BASE`] and
//! its CPU interface at [`CPU_INTERFACE_BASE`] (`arm,cortex-a15-gic` in the
//! device tree), with the registers Linux's `irq-gic.c` uses. There are 64
//! interrupt ids: SGIs 0-15, PPIs 16-31 and SPIs 32-63 (SPI n is id 32 + n).
//! Interrupts reach the guest through one IRQ line: the kernel asks
//! [`VirtualGic::pending_irq`] before every entry and sets HCR.VI from it.
//! Devices drive lines with [`VirtualGic::set_level`] (level-sensitive
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
use hyp::dispatch::{MmioDevice, MmioError};
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

    /// Whether the CPU interface signals an IRQ now: the interrupt GICC_IAR
    /// would acknowledge exists. The kernel drives HCR.VI from this.
    pub fn pending_irq(&self) -> bool {
        self.highest_pending().is_some()
    }

    /// The id GICC_IAR would acknowledge now, if any.
    pub fn highest_pending(&self) -> Option<u32> {
        self.signalled().map(|(id, _)| id)
    }

    fn pending(&self) -> u64 {
        self.latched.get() | (self.lines.get() & !self.edge.get())
    }

    /// The highest-priority pending, enabled, inactive interrupt targeting
    /// CPU 0, with its priority, when both enables are set.
    fn best_candidate(&self) -> Option<(u32, u8)> {
        if !self.distributor_enabled.get() || self.cpu_control.get() & GICC_CTLR_ENABLE == 0 {
            return None;
        }
        let mut candidates =
            self.pending() & self.enabled.get() & !self.active.get() & self.targeted.get();
        let priorities = self.priorities.get();
        let mut best: Option<(u32, u8)> = None;
        while candidates != 0 {
            let id = candidates.trailing_zeros();
            candidates &= candidates - 1;
            let priority = priorities[id as usize];
            if best.is_none_or(|(_, best_priority)| priority < best_priority) {
                best = Some((id, priority));
            }
        }
        best
    }

    /// The group priority of `priority` under the current binary point.
    fn group_priority(&self, priority: u8) -> u32 {
        u32::from(priority) & (0xff << (self.binary_point.get() + 1)) & 0xff
    }

    fn running_priority(&self) -> u32 {
        match self.active_priorities.get() {
            0 => IDLE_PRIORITY,
            levels => levels.trailing_zeros() << 3,
        }
    }

    /// The best candidate if its priority passes GICC_PMR and its group
    /// priority preempts the running priority.
    fn signalled(&self) -> Option<(u32, u8)> {
        self.best_candidate().filter(|&(_, priority)| {
            priority < self.priority_mask.get()
                && (self.active_priorities.get() == 0
                    || self.group_priority(priority) < self.running_priority())
        })
    }

    /// GICC_IAR: acknowledges the signalled interrupt.
    fn acknowledge(&self) -> u32 {
        let Some((id, priority)) = self.signalled() else {
            return SPURIOUS;
        };
        self.latched.set(self.latched.get() & !bit(id));
        self.active.set(self.active.get() | bit(id));
        let level = self.group_priority(priority) >> 3;
        self.active_priorities
            .set(self.active_priorities.get() | (1 << level));
        // SGIs carry their source CPU in bits 12:10, always CPU 0 here.
        id
    }

    /// GICC_EOIR: priority drop, and deactivation in EOImode 0.
    fn end_of_interrupt(&self, value: u32) {
        let id = value & 0x3ff;
        if id >= NUM_INTERRUPTS {
            return;
        }
        let levels = self.active_priorities.get();
        self.active_priorities.set(levels & levels.wrapping_sub(1));
        if self.cpu_control.get() & GICC_CTLR_EOIMODE == 0 {
            self.deactivate(value);
        }
    }

    /// GICC_DIR (and the second half of EOIR in EOImode 0).
    fn deactivate(&self, value: u32) {
        let id = value & 0x3ff;
        if id < NUM_INTERRUPTS {
            self.active.set(self.active.get() & !bit(id));
        }
    }

    /// GICD_SGIR: a software-generated interrupt from CPU 0.
    fn generate_sgi(&self, value: u32) {
        let sgi = value & 0xf;
        let filter = (value >> 24) & 0x3;
        let targets = (value >> 16) & 0xff;
        // Filter 1 (every CPU but the sender) names nobody; 3 is reserved.
        let to_self = match filter {
            0 => targets & 1 != 0,
            2 => true,
            _ => false,
        };
        if to_self {
            self.latched.set(self.latched.get() | bit(sgi));
        }
    }

    /// The byte-accessible distributor registers, by byte.
    fn distributor_byte(&self, offset: u64) -> Option<u8> {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR if index < NUM_INTERRUPTS => {
                Some(self.priorities.get()[index as usize])
            }
            GICD_ITARGETSR..GICD_ICFGR if index < NUM_INTERRUPTS => {
                Some(u8::from(self.targeted.get() & bit(index) != 0))
            }
            GICD_CPENDSGIR..0xf30 => {
                let sgi = index & 0xf;
                Some(u8::from(self.latched.get() & bit(sgi) != 0))
            }
            GICD_IPRIORITYR..GICD_ICFGR => Some(0),
            _ => None,
        }
    }

    fn set_distributor_byte(&self, offset: u64, value: u8) {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR if index < NUM_INTERRUPTS => {
                let mut priorities = self.priorities.get();
                priorities[index as usize] = value & PRIORITY_BITS;
                self.priorities.set(priorities);
            }
            // SGIs and PPIs always target CPU 0 (writes ignored); only an
            // SPI's bit 0 (CPU 0, the one CPU) is stored.
            GICD_ITARGETSR..GICD_ICFGR if (32..NUM_INTERRUPTS).contains(&index) => {
                let targeted = self.targeted.get() & !bit(index);
                self.targeted
                    .set(targeted | (u64::from(value & 1) << index));
            }
            GICD_CPENDSGIR..GICD_SPENDSGIR if value & 1 != 0 => {
                self.latched.set(self.latched.get() & !bit(index & 0xf));
            }
            GICD_SPENDSGIR..0xf30 if value & 1 != 0 => {
                self.latched.set(self.latched.get() | bit(index & 0xf));
            }
            _ => {}
        }
    }

    fn distributor_word(&self, offset: u64) -> u32 {
        if self.distributor_byte(offset).is_some() {
            return (0..4).fold(0, |word, byte| {
                let value = self.distributor_byte(offset + byte).unwrap_or(0);
                word | (u32::from(value) << (8 * byte))
            });
        }
        let n = (offset & 0x7f) / 4;
        match offset {
            GICD_CTLR => u32::from(self.distributor_enabled.get()),
            GICD_TYPER => TYPER_VALUE,
            GICD_IIDR => DISTRIBUTOR_IIDR,
            0x100..0x200 => word_of(self.enabled.get(), n),
            0x200..0x300 => word_of(self.pending(), n),
            0x300..0x400 => word_of(self.active.get(), n),
            GICD_ICFGR => 0xaaaa_aaaa,
            0xc04..0xc10 => {
                let first = ((offset - GICD_ICFGR) / 4 * 16) as u32;
                (0..16).fold(0, |word, k| {
                    let edge = self.edge.get() & bit(first + k) != 0;
                    word | (u32::from(edge) << (2 * k + 1))
                })
            }
            GICD_ID..0x1000 => GICD_ID_VALUES[((offset - GICD_ID) / 4) as usize],
            // IGROUPR (Group 0 only), SGIR (write-only), reserved space.
            _ => 0,
        }
    }

    fn set_distributor_word(&self, offset: u64, value: u32) {
        if self.distributor_byte(offset).is_some() {
            for byte in 0..4 {
                self.set_distributor_byte(offset + byte, (value >> (8 * byte)) as u8);
            }
            return;
        }
        let n = (offset & 0x7f) / 4;
        let ids = bits_of(value, n);
        match offset {
            GICD_CTLR => self.distributor_enabled.set(value & 1 != 0),
            GICD_ISENABLER..GICD_ICENABLER => self.enabled.set(self.enabled.get() | ids),
            // SGIs cannot be disabled.
            GICD_ICENABLER..GICD_ISPENDR => {
                self.enabled.set(self.enabled.get() & !(ids & !SGI_MASK));
            }
            // SGI pending bits are read-only here: GICD_S/CPENDSGIR own them.
            GICD_ISPENDR..GICD_ICPENDR => {
                self.latched.set(self.latched.get() | (ids & !SGI_MASK));
            }
            // A level-sensitive interrupt whose line is high stays pending.
            GICD_ICPENDR..GICD_ISACTIVER => {
                self.latched.set(self.latched.get() & !(ids & !SGI_MASK));
            }
            GICD_ISACTIVER..GICD_ICACTIVER => self.active.set(self.active.get() | ids),
            GICD_ICACTIVER..GICD_IPRIORITYR => self.active.set(self.active.get() & !ids),
            0xc04..0xc10 => {
                let first = ((offset - GICD_ICFGR) / 4 * 16) as u32;
                let mut edge = self.edge.get();
                for k in 0..16 {
                    edge &= !bit(first + k);
                    if value & (1 << (2 * k + 1)) != 0 {
                        edge |= bit(first + k);
                    }
                }
                self.edge.set(edge);
            }
            GICD_SGIR => self.generate_sgi(value),
            // CTLR's other bits, TYPER, IIDR, IGROUPR, ICFGR0, the ID
            // registers and reserved space: ignored.
            _ => {}
        }
    }

    fn cpu_interface_word(&self, offset: u64) -> u32 {
        match offset {
            GICC_CTLR => self.cpu_control.get(),
            GICC_PMR => u32::from(self.priority_mask.get()),
            GICC_BPR => self.binary_point.get(),
            GICC_IAR => self.acknowledge(),
            GICC_RPR => self.running_priority(),
            GICC_HPPIR => self.best_candidate().map_or(SPURIOUS, |(id, _)| id),
            GICC_AIAR | GICC_AHPPIR => SPURIOUS,
            GICC_APR0 => self.active_priorities.get(),
            GICC_IIDR => CPU_INTERFACE_IIDR,
            // EOIR, DIR, AEOIR (write-only), ABPR and reserved space.
            _ => 0,
        }
    }

    fn set_cpu_interface_word(&self, offset: u64, value: u32) {
        match offset {
            GICC_CTLR => self
                .cpu_control
                .set(value & (GICC_CTLR_ENABLE | GICC_CTLR_EOIMODE)),
            GICC_PMR => self.priority_mask.set(value as u8 & PRIORITY_BITS),
            GICC_BPR => self.binary_point.set((value & 7).max(MIN_BINARY_POINT)),
            GICC_EOIR => self.end_of_interrupt(value),
            GICC_APR0 => self.active_priorities.set(value),
            GICC_DIR => self.deactivate(value),
            // IAR, RPR, HPPIR, IIDR (read-only), the Group 1 aliases and
            // reserved space.
            _ => {}
        }
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

/// The distributor's window, as a virtual device.
#[derive(Clone, Copy, Debug)]
pub struct GicDistributor<'a> {
    gic: &'a VirtualGic,
}

impl MmioDevice for GicDistributor<'_> {
    fn name(&self) -> &'static str {
        DISTRIBUTOR_NAME
    }

    fn base(&self) -> u64 {
        DISTRIBUTOR_BASE
    }

    fn size(&self) -> u64 {
        DISTRIBUTOR_SIZE
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        Ok(match check_access(offset, size)? {
            AccessSize::Word => self.gic.distributor_word(offset),
            AccessSize::Byte => self.gic.distributor_byte(offset).map_or(0, u32::from),
            _ => 0,
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        match check_access(offset, size)? {
            AccessSize::Word => self.gic.set_distributor_word(offset, value),
            AccessSize::Byte if self.gic.distributor_byte(offset).is_some() => {
                self.gic.set_distributor_byte(offset, value as u8)
            }
            _ => {}
        }
        Ok(())
    }
}

/// The CPU interface's window, as a virtual device.
#[derive(Clone, Copy, Debug)]
pub struct GicCpuInterface<'a> {
    gic: &'a VirtualGic,
}

impl MmioDevice for GicCpuInterface<'_> {
    fn name(&self) -> &'static str {
        CPU_INTERFACE_NAME
    }

    fn base(&self) -> u64 {
        CPU_INTERFACE_BASE
    }

    fn size(&self) -> u64 {
        CPU_INTERFACE_SIZE
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        let word = check_access(offset, size)? == AccessSize::Word;
        Ok(if word {
            self.gic.cpu_interface_word(offset)
        } else {
            0
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        if check_access(offset, size)? == AccessSize::Word {
            self.gic.set_cpu_interface_word(offset, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessSize::{Byte, Doubleword, Halfword, Word};

    const UART: u32 = 33;
    const TIMER: u32 = 27;

    fn dist_read(gic: &VirtualGic, offset: u64) -> u32 {
        gic.distributor().read(offset, Word).unwrap()
    }

    fn dist_write(gic: &VirtualGic, offset: u64, value: u32) {
        gic.distributor().write(offset, Word, value).unwrap();
    }

    fn cpu_read(gic: &VirtualGic, offset: u64) -> u32 {
        gic.cpu_interface().read(offset, Word).unwrap()
    }

    fn cpu_write(gic: &VirtualGic, offset: u64, value: u32) {
        gic.cpu_interface().write(offset, Word, value).unwrap();
    }

    /// Sets `id`'s priority with a byte write and enables it.
    fn enable(gic: &VirtualGic, id: u32, priority: u8) {
        let offset = GICD_IPRIORITYR + u64::from(id);
        gic.distributor()
            .write(offset, Byte, priority.into())
            .unwrap();
        dist_write(gic, GICD_ISENABLER + u64::from(id / 32) * 4, 1 << (id % 32));
    }

    /// A GIC set up as Linux leaves it: both enables, PMR 0xf0.
    fn running_gic() -> VirtualGic {
        let gic = VirtualGic::new();
        dist_write(&gic, GICD_CTLR, 1);
        cpu_write(&gic, GICC_PMR, 0xf0);
        cpu_write(&gic, GICC_CTLR, 1);
        gic
    }

    fn is_set(gic: &VirtualGic, base: u64, id: u32) -> bool {
        dist_read(gic, base + u64::from(id / 32) * 4) & (1 << (id % 32)) != 0
    }

    #[test]
    fn reset_values_and_identification() {
        let gic = VirtualGic::new();
        assert_eq!(dist_read(&gic, GICD_CTLR), 0);
        assert_eq!(dist_read(&gic, GICD_TYPER), 1);
        assert_eq!(dist_read(&gic, GICD_IIDR), 0x0200_043b);
        assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "SGIs enabled");
        assert_eq!(dist_read(&gic, GICD_ICFGR), 0xaaaa_aaaa, "SGIs edge");
        assert_eq!(dist_read(&gic, GICD_ICFGR + 4), 0, "PPIs level");
        assert_eq!(dist_read(&gic, GICD_ITARGETSR), 0x0101_0101);
        assert_eq!(dist_read(&gic, GICD_ITARGETSR + 0x20), 0x0101_0101);
        assert_eq!(dist_read(&gic, 0xfe8), 0x2b, "ICPIDR2: GICv2");
        assert_eq!(dist_read(&gic, 0xffc), 0xb1);
        assert_eq!(cpu_read(&gic, GICC_IIDR), 0x0202_143b);
        assert_eq!(cpu_read(&gic, GICC_BPR), 2);
        assert_eq!(cpu_read(&gic, GICC_PMR), 0);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
    }

    #[test]
    fn nothing_pending_reads_spurious() {
        let gic = running_gic();
        assert!(!gic.pending_irq());
        assert_eq!(gic.highest_pending(), None);
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
        assert_eq!(cpu_read(&gic, GICC_HPPIR), SPURIOUS);
        assert_eq!(cpu_read(&gic, GICC_AIAR), SPURIOUS);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xff, "spurious activates nothing");
    }

    #[test]
    fn distributor_and_cpu_interface_enables_gate() {
        let gic = VirtualGic::new();
        enable(&gic, UART, 0xa0);
        cpu_write(&gic, GICC_PMR, 0xff);
        gic.set_level(UART, true);
        assert!(!gic.pending_irq(), "both disabled");
        dist_write(&gic, GICD_CTLR, 1);
        assert!(!gic.pending_irq(), "CPU interface disabled");
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
        cpu_write(&gic, GICC_CTLR, 1);
        assert!(gic.pending_irq());
        dist_write(&gic, GICD_CTLR, 0);
        assert!(!gic.pending_irq(), "distributor disabled");
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
        dist_write(&gic, GICD_CTLR, 1);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    }

    #[test]
    fn enable_bits_gate_and_sgis_stay_enabled() {
        let gic = running_gic();
        gic.set_level(UART, true);
        assert!(!gic.pending_irq(), "disabled at reset");
        assert!(is_set(&gic, GICD_ISPENDR, UART), "pending though disabled");
        enable(&gic, UART, 0xa0);
        assert!(is_set(&gic, GICD_ICENABLER, UART));
        assert_eq!(gic.highest_pending(), Some(UART));
        dist_write(&gic, GICD_ICENABLER + 4, 1 << (UART - 32));
        assert!(!is_set(&gic, GICD_ISENABLER, UART));
        assert!(!gic.pending_irq());
        dist_write(&gic, GICD_ICENABLER, 0xffff_ffff);
        assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "only PPIs disable");
    }

    #[test]
    fn priority_mask_must_be_strictly_lower() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        cpu_write(&gic, GICC_PMR, 0xa0);
        assert!(!gic.pending_irq(), "equal to PMR is masked");
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
        assert_eq!(cpu_read(&gic, GICC_HPPIR), UART, "HPPIR ignores PMR");
        cpu_write(&gic, GICC_PMR, 0xa8);
        assert!(gic.pending_irq());
        cpu_write(&gic, GICC_PMR, 0xff);
        assert_eq!(cpu_read(&gic, GICC_PMR), 0xf8, "5 priority bits");
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    }

    #[test]
    fn highest_priority_wins_then_lowest_id() {
        let gic = running_gic();
        for (id, priority) in [(40, 0x80), (35, 0x60), (34, 0x60), (UART, 0x90)] {
            enable(&gic, id, priority);
            gic.trigger(id);
        }
        assert_eq!(gic.highest_pending(), Some(34));
        let order: [u32; 4] = core::array::from_fn(|_| {
            let id = cpu_read(&gic, GICC_IAR);
            cpu_write(&gic, GICC_EOIR, id);
            id
        });
        assert_eq!(order, [34, 35, 40, UART]);
    }

    #[test]
    fn preemption_and_running_priority_with_eoi() {
        let gic = running_gic();
        enable(&gic, 40, 0x80);
        enable(&gic, 41, 0x80);
        enable(&gic, 42, 0x40);
        gic.trigger(40);
        assert_eq!(cpu_read(&gic, GICC_IAR), 40);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0x80);
        gic.trigger(41);
        assert!(!gic.pending_irq(), "same priority does not preempt");
        assert_eq!(cpu_read(&gic, GICC_HPPIR), 41);
        gic.trigger(42);
        assert_eq!(cpu_read(&gic, GICC_IAR), 42, "higher priority preempts");
        assert_eq!(cpu_read(&gic, GICC_RPR), 0x40);
        assert_eq!(cpu_read(&gic, GICC_APR0), (1 << 8) | (1 << 16));
        cpu_write(&gic, GICC_EOIR, 42);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0x80, "back to the preempted one");
        assert!(!gic.pending_irq());
        cpu_write(&gic, GICC_EOIR, 40);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
        assert_eq!(cpu_read(&gic, GICC_IAR), 41);
    }

    #[test]
    fn binary_point_groups_priorities() {
        let gic = running_gic();
        cpu_write(&gic, GICC_BPR, 0);
        assert_eq!(cpu_read(&gic, GICC_BPR), 2, "clamped to the minimum");
        cpu_write(&gic, GICC_BPR, 4); // group priority: bits 7:5
        enable(&gic, 40, 0x78);
        enable(&gic, 41, 0x68);
        enable(&gic, 42, 0x38);
        gic.trigger(40);
        assert_eq!(cpu_read(&gic, GICC_IAR), 40);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0x60, "group priority of 0x78");
        gic.trigger(41);
        assert!(!gic.pending_irq(), "0x68 is in the same group as 0x78");
        gic.trigger(42);
        assert_eq!(cpu_read(&gic, GICC_IAR), 42, "0x38 is a higher group");
    }

    #[test]
    fn sgi_target_filters_and_source() {
        let gic = running_gic();
        enable(&gic, 3, 0x20);
        for (value, delivered) in [
            (0x0002_0003, false), // list: CPU 1 only
            (0x0100_0003, false), // every CPU but the sender
            (0x0300_0003, false), // reserved filter
            (0x0001_0003, true),  // list: CPU 0
            (0x0200_0003, true),  // the sender
        ] {
            dist_write(&gic, GICD_SGIR, value);
            assert_eq!(gic.pending_irq(), delivered, "SGIR {value:#x}");
            assert_eq!(
                gic.distributor().read(GICD_SPENDSGIR + 3, Byte),
                Ok(u32::from(delivered))
            );
            if delivered {
                let iar = cpu_read(&gic, GICC_IAR);
                assert_eq!((iar & 0x3ff, (iar >> 10) & 7), (3, 0), "source CPU 0");
                cpu_write(&gic, GICC_EOIR, iar);
            }
        }
        assert_eq!(dist_read(&gic, GICD_SGIR), 0, "write-only");
        dist_write(&gic, GICD_SGIR, 0x0200_0005);
        gic.distributor()
            .write(GICD_CPENDSGIR + 5, Byte, 1)
            .unwrap();
        assert!(!gic.pending_irq(), "CPENDSGIR clears");
        gic.distributor()
            .write(GICD_SPENDSGIR + 4, Byte, 1)
            .unwrap();
        assert_eq!(dist_read(&gic, GICD_SPENDSGIR + 4), 1);
    }

    #[test]
    fn level_interrupt_pending_while_line_high() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
        assert!(is_set(&gic, GICD_ISPENDR, UART), "active and pending");
        assert!(is_set(&gic, GICD_ISACTIVER, UART));
        assert!(!gic.pending_irq(), "an active interrupt is not signalled");
        cpu_write(&gic, GICC_EOIR, UART);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART, "line still high");
        gic.set_level(UART, false);
        assert!(!is_set(&gic, GICD_ISPENDR, UART));
        cpu_write(&gic, GICC_EOIR, UART);
        assert!(!is_set(&gic, GICD_ISACTIVER, UART));
        assert!(!gic.pending_irq());
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    }

    #[test]
    fn edge_interrupt_pending_once_per_edge() {
        let gic = running_gic();
        enable(&gic, TIMER, 0xa0);
        dist_write(&gic, GICD_ICFGR + 4, 2 << (2 * (TIMER - 16)));
        assert_eq!(dist_read(&gic, GICD_ICFGR + 4), 2 << 22);
        gic.trigger(TIMER);
        gic.trigger(TIMER);
        assert_eq!(cpu_read(&gic, GICC_IAR), TIMER);
        assert!(!is_set(&gic, GICD_ISPENDR, TIMER), "edges do not count");
        gic.set_level(TIMER, true);
        gic.set_level(TIMER, true);
        assert!(is_set(&gic, GICD_ISPENDR, TIMER), "pending and active");
        assert!(is_set(&gic, GICD_ISACTIVER, TIMER));
        assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
        cpu_write(&gic, GICC_EOIR, TIMER);
        assert_eq!(cpu_read(&gic, GICC_IAR), TIMER, "the second edge");
        cpu_write(&gic, GICC_EOIR, TIMER);
        assert!(!gic.pending_irq(), "a line held high is one edge");
        gic.set_level(TIMER, false);
        gic.set_level(TIMER, true);
        assert!(gic.pending_irq(), "a new rising edge");
    }

    #[test]
    fn set_and_clear_pending() {
        let gic = running_gic();
        enable(&gic, 40, 0xa0);
        dist_write(&gic, GICD_ISPENDR + 4, 1 << 8);
        assert_eq!(gic.highest_pending(), Some(40));
        dist_write(&gic, GICD_ICPENDR + 4, 1 << 8);
        assert!(!gic.pending_irq());
        gic.set_level(40, true);
        dist_write(&gic, GICD_ICPENDR + 4, 1 << 8);
        assert!(is_set(&gic, GICD_ISPENDR, 40), "the line keeps it pending");
        gic.set_level(40, false);
        dist_write(&gic, GICD_ISPENDR + 4, 1 << 8);
        assert_eq!(cpu_read(&gic, GICC_IAR), 40);
        cpu_write(&gic, GICC_EOIR, 40);
        assert!(!gic.pending_irq(), "acknowledge cleared the latch");
        dist_write(&gic, GICD_ISPENDR, 1 << 2);
        assert_eq!(dist_read(&gic, GICD_ISPENDR), 0, "SGI bits are read-only");
    }

    #[test]
    fn set_and_clear_active() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        dist_write(&gic, GICD_ISACTIVER + 4, 1 << 1);
        gic.set_level(UART, true);
        assert!(!gic.pending_irq(), "active: not signalled");
        assert_eq!(dist_read(&gic, GICD_ICACTIVER + 4), 1 << 1);
        dist_write(&gic, GICD_ICACTIVER + 4, 1 << 1);
        assert_eq!(dist_read(&gic, GICD_ISACTIVER + 4), 0);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    }

    #[test]
    fn eoimode_one_splits_drop_and_deactivate() {
        let gic = running_gic();
        cpu_write(&gic, GICC_CTLR, 0xffff_ffff);
        assert_eq!(
            cpu_read(&gic, GICC_CTLR),
            GICC_CTLR_ENABLE | GICC_CTLR_EOIMODE
        );
        enable(&gic, 40, 0xa0);
        gic.trigger(40);
        assert_eq!(cpu_read(&gic, GICC_IAR), 40);
        cpu_write(&gic, GICC_EOIR, 40);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xff, "priority dropped");
        assert!(is_set(&gic, GICD_ISACTIVER, 40), "still active");
        cpu_write(&gic, GICC_DIR, 40);
        assert!(!is_set(&gic, GICD_ISACTIVER, 40));
    }

    #[test]
    fn out_of_range_ids_are_raz_wi() {
        let gic = running_gic();
        for offset in [
            GICD_ISENABLER + 8,
            GICD_ISPENDR + 8,
            GICD_ISACTIVER + 8,
            GICD_IPRIORITYR + 0x40,
            GICD_ITARGETSR + 0x40,
            GICD_ICFGR + 0x10,
            0x3fc,
        ] {
            dist_write(&gic, offset, 0xffff_ffff);
            assert_eq!(dist_read(&gic, offset), 0, "{offset:#x}");
        }
        gic.set_level(64, true);
        gic.trigger(1000);
        gic.set_level(5, true);
        gic.trigger(5);
        assert!(!gic.pending_irq());
        assert_eq!(dist_read(&gic, GICD_ISPENDR), 0, "SGIs have no line");
        enable(&gic, 40, 0xa0);
        gic.trigger(40);
        assert_eq!(cpu_read(&gic, GICC_IAR), 40);
        cpu_write(&gic, GICC_EOIR, SPURIOUS);
        cpu_write(&gic, GICC_EOIR, 100);
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xa0, "ignored EOIs drop nothing");
        assert!(is_set(&gic, GICD_ISACTIVER, 40));
    }

    #[test]
    fn read_only_registers_ignore_writes() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        for offset in [GICD_TYPER, GICD_IIDR, GICD_ICFGR, GICD_ITARGETSR, 0xfe8] {
            let before = dist_read(&gic, offset);
            dist_write(&gic, offset, !before);
            assert_eq!(dist_read(&gic, offset), before, "{offset:#x}");
        }
        dist_write(&gic, 0x080, 0xffff_ffff);
        assert_eq!(dist_read(&gic, 0x084), 0, "IGROUPR: Group 0 only");
        for offset in [GICC_RPR, GICC_HPPIR, GICC_IIDR, GICC_IAR] {
            cpu_write(&gic, offset, 0x1234);
        }
        assert_eq!(cpu_read(&gic, GICC_IIDR), 0x0202_143b);
        assert_eq!(
            cpu_read(&gic, GICC_RPR),
            0xff,
            "IAR write acknowledged nothing"
        );
        assert_eq!(cpu_read(&gic, GICC_EOIR), 0, "write-only");
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    }

    #[test]
    fn byte_access_to_priorities_and_targets() {
        let gic = running_gic();
        let gicd = gic.distributor();
        gicd.write(GICD_IPRIORITYR + 33, Byte, 0xa7).unwrap();
        assert_eq!(
            dist_read(&gic, GICD_IPRIORITYR + 32),
            0xa0 << 8,
            "low bits RAZ"
        );
        assert_eq!(gicd.read(GICD_IPRIORITYR + 33, Byte), Ok(0xa0));
        dist_write(&gic, GICD_IPRIORITYR + 36, 0x1020_3040);
        assert_eq!(gicd.read(GICD_IPRIORITYR + 38, Byte), Ok(0x20));
        assert_eq!(gicd.read(GICD_ITARGETSR + 27, Byte), Ok(0x01));
        gicd.write(GICD_ITARGETSR + 27, Byte, 0).unwrap();
        assert_eq!(gicd.read(GICD_ITARGETSR + 27, Byte), Ok(0x01), "banked");
        gicd.write(GICD_ITARGETSR + 33, Byte, 0xfe).unwrap();
        assert_eq!(dist_read(&gic, GICD_ITARGETSR + 32), 0x0101_0001);
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        assert!(
            !gic.pending_irq(),
            "an SPI targeting no CPU is not forwarded"
        );
        gicd.write(GICD_ITARGETSR + 33, Byte, 0xff).unwrap();
        assert_eq!(gicd.read(GICD_ITARGETSR + 33, Byte), Ok(0x01));
        assert!(gic.pending_irq());
    }

    #[test]
    fn other_narrow_accesses_are_raz_wi() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        let gicc = gic.cpu_interface();
        assert_eq!(gicc.read(GICC_IAR, Byte), Ok(0), "no acknowledge");
        assert_eq!(gicc.read(GICC_IAR, Halfword), Ok(0));
        assert!(gic.pending_irq());
        gicc.write(GICC_CTLR, Halfword, 0).unwrap();
        gic.distributor().write(GICD_CTLR, Byte, 0).unwrap();
        assert!(gic.pending_irq(), "narrow writes to CTLRs ignored");
        gic.distributor()
            .write(GICD_IPRIORITYR + 32, Halfword, 0)
            .unwrap();
        assert_eq!(gic.distributor().read(GICD_IPRIORITYR + 33, Byte), Ok(0xa0));
        assert_eq!(gic.distributor().read(GICD_TYPER, Byte), Ok(0));
    }

    #[test]
    fn misaligned_and_doubleword_accesses_abort() {
        let gic = VirtualGic::new();
        let (gicd, gicc) = (gic.distributor(), gic.cpu_interface());
        assert_eq!(gicd.read(0x401, Halfword), Err(MmioError::BadSize));
        assert_eq!(gicd.write(0x402, Word, 0), Err(MmioError::BadSize));
        assert_eq!(gicd.read(0x400, Doubleword), Err(MmioError::BadSize));
        assert_eq!(gicc.write(0x0, Doubleword, 0), Err(MmioError::BadSize));
        assert_eq!(gicc.read(0xd, Word), Err(MmioError::BadSize));
        assert_eq!(gicd.read(0x401, Byte), Ok(0));
    }

    #[test]
    fn any_access_anywhere_is_answered() {
        let gic = VirtualGic::new();
        let devices: [&dyn MmioDevice; 2] = [&gic.distributor(), &gic.cpu_interface()];
        for device in devices {
            for offset in 0..device.size() {
                for size in [Byte, Halfword, Word, Doubleword] {
                    let legal = size != Doubleword && offset % u64::from(size.bytes()) == 0;
                    let read = device.read(offset, size);
                    let write = device.write(offset, size, 0xffff_ffff);
                    assert_eq!(read.is_ok(), legal, "{} {offset:#x}", device.name());
                    assert_eq!(write.is_ok(), legal, "{} {offset:#x}", device.name());
                }
            }
        }
        assert_eq!(dist_read(&gic, GICD_TYPER), 1);
        assert_eq!(cpu_read(&gic, GICC_PMR), 0xf8);
        assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "SGIs stay enabled");
        assert_eq!(
            dist_read(&gic, GICD_ISENABLER + 4),
            0,
            "ICENABLER came last"
        );
    }

    #[test]
    fn reset_forgets_the_guest_but_not_the_lines() {
        let gic = running_gic();
        enable(&gic, UART, 0xa0);
        gic.set_level(UART, true);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
        gic.reset();
        assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
        assert_eq!(dist_read(&gic, GICD_ISACTIVER + 4), 0);
        assert!(!gic.pending_irq());
        assert!(is_set(&gic, GICD_ISPENDR, UART), "the UART still asserts");
        dist_write(&gic, GICD_CTLR, 1);
        cpu_write(&gic, GICC_PMR, 0xf0);
        cpu_write(&gic, GICC_CTLR, 1);
        enable(&gic, UART, 0xa0);
        assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    }
}
