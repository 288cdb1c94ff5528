// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv2 CPU interface (GICC): the hypervisor takes its interrupts here.
//!
//! Handling a physical interrupt is: [`CpuInterface::acknowledge`] (read
//! GICC_IAR: the id, and the interrupt becomes active), then
//! [`CpuInterface::end_of_interrupt`] (write GICC_EOIR: drop the running
//! priority). With `split_eoi` (EOImode = 1) the EOI only drops the priority
//! and the interrupt stays active until [`CpuInterface::deactivate`] (write
//! GICC_DIR); a hypervisor forwarding the interrupt to a VM uses this: it
//! drops the priority at once, so other interrupts are taken, and the VM's
//! own deactivation of the virtual interrupt (a hardware list register)
//! deactivates the physical one.
//!
//! Security extensions: in the Non-secure view (a GIC-400 seen from Hyp
//! mode) GICC_CTLR bit 0 enables Group 1 and bit 9 is EOImodeNS; without
//! security extensions (QEMU virt) bit 0 enables Group 0 and bit 9 is
//! EOImode. The same bits are right in both.
//!
//! ```no_run
//! use gicv2::CpuInterface;
//! // SAFETY: QEMU virt's GICC, mapped for the whole run, used only here.
//! let gicc = unsafe { CpuInterface::new(0x0801_0000) };
//! gicc.init(false);
//! while let Some(irq) = gicc.acknowledge() {
//!     // ... handle irq.id ...
//!     gicc.end_of_interrupt(irq);
//! }
//! ```

use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

/// The priority mask [`CpuInterface::init`] sets: interrupts of every
/// priority but the lowest (0xf8 with 5 priority bits) are signalled.
pub const DEFAULT_PRIORITY_MASK: u8 = 0xf8;

register_structs! {
    /// The CPU interface register block (GICC).
    pub CpuInterfaceRegisters {
        (0x000 => ctlr: ReadWrite<u32, GICC_CTLR::Register>),
        (0x004 => pmr: ReadWrite<u32>),
        (0x008 => bpr: ReadWrite<u32>),
        (0x00c => iar: ReadOnly<u32, GICC_IAR::Register>),
        (0x010 => eoir: WriteOnly<u32>),
        (0x014 => rpr: ReadOnly<u32>),
        (0x018 => hppir: ReadOnly<u32, GICC_IAR::Register>),
        (0x01c => abpr: ReadWrite<u32>),
        (0x020 => aiar: ReadOnly<u32>),
        (0x024 => aeoir: WriteOnly<u32>),
        (0x028 => ahppir: ReadOnly<u32>),
        (0x02c => _reserved0),
        (0x0d0 => apr: [ReadWrite<u32>; 4]),
        (0x0e0 => nsapr: [ReadWrite<u32>; 4]),
        (0x0f0 => _reserved1),
        (0x0fc => iidr: ReadOnly<u32>),
        (0x100 => _reserved2),
        (0x1000 => dir: WriteOnly<u32>),
        (0x1004 => _reserved3),
        (0x2000 => @END),
    }
}

register_bitfields![u32,
    GICC_CTLR [
        /// Signal interrupts: Group 0 (no security extensions, or Secure
        /// view) or Group 1 (Non-secure view).
        ENABLE OFFSET(0) NUMBITS(1) [],
        /// Signal Group 1 interrupts too (Secure or no-security view only;
        /// reserved in the Non-secure view, where bit 0 is Group 1).
        ENABLE_GROUP1 OFFSET(1) NUMBITS(1) [],
        /// Acknowledge Group 1 interrupts through IAR as well (same views).
        ACK_CTL OFFSET(2) NUMBITS(1) [],
        /// EOImode (EOImodeS, or EOImodeNS in the Non-secure view): EOIR
        /// only drops the priority, DIR deactivates.
        EOI_MODE OFFSET(9) NUMBITS(1) []
    ],
    GICC_IAR [
        INTERRUPT_ID OFFSET(0) NUMBITS(10) [],
        /// For an SGI: the CPU that sent it.
        CPU_ID OFFSET(10) NUMBITS(3) []
    ]
];

