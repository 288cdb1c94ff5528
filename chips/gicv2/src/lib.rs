// SPDX-License-Identifier: MIT OR Apache-2.0
//! Driver for an Arm GICv2 with the virtualization extensions.
//!
//! Register layouts and bits are those of the Arm Generic Interrupt
//! Controller Architecture Specification, GICv2 (IHI 0048B); the driver
//! targets the GIC-400 and QEMU's GICv2 (`-M virt,gic-version=2`). A GICv2
//! with the virtualization extensions has four register blocks, split
//! between the hypervisor and its VMs:
//!
//! | block | owner | driver |
//! |---|---|---|
//! | distributor (GICD) | hypervisor only | [`distributor::Distributor`] |
//! | CPU interface (GICC) | hypervisor only | [`cpu_interface::CpuInterface`] |
//! | virtual interface control (GICH) | hypervisor, programmed per VM | [`hyp_interface::HypInterface`] |
//! | virtual CPU interface (GICV) | the running VM | none: mapped by stage 2 |
//!
//! The hypervisor owns GICD and GICC: it takes every physical interrupt
//! itself (acknowledge, then end of interrupt). A VM never reaches GICD or
//! GICC; its accesses to the distributor it believes it has fault at stage 2
//! and are emulated, and the page where the VM expects its GICC is the GICV
//! block, mapped by stage 2, so the VM acknowledges and ends the virtual
//! interrupts the hypervisor put in the GICH list registers. GICH holds one
//! VM's virtual CPU interface state at a time: the hypervisor saves it
//! ([`hyp_interface::HypInterface::save`]) when it switches a VM out and
//! restores it when it switches the VM back in (the GICv2 interrupt
//! backend in `capsules::virtual_gic` does so through the list-register
//! HIL, [`hyp_interface::HypInterface`]'s `ListRegisters` implementation).
//!
//! The published `arm-gic` crate drives GICD and GICC but not GICH, and a
//! hypervisor needs the three together (split priority drop and
//! deactivation, active states it saves per VM, the list registers), so
//! this crate describes all three with `tock-registers` instead.
//!
//! ```no_run
//! use gicv2::Gic;
//! // QEMU virt: GICD at 0x0800_0000, GICC at 0x0801_0000.
//! // SAFETY: both blocks are mapped for the whole run and used only here.
//! let gic = unsafe { Gic::new(0x0800_0000, 0x0801_0000) };
//! gic.init(true);
//! gic.distributor.enable(27); // the virtual timer's PPI
//! if let Some(irq) = gic.cpu_interface.acknowledge() {
//!     // ... handle irq.id ...
//!     gic.cpu_interface.end_of_interrupt(irq);
//!     gic.cpu_interface.deactivate(irq); // split EOI: drop the active state
//! }
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cpu_interface;
pub mod distributor;
pub mod hyp_interface;

#[cfg(test)]
mod fake;

pub use cpu_interface::{Acknowledged, CpuInterface};
pub use distributor::Distributor;
pub use hyp_interface::{HypContext, HypInterface, ListRegister, LrState};

/// Size of the distributor (GICD) block to map.
pub const DISTRIBUTOR_SIZE: usize = 0x1000;
/// Size of the CPU interface (GICC) block to map: two pages, GICC_DIR is at
/// offset 0x1000.
pub const CPU_INTERFACE_SIZE: usize = 0x2000;
/// Size of the virtual interface control (GICH) block to map (the registers
/// end at 0x200; the block occupies one page).
pub const HYP_INTERFACE_SIZE: usize = 0x1000;
/// Size of the virtual CPU interface (GICV) block a VM's stage 2 maps where
/// the VM expects its GICC: two pages, like GICC.
pub const VIRTUAL_CPU_INTERFACE_SIZE: usize = 0x2000;

/// Number of interrupt ids the architecture allows (0..=1019); ids 1020 to
/// 1023 are special (1023: spurious, nothing to acknowledge).
pub const MAX_INTERRUPTS: u32 = 1020;
/// First shared peripheral interrupt (SPI); 0-15 are software-generated
/// (SGI), 16-31 private peripheral interrupts (PPI) of each CPU.
pub const FIRST_SPI: u32 = 32;
/// Number of software-generated interrupts (ids 0-15).
pub const SGI_COUNT: u32 = 16;