/// Ids 1020-1023 returned by IAR and HPPIR mean "no interrupt" (1023:
/// spurious; the others only with security extensions).
fn is_special(id: u32) -> bool {
    (crate::MAX_INTERRUPTS..=1023).contains(&id)
}

/// An acknowledged interrupt, to be ended with
/// [`CpuInterface::end_of_interrupt`] (and, with split EOI,
/// [`CpuInterface::deactivate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledged {
    /// The interrupt id (0-1019).
    pub id: u32,
    /// The whole GICC_IAR value, source CPU bits included: EOIR and DIR
    /// must be written with exactly this.
    pub raw: u32,
}

impl Acknowledged {
    /// For an SGI, the CPU that sent it (IAR bits 12:10); 0 otherwise.
    pub fn source_cpu(&self) -> u32 {
        GICC_IAR::CPU_ID.read(self.raw)
    }
}

/// This CPU's GICv2 CPU interface.
#[derive(Debug)]
pub struct CpuInterface {
    registers: StaticRef<CpuInterfaceRegisters>,
}

impl CpuInterface {
    /// A driver for the CPU interface at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a GICC block (both pages: GICC_DIR is
    /// at 0x1000) that stays mapped (Device memory) whenever the driver is
    /// used, and this driver must be the only user of its registers.
    pub const unsafe fn new(base: usize) -> CpuInterface {
        CpuInterface {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const CpuInterfaceRegisters) },
        }
    }

    /// Signals interrupts of every priority but the lowest (PMR =
    /// [`DEFAULT_PRIORITY_MASK`]), with no subpriority (BPR 0: the GIC
    /// raises it to its minimum), and turns the interface on for both
    /// groups, acknowledging either through IAR (see
    /// [`crate::distributor::Distributor::init`] for why Group 1). `split_eoi`
    /// sets EOImode: then [`CpuInterface::end_of_interrupt`] only drops the
    /// priority and [`CpuInterface::deactivate`] must follow.
    pub fn init(&self, split_eoi: bool) {
        let regs = &*self.registers;
        regs.pmr.set(DEFAULT_PRIORITY_MASK as u32);
        regs.bpr.set(0);
        regs.ctlr.write(
            GICC_CTLR::ENABLE::SET
                + GICC_CTLR::ENABLE_GROUP1::SET
                + GICC_CTLR::ACK_CTL::SET
                + GICC_CTLR::EOI_MODE.val(split_eoi as u32),
        );
    }

    /// Acknowledges the highest priority pending interrupt (reads GICC_IAR,
    /// which makes it active); `None` when there is none (a special id,
    /// 1020-1023, which needs no end of interrupt).
    pub fn acknowledge(&self) -> Option<Acknowledged> {
        let raw = self.registers.iar.get();
        let id = GICC_IAR::INTERRUPT_ID.read(raw);
        (!is_special(id)).then_some(Acknowledged { id, raw })
    }

    /// Ends `irq` (writes GICC_EOIR): drops the running priority and,
    /// unless the interface was initialized with split EOI, deactivates it.
    pub fn end_of_interrupt(&self, irq: Acknowledged) {
        self.registers.eoir.set(irq.raw);
    }

    /// Deactivates `irq` (writes GICC_DIR); only with split EOI, after its
    /// [`CpuInterface::end_of_interrupt`].
    pub fn deactivate(&self, irq: Acknowledged) {
        self.registers.dir.set(irq.raw);
    }

    /// Signals only interrupts whose priority value is below `mask`.
    pub fn set_priority_mask(&self, mask: u8) {
        self.registers.pmr.set(mask as u32);
    }

    /// The id of the highest priority pending interrupt (GICC_HPPIR),
    /// without acknowledging it; `None` when there is none.
    pub fn highest_pending(&self) -> Option<u32> {
        let id = self.registers.hppir.read(GICC_IAR::INTERRUPT_ID);
        (!is_special(id)).then_some(id)
    }

    /// The priority of the interrupt being handled (GICC_RPR; 0xff when
    /// none is active).
    pub fn running_priority(&self) -> u8 {
        self.registers.rpr.get() as u8
    }

    /// The implementer, product and revision word (GICC_IIDR).
    pub fn implementer(&self) -> u32 {
        self.registers.iidr.get()
    }
}

// The register block is exactly the two GICC pages.
const _: () = assert!(core::mem::size_of::<CpuInterfaceRegisters>() == crate::CPU_INTERFACE_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRegisters;

    fn cpu_interface(fake: &FakeRegisters) -> CpuInterface {
        // SAFETY: the fake is a zeroed, aligned two-page window that
        // outlives the driver (each test declares the driver after it).
        unsafe { CpuInterface::new(fake.base()) }
    }

    #[test]
    fn init_sets_mask_binary_point_and_enable() {
        let fake = FakeRegisters::new();
        let gicc = cpu_interface(&fake);
        fake.set_word(0x008, 7);
        gicc.init(false);
        assert_eq!(fake.word(0x000), 0b111);
        assert_eq!(fake.word(0x004), 0xf8);
        assert_eq!(fake.word(0x008), 0);
        gicc.init(true);
        assert_eq!(fake.word(0x000), 0b111 | 1 << 9);
    }

    #[test]
    fn acknowledge_decodes_id_and_keeps_the_raw_value() {
        let fake = FakeRegisters::new();
        let gicc = cpu_interface(&fake);
        fake.set_word(0x00c, 0x0000_1c05);
        let irq = gicc.acknowledge().unwrap();
        assert_eq!(irq, Acknowledged { id: 5, raw: 0x1c05 });
        assert_eq!(irq.source_cpu(), 7);
        fake.set_word(0x00c, 33);
        let irq = gicc.acknowledge().unwrap();
        assert_eq!((irq.id, irq.raw, irq.source_cpu()), (33, 33, 0));
        fake.set_word(0x00c, 1019);
        assert_eq!(gicc.acknowledge().map(|irq| irq.id), Some(1019));
    }

    #[test]
    fn special_ids_acknowledge_nothing() {
        let fake = FakeRegisters::new();
        let gicc = cpu_interface(&fake);
        for id in 1020..=1023 {
            fake.set_word(0x00c, id);
            assert_eq!(gicc.acknowledge(), None, "id {id}");
            fake.set_word(0x018, id);
            assert_eq!(gicc.highest_pending(), None, "id {id}");
        }
    }

    #[test]
    fn eoi_and_deactivate_write_back_the_raw_value() {
        let fake = FakeRegisters::new();
        let gicc = cpu_interface(&fake);
        fake.set_word(0x00c, 0x0000_0803);
        let irq = gicc.acknowledge().unwrap();
        gicc.end_of_interrupt(irq);
        assert_eq!(fake.word(0x010), 0x0803);
        assert_eq!(fake.word(0x1000), 0);
        gicc.deactivate(irq);
        assert_eq!(fake.word(0x1000), 0x0803);
    }

    #[test]
    fn priority_mask_highest_pending_and_running_priority() {
        let fake = FakeRegisters::new();
        let gicc = cpu_interface(&fake);
        gicc.set_priority_mask(0x80);
        assert_eq!(fake.word(0x004), 0x80);
        fake.set_word(0x018, 0x0000_0c1b);
        assert_eq!(gicc.highest_pending(), Some(27));
        fake.set_word(0x014, 0xa0);
        assert_eq!(gicc.running_priority(), 0xa0);
        fake.set_word(0x0fc, 0x0202_143b);
        assert_eq!(gicc.implementer(), 0x0202_143b);
    }
}