/// The GIC blocks the hypervisor itself drives: the distributor and this
/// CPU's interface.
#[derive(Debug)]
pub struct Gic {
    /// The distributor (GICD).
    pub distributor: Distributor,
    /// This CPU's interface (GICC).
    pub cpu_interface: CpuInterface,
}

// SAFETY: the GIC's registers are shared by every CPU, and this driver is
// safe to use from several at once. Each method is one access to one
// register, or a sequence whose order between CPUs does not matter: the
// enable, pending and active states are set and cleared through write-1
// registers (ISENABLER/ICENABLER, ...), never read-modify-written; the
// priority and target registers are written a byte (one interrupt) at a
// time; the SGI/PPI registers (ids 0-31) and the CPU interface are banked,
// each CPU reaching its own at the same address. The one read-modify-write,
// `Distributor::set_edge_triggered`, must not run on two CPUs for ids of
// the same ICFGR word at once (Capvisor never calls it; its tests do).
unsafe impl Sync for Gic {}

impl Gic {
    /// Drivers for the distributor at `distributor_base` and the CPU
    /// interface at `cpu_interface_base`.
    ///
    /// # Safety
    /// As for [`Distributor::new`] and [`CpuInterface::new`]: each base is
    /// the address of that mapped block, and these drivers are the only
    /// users of the registers they touch.
    pub const unsafe fn new(distributor_base: usize, cpu_interface_base: usize) -> Gic {
        Gic {
            // SAFETY: forwarded to the caller.
            distributor: unsafe { Distributor::new(distributor_base) },
            // SAFETY: forwarded to the caller.
            cpu_interface: unsafe { CpuInterface::new(cpu_interface_base) },
        }
    }

    /// Initializes the distributor ([`Distributor::init`]), then this CPU's
    /// interface ([`CpuInterface::init`]) with split priority drop and
    /// deactivation when `split_eoi` is set.
    pub fn init(&self, split_eoi: bool) {
        self.distributor.init();
        self.cpu_interface.init(split_eoi);
    }

    /// Sets up a secondary CPU's banked registers (its SGIs and PPIs in
    /// the distributor, its CPU interface) after the boot CPU's
    /// [`Gic::init`]; called on that CPU.
    pub fn init_secondary(&self, split_eoi: bool) {
        self.distributor.init_cpu();
        self.cpu_interface.init(split_eoi);
    }
}

/// The interrupt-controller HIL over the distributor and CPU interface the
/// hypervisor owns. Run with split priority drop and deactivation
/// ([`Gic::init`] with `split_eoi`), so that an interrupt forwarded to a
/// guest can stay active until the guest deactivates it.
impl hyp::hil::interrupt::InterruptController for Gic {
    fn enable(&self, line: u32) {
        self.distributor.enable(line);
    }

    fn disable(&self, line: u32) {
        self.distributor.disable(line);
    }

    fn acknowledge(&self) -> Option<hyp::hil::interrupt::Acknowledged> {
        self.cpu_interface
            .acknowledge()
            .map(|irq| hyp::hil::interrupt::Acknowledged {
                line: irq.id,
                token: irq.raw,
            })
    }

    fn end_of_interrupt(&self, irq: hyp::hil::interrupt::Acknowledged) {
        self.cpu_interface.end_of_interrupt(Acknowledged {
            id: irq.line,
            raw: irq.token,
        });
    }

    fn deactivate(&self, irq: hyp::hil::interrupt::Acknowledged) {
        self.cpu_interface.deactivate(Acknowledged {
            id: irq.line,
            raw: irq.token,
        });
    }

    fn set_priority(&self, line: u32, priority: u8) {
        self.distributor.set_priority(line, priority);
    }

    fn is_active(&self, line: u32) -> bool {
        self.distributor.is_active(line)
    }

    fn set_active(&self, line: u32, active: bool) {
        if active {
            self.distributor.set_active(line);
        } else {
            self.distributor.clear_active(line);
        }
    }
}
