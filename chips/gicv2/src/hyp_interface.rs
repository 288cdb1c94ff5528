// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv2 virtual interface control (GICH): virtual interrupts for a VM.
//!
//! The hypervisor describes the virtual interrupts of the VM running on this
//! CPU in the list registers ([`ListRegister`]): id, priority, state
//! (pending, active, both) and, for a hardware interrupt, the physical id
//! the VM's deactivation also deactivates. The VM sees them through its
//! virtual CPU interface (GICV, mapped by stage 2 where it expects GICC) and
//! acknowledges and ends them without trapping. GICH_HCR turns the virtual
//! CPU interface on and asks for maintenance interrupts (no list register
//! pending, an underflow, an EOI with no list register, ...), reported in
//! GICH_MISR.
//!
//! GICH holds one VM's state at a time: [`HypInterface::save`] copies it to
//! the VM's [`HypContext`] when the VM is switched out, and
//! [`HypInterface::restore`] puts it back before the VM runs again.
//!
//! ```no_run
//! use gicv2::hyp_interface::{HypContext, HypInterface, ListRegister, HCR_EN};
//! // SAFETY: QEMU virt's GICH, mapped for the whole run, used only here.
//! let gich = unsafe { HypInterface::new(0x0803_0000) };
//! let mut context = HypContext::new();
//! gich.restore(&context);
//! // The physical timer PPI 30 goes to the VM as virtual 27, hardware-linked.
//! gich.set_list_register(0, ListRegister::pending(27, 0xa0).with_hardware(30));
//! // ... the VM runs, then exits ...
//! gich.save(&mut context);
//! assert_eq!(context.hcr & HCR_EN, HCR_EN);
//! ```

use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

/// GICH_HCR.En: the virtual CPU interface works.
pub const HCR_EN: u32 = 1 << 0;
/// GICH_HCR.UIE: maintenance interrupt when at most one list register
/// holds an interrupt (underflow: time to refill).
pub const HCR_UIE: u32 = 1 << 1;
/// GICH_HCR.LRENPIE: maintenance interrupt while HCR.EOICount is not zero
/// (the VM ended an interrupt that was in no list register).
pub const HCR_LRENPIE: u32 = 1 << 2;
/// GICH_HCR.NPIE: maintenance interrupt while no list register is pending.
pub const HCR_NPIE: u32 = 1 << 3;

/// GICH_MISR.EOI: a list register with the EOI bit was ended (see
/// [`HypInterface::eoi_status`]).
pub const MISR_EOI: u32 = 1 << 0;
/// GICH_MISR.U: underflow (with [`HCR_UIE`]).
pub const MISR_U: u32 = 1 << 1;
/// GICH_MISR.LRENP: list register entry not present (with [`HCR_LRENPIE`]).
pub const MISR_LRENP: u32 = 1 << 2;
/// GICH_MISR.NP: no pending list register (with [`HCR_NPIE`]).
pub const MISR_NP: u32 = 1 << 3;

/// GICH_VMCR.VMGrp0En: the VM enabled Group 0 in its GICV_CTLR.
pub const VMCR_GRP0_EN: u32 = 1 << 0;
/// GICH_VMCR.VMGrp1En: the VM enabled Group 1 in its GICV_CTLR.
pub const VMCR_GRP1_EN: u32 = 1 << 1;

/// The list registers a [`HypContext`] holds (defined with the HIL).
pub use hyp::hil::list_registers::MAX_LIST_REGISTERS;

register_structs! {
    /// The virtual interface control register block (GICH).
    pub HypInterfaceRegisters {
        (0x000 => hcr: ReadWrite<u32>),
        (0x004 => vtr: ReadOnly<u32, GICH_VTR::Register>),
        (0x008 => vmcr: ReadWrite<u32>),
        (0x00c => _reserved0),
        (0x010 => misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x020 => eisr: [ReadOnly<u32>; 2]),
        (0x028 => _reserved2),
        (0x030 => elrsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved3),
        (0x0f0 => apr: ReadWrite<u32>),
        (0x0f4 => _reserved4),
        (0x100 => lr: [ReadWrite<u32>; 64]),
        (0x200 => @END),
    }
}

register_bitfields![u32,
    GICH_VTR [
        /// Implemented list registers, minus one.
        LIST_REGS OFFSET(0) NUMBITS(6) [],
        /// Implemented preemption bits, minus one.
        PRE_BITS OFFSET(26) NUMBITS(3) [],
        /// Implemented priority bits, minus one.
        PRI_BITS OFFSET(29) NUMBITS(3) []
    ],
    GICH_LR [
        VIRTUAL_ID OFFSET(0) NUMBITS(10) [],
        /// HW = 0, SGIs only: the CPU the VM sees as the sender.
        CPU_ID OFFSET(10) NUMBITS(3) [],
        /// HW = 0: maintenance interrupt when the VM ends the interrupt.
        EOI OFFSET(19) NUMBITS(1) [],
        /// HW = 1: the physical interrupt the VM's deactivation deactivates.
        PHYSICAL_ID OFFSET(10) NUMBITS(10) [],
        /// Priority bits 7:3.
        PRIORITY OFFSET(23) NUMBITS(5) [],
        STATE OFFSET(28) NUMBITS(2) [
            Invalid = 0,
            Pending = 1,
            Active = 2,
            PendingActive = 3
        ],
        GROUP1 OFFSET(30) NUMBITS(1) [],
        HW OFFSET(31) NUMBITS(1) []
    ],
    GICH_VMCR [
        /// The VM's priority mask, bits 7:3 (GICV_PMR).
        PRIORITY_MASK OFFSET(27) NUMBITS(5) []
    ]
];

/// The state of a list register's interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// Nothing (or, with the EOI bit, ended and awaiting maintenance).
    Invalid,
    /// Pending: will be signalled to the VM.
    Pending,
    /// Acknowledged by the VM, not yet ended.
    Active,
    /// Active, and pending again.
    PendingActive,
}

/// One GICH_LR value: a virtual interrupt as the VM's interface sees it.
///
/// Bits (GICv2): 31 HW, 30 Group 1, 29:28 state, 27:23 priority bits 7:3,
/// 19:10 the physical id (HW = 1) or bit 19 EOI maintenance and 12:10 the
/// source CPU (HW = 0), 9:0 the virtual id. Built from
/// [`ListRegister::pending`]:
///
/// ```
/// use gicv2::{ListRegister, LrState};
/// let lr = ListRegister::pending(27, 0xa0).with_hardware(30);
/// assert_eq!(lr.0, 0x9a00_781b);
/// assert_eq!((lr.virtual_id(), lr.physical_id()), (27, Some(30)));
/// assert_eq!((lr.priority(), lr.state()), (0xa0, LrState::Pending));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListRegister(pub u32);

impl ListRegister {
    /// Virtual interrupt `virtual_id` (10 bits), pending, Group 0, software
    /// (HW = 0), at `priority` (only bits 7:3 are kept).
    pub fn pending(virtual_id: u32, priority: u8) -> ListRegister {
        ListRegister(
            (GICH_LR::STATE::Pending
                + GICH_LR::PRIORITY.val(priority as u32 >> 3)
                + GICH_LR::VIRTUAL_ID.val(virtual_id))
            .value,
        )
    }

    /// Links the interrupt to physical interrupt `physical_id` (10 bits):
    /// sets HW and the physical id, replacing the EOI bit and source CPU
    /// (the same bits when HW = 0). The VM's deactivation then deactivates
    /// the physical interrupt, which the hypervisor acknowledged and
    /// priority-dropped (split EOI) but did not deactivate.
    pub fn with_hardware(self, physical_id: u32) -> ListRegister {
        ListRegister((GICH_LR::HW::SET + GICH_LR::PHYSICAL_ID.val(physical_id)).modify(self.0))
    }

    /// Asks for a maintenance interrupt when the VM ends the interrupt
    /// (EOI bit). Only for software interrupts: on a hardware one, bit 19
    /// belongs to the physical id, so this returns `self` unchanged.
    pub fn with_eoi_maintenance(self) -> ListRegister {
        if self.is_hardware() {
            self
        } else {
            ListRegister(GICH_LR::EOI::SET.modify(self.0))
        }
    }

    /// The CPU the VM sees as the sender of this SGI (3 bits). Only for
    /// software interrupts: returns `self` unchanged on a hardware one.
    pub fn with_source_cpu(self, cpu: u32) -> ListRegister {
        if self.is_hardware() {
            self
        } else {
            ListRegister(GICH_LR::CPU_ID.val(cpu).modify(self.0))
        }
    }

    /// Makes the interrupt Group 1.
    pub fn with_group1(self) -> ListRegister {
        ListRegister(GICH_LR::GROUP1::SET.modify(self.0))
    }

    /// The same interrupt in `state`.
    pub fn with_state(self, state: LrState) -> ListRegister {
        let field = match state {
            LrState::Invalid => GICH_LR::STATE::Invalid,
            LrState::Pending => GICH_LR::STATE::Pending,
            LrState::Active => GICH_LR::STATE::Active,
            LrState::PendingActive => GICH_LR::STATE::PendingActive,
        };
        ListRegister(field.modify(self.0))
    }

    /// The virtual interrupt id.
    pub fn virtual_id(&self) -> u32 {
        GICH_LR::VIRTUAL_ID.read(self.0)
    }

    /// The linked physical interrupt id, for a hardware interrupt.
    pub fn physical_id(&self) -> Option<u32> {
        self.is_hardware()
            .then(|| GICH_LR::PHYSICAL_ID.read(self.0))
    }

    /// For an SGI (HW = 0), the CPU the VM sees as its sender; 0 for a
    /// hardware interrupt.
    pub fn source_cpu(&self) -> u32 {
        if self.is_hardware() {
            0
        } else {
            GICH_LR::CPU_ID.read(self.0)
        }
    }

    /// The priority as an 8-bit value (bits 2:0 always zero).
    pub fn priority(&self) -> u8 {
        (GICH_LR::PRIORITY.read(self.0) << 3) as u8
    }

    /// The interrupt's state.
    pub fn state(&self) -> LrState {
        match GICH_LR::STATE.read(self.0) {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }

    /// Whether the interrupt is linked to a physical one (HW bit).
    pub fn is_hardware(&self) -> bool {
        GICH_LR::HW.is_set(self.0)
    }

    /// Whether the interrupt is Group 1.
    pub fn is_group1(&self) -> bool {
        GICH_LR::GROUP1.is_set(self.0)
    }

    /// Whether ending the interrupt raises a maintenance interrupt (EOI
    /// bit of a software interrupt).
    pub fn eoi_maintenance(&self) -> bool {
        !self.is_hardware() && GICH_LR::EOI.is_set(self.0)
    }

    /// Whether the register holds no interrupt (state Invalid). Unlike
    /// GICH_ELRSR, this does not wait for the EOI maintenance of an ended
    /// interrupt with the EOI bit: check [`HypInterface::eoi_status`] first
    /// when that matters.
    pub fn is_free(&self) -> bool {
        self.state() == LrState::Invalid
    }
}

/// The priority mask a VM set in its virtual CPU interface (GICV_PMR), as
/// saved in GICH_VMCR bits 31:27 (priority bits 7:3). A pending virtual
/// interrupt is signalled only if its priority value is below this; with
/// it a hypervisor can tell, while the VM is switched out, whether a
/// pending interrupt would reach it.
pub fn vmcr_priority_mask(vmcr: u32) -> u8 {
    (GICH_VMCR::PRIORITY_MASK.read(vmcr) << 3) as u8
}

/// One VM's state of the virtual CPU interface, while another runs.
///
/// [`HypContext::new`] is the state a VM starts in: the virtual CPU
/// interface on (HCR.En) and in its reset state (VMCR 0: the VM's GICV_CTLR
/// disabled and priority mask 0, masking everything until the VM sets it
/// up), no active priorities, every list register empty. `Default` is all
/// zero, HCR.En included: a context whose interface stays off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypContext {
    /// GICH_HCR.
    pub hcr: u32,
    /// GICH_VMCR: the VM's view of its GICV_CTLR, PMR and BPR.
    pub vmcr: u32,
    /// GICH_APR: the VM's active priorities.
    pub apr: u32,
    /// GICH_LR0..: the VM's virtual interrupts.
    pub lr: [ListRegister; MAX_LIST_REGISTERS],
}

impl HypContext {
    /// A VM's initial state: HCR = [`HCR_EN`], everything else zero.
    pub const fn new() -> HypContext {
        HypContext {
            hcr: HCR_EN,
            vmcr: 0,
            apr: 0,
            lr: [ListRegister(0); MAX_LIST_REGISTERS],
        }
    }
}

/// This CPU's virtual interface control block.
#[derive(Debug)]
pub struct HypInterface {
    registers: StaticRef<HypInterfaceRegisters>,
}

impl HypInterface {
    /// A driver for the virtual interface control block at `base`.
    ///
    /// # Safety
    /// `base` must be the address of this CPU's GICH block that stays
    /// mapped (Device memory) whenever the driver is used, and this driver
    /// must be the only user of its registers.
    pub const unsafe fn new(base: usize) -> HypInterface {
        HypInterface {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const HypInterfaceRegisters) },
        }
    }

    /// Number of implemented list registers (GICH_VTR.ListRegs + 1).
    pub fn list_registers(&self) -> usize {
        self.registers.vtr.read(GICH_VTR::LIST_REGS) as usize + 1
    }

    /// Number of implemented priority bits (GICH_VTR.PRIbits + 1).
    pub fn priority_bits(&self) -> u32 {
        self.registers.vtr.read(GICH_VTR::PRI_BITS) + 1
    }

    /// List register `n`. `n` should be below [`HypInterface::list_registers`]
    /// (the others are reserved; not checked, to spare a VTR read); an `n`
    /// of 64 or more reads as empty.
    pub fn list_register(&self, n: usize) -> ListRegister {
        self.registers
            .lr
            .get(n)
            .map_or(ListRegister(0), |register| ListRegister(register.get()))
    }

    /// Sets list register `n` (see [`HypInterface::list_register`] for the
    /// range; an `n` of 64 or more is ignored).
    pub fn set_list_register(&self, n: usize, lr: ListRegister) {
        if let Some(register) = self.registers.lr.get(n) {
            register.set(lr.0);
        }
    }

    /// Sets GICH_HCR ([`HCR_EN`], [`HCR_UIE`], ...).
    pub fn set_control(&self, hcr: u32) {
        self.registers.hcr.set(hcr);
    }

    /// GICH_HCR.
    pub fn control(&self) -> u32 {
        self.registers.hcr.get()
    }

    /// Why the maintenance interrupt is asserted (GICH_MISR: [`MISR_EOI`],
    /// [`MISR_U`], ...).
    pub fn maintenance_status(&self) -> u32 {
        self.registers.misr.get()
    }

    /// The list registers whose EOI-maintenance interrupt was ended (bit n:
    /// LR n; GICH_EISR1:GICH_EISR0).
    pub fn eoi_status(&self) -> u64 {
        let regs = &*self.registers;
        (regs.eisr[1].get() as u64) << 32 | regs.eisr[0].get() as u64
    }

    /// The list registers free for a new interrupt (bit n: LR n;
    /// GICH_ELRSR1:GICH_ELRSR0).
    pub fn empty_list_registers(&self) -> u64 {
        let regs = &*self.registers;
        (regs.elrsr[1].get() as u64) << 32 | regs.elrsr[0].get() as u64
    }

    /// The list registers a context holds: min(implemented,
    /// [`MAX_LIST_REGISTERS`]).
    fn context_list_registers(&self) -> usize {
        self.list_registers().min(MAX_LIST_REGISTERS)
    }

    /// Copies the running VM's state into `context` (HCR, VMCR, APR, the
    /// list registers; those beyond the implemented ones are zeroed), then
    /// turns the virtual CPU interface off (HCR = 0): no VM of this context
    /// runs now, so no virtual interrupt must be signalled and no
    /// maintenance interrupt raised for its list registers.
    pub fn save(&self, context: &mut HypContext) {
        let regs = &*self.registers;
        context.hcr = regs.hcr.get();
        context.vmcr = regs.vmcr.get();
        context.apr = regs.apr.get();
        let count = self.context_list_registers();
        for (n, lr) in context.lr.iter_mut().enumerate() {
            *lr = if n < count {
                ListRegister(regs.lr[n].get())
            } else {
                ListRegister(0)
            };
        }
        regs.hcr.set(0);
    }

    /// Loads `context` for the VM about to run: the list registers, APR,
    /// VMCR, and last HCR, which turns the interface back on.
    pub fn restore(&self, context: &HypContext) {
        let regs = &*self.registers;
        let count = self.context_list_registers();
        for (register, lr) in regs.lr.iter().zip(&context.lr).take(count) {
            register.set(lr.0);
        }
        regs.apr.set(context.apr);
        regs.vmcr.set(context.vmcr);
        regs.hcr.set(context.hcr);
    }
}

/// The list-register HIL (`hyp::hil::list_registers`) over GICH, for the
/// GICv2 interrupt backend.
impl hyp::hil::list_registers::ListRegisters for HypInterface {
    fn count(&self) -> usize {
        self.list_registers()
    }

    fn read(&self, n: usize) -> hyp::hil::list_registers::ListEntry {
        self.list_register(n).entry()
    }

    fn write(&self, n: usize, entry: hyp::hil::list_registers::ListEntry) {
        self.set_list_register(n, ListRegister::from_entry(&entry));
    }

    fn priority_mask(&self) -> u8 {
        vmcr_priority_mask(self.registers.vmcr.get())
    }

    fn saved_priority_mask(&self, state: &hyp::hil::list_registers::InterfaceState) -> u8 {
        vmcr_priority_mask(state.control)
    }

    fn enable(&self, state: &hyp::hil::list_registers::InterfaceState, notify_underflow: bool) {
        let regs = &*self.registers;
        regs.apr.set(state.active_priorities);
        regs.vmcr.set(state.control);
        regs.hcr
            .set(HCR_EN | if notify_underflow { HCR_UIE } else { 0 });
    }

    fn notify_underflow(&self, on: bool) {
        self.registers
            .hcr
            .set(HCR_EN | if on { HCR_UIE } else { 0 });
    }

    fn disable(&self) -> hyp::hil::list_registers::InterfaceState {
        let regs = &*self.registers;
        let state = hyp::hil::list_registers::InterfaceState {
            control: regs.vmcr.get(),
            active_priorities: regs.apr.get(),
        };
        regs.hcr.set(0);
        state
    }
}

impl ListRegister {
    /// The architecture-neutral view of this list register.
    pub fn entry(&self) -> hyp::hil::list_registers::ListEntry {
        use hyp::hil::list_registers::EntryState;
        hyp::hil::list_registers::ListEntry {
            id: self.virtual_id() | (self.source_cpu() << 10),
            priority: self.priority(),
            state: match self.state() {
                LrState::Invalid => EntryState::Invalid,
                LrState::Pending => EntryState::Pending,
                LrState::Active => EntryState::Active,
                LrState::PendingActive => EntryState::PendingActive,
            },
            physical: self.physical_id(),
            notify_end: self.eoi_maintenance(),
        }
    }

    /// The list register holding `entry` (an invalid entry is 0).
    pub fn from_entry(entry: &hyp::hil::list_registers::ListEntry) -> ListRegister {
        use hyp::hil::list_registers::EntryState;
        let state = match entry.state {
            EntryState::Invalid => return ListRegister(0),
            EntryState::Pending => LrState::Pending,
            EntryState::Active => LrState::Active,
            EntryState::PendingActive => LrState::PendingActive,
        };
        // An SGI's source CPU rides in bits 12:10 of the id, where GICH_LR
        // keeps it (`ListEntry::id`).
        let register = ListRegister::pending(entry.id & 0x3ff, entry.priority)
            .with_state(state)
            .with_source_cpu((entry.id >> 10) & 0x7);
        match entry.physical {
            Some(physical) => register.with_hardware(physical),
            None if entry.notify_end => register.with_eoi_maintenance(),
            None => register,
        }
    }
}

// The register block ends at 0x200 (GIC-400's GICH is 0x200 bytes).
const _: () = assert!(core::mem::size_of::<HypInterfaceRegisters>() == 0x200);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRegisters;

    #[test]
    fn an_sgis_source_goes_into_the_cpu_id_field_and_comes_back() {
        use hyp::hil::list_registers::{EntryState, ListEntry};
        let entry = ListEntry {
            id: 3 | (2 << 10),
            priority: 0xa0,
            state: EntryState::Pending,
            physical: None,
            notify_end: false,
        };
        let register = ListRegister::from_entry(&entry);
        assert_eq!((register.virtual_id(), register.source_cpu()), (3, 2));
        assert_eq!(register.entry(), entry);
    }

    /// GIC-400 and QEMU: 5 priority and preemption bits, 4 list registers.
    const VTR_GIC400: u32 = 0x9000_0003;

    fn hyp_interface(fake: &FakeRegisters, vtr: u32) -> HypInterface {
        fake.set_word(0x004, vtr);
        // SAFETY: the fake is a zeroed, aligned window that outlives the
        // driver (each test declares the driver after it).
        unsafe { HypInterface::new(fake.base()) }
    }

    const STATES: [LrState; 4] = [
        LrState::Invalid,
        LrState::Pending,
        LrState::Active,
        LrState::PendingActive,
    ];

    #[test]
    fn pending_encodes_state_priority_and_id() {
        let lr = ListRegister::pending(27, 0xa0);
        assert_eq!(lr.0, 1 << 28 | 0x14 << 23 | 27);
        assert_eq!((lr.0 >> 23) & 0x1f, 0x14);
        assert_eq!(lr.virtual_id(), 27);
        assert_eq!(lr.priority(), 0xa0);
        assert_eq!(lr.state(), LrState::Pending);
        assert!(!lr.is_hardware() && !lr.is_group1() && !lr.eoi_maintenance());
        assert_eq!(lr.physical_id(), None);
        assert!(!lr.is_free());
        // Priority bits 2:0 and virtual id bits above 9 are dropped.
        let lr = ListRegister::pending(0x7ff, 0xff);
        assert_eq!(lr.0, 1 << 28 | 0x1f << 23 | 0x3ff);
        assert_eq!(lr.priority(), 0xf8);
        assert_eq!(ListRegister::pending(1, 0x07).priority(), 0);
    }

    #[test]
    fn every_state_round_trips() {
        for (value, state) in STATES.into_iter().enumerate() {
            let lr = ListRegister::pending(42, 0x80)
                .with_hardware(100)
                .with_state(state);
            assert_eq!((lr.0 >> 28) & 3, value as u32);
            assert_eq!(lr.state(), state);
            assert_eq!(ListRegister(lr.0).state(), state);
            assert_eq!(lr.is_free(), state == LrState::Invalid);
            // Nothing else changed.
            assert_eq!(lr.virtual_id(), 42);
            assert_eq!(lr.physical_id(), Some(100));
            assert_eq!(lr.priority(), 0x80);
            for other in STATES {
                assert_eq!(lr.with_state(other).state(), other);
            }
        }
    }

    #[test]
    fn hardware_sets_bit_31_and_the_physical_id() {
        let lr = ListRegister::pending(27, 0xa0).with_hardware(30);
        assert_eq!(lr.0, 1 << 31 | 1 << 28 | 0x14 << 23 | 30 << 10 | 27);
        assert!(lr.is_hardware());
        assert_eq!(lr.physical_id(), Some(30));
        assert_eq!(lr.virtual_id(), 27);
        let lr = ListRegister::pending(5, 0).with_hardware(1019);
        assert_eq!((lr.0 >> 10) & 0x3ff, 1019);
        assert_eq!(lr.physical_id(), Some(1019));
        // Bit 19 is the physical id's top bit, not the EOI request.
        assert!(!lr.eoi_maintenance());
    }

    #[test]
    fn hardware_replaces_eoi_and_source_cpu() {
        let lr = ListRegister::pending(3, 0x80)
            .with_eoi_maintenance()
            .with_source_cpu(5)
            .with_hardware(40);
        assert_eq!(lr.physical_id(), Some(40));
        assert_eq!(lr.0 & (0x3ff << 10), 40 << 10);
        // And the software-only fields leave a hardware one alone.
        assert_eq!(lr.with_eoi_maintenance(), lr);
        assert_eq!(lr.with_source_cpu(7), lr);
        assert_eq!(lr.source_cpu(), 0);
    }

    #[test]
    fn eoi_source_cpu_and_group1_bits() {
        let lr = ListRegister::pending(9, 0x40).with_eoi_maintenance();
        assert_eq!(lr.0 & (1 << 19), 1 << 19);
        assert!(lr.eoi_maintenance());
        assert_eq!(lr.physical_id(), None);
        let lr = ListRegister::pending(2, 0x40).with_source_cpu(6);
        assert_eq!((lr.0 >> 10) & 7, 6);
        assert_eq!(lr.source_cpu(), 6);
        assert_eq!(lr.virtual_id(), 2);
        let lr = lr.with_group1();
        assert_eq!(lr.0 & (1 << 30), 1 << 30);
        assert!(lr.is_group1());
        assert_eq!(ListRegister::default().state(), LrState::Invalid);
        assert!(ListRegister::default().is_free());
    }

    #[test]
    fn vtr_gives_list_registers_and_priority_bits() {
        let fake = FakeRegisters::new();
        let gich = hyp_interface(&fake, VTR_GIC400);
        assert_eq!(gich.list_registers(), 4);
        assert_eq!(gich.priority_bits(), 5);
        fake.set_word(0x004, 0xe000_003f);
        assert_eq!(gich.list_registers(), 64);
        assert_eq!(gich.priority_bits(), 8);
    }

    #[test]
    fn list_registers_are_words_from_0x100() {
        let fake = FakeRegisters::new();
        let gich = hyp_interface(&fake, VTR_GIC400);
        let lr = ListRegister::pending(33, 0xa0).with_eoi_maintenance();
        gich.set_list_register(2, lr);
        assert_eq!(fake.word(0x108), lr.0);
        assert_eq!(gich.list_register(2), lr);
        fake.set_word(0x1fc, 0x1234);
        assert_eq!(gich.list_register(63), ListRegister(0x1234));
        assert_eq!(gich.list_register(64), ListRegister(0));
        gich.set_list_register(64, lr);
        assert_eq!(fake.word(0x200), 0);
    }

    #[test]
    fn control_and_status_registers() {
        let fake = FakeRegisters::new();
        let gich = hyp_interface(&fake, VTR_GIC400);
        gich.set_control(HCR_EN | HCR_UIE | HCR_NPIE);
        assert_eq!(fake.word(0x000), 0b1011);
        assert_eq!(gich.control(), 0b1011);
        fake.set_word(0x010, MISR_EOI | MISR_NP);
        assert_eq!(gich.maintenance_status(), 0b1001);
        fake.set_word(0x020, 0x0000_0005);
        fake.set_word(0x024, 0x8000_0000);
        assert_eq!(gich.eoi_status(), 0x8000_0000_0000_0005);
        fake.set_word(0x030, 0x0000_000e);
        fake.set_word(0x034, 0x0000_0001);
        assert_eq!(gich.empty_list_registers(), 0x1_0000_000e);
        assert_eq!((HCR_LRENPIE, MISR_U, MISR_LRENP), (1 << 2, 1 << 1, 1 << 2));
    }

    #[test]
    fn vmcr_priority_mask_is_bits_31_to_27() {
        assert_eq!(vmcr_priority_mask(0), 0);
        assert_eq!(vmcr_priority_mask(0xf800_0000), 0xf8);
        assert_eq!(vmcr_priority_mask(0x1f << 27 | 0x07ff_ffff), 0xf8);
        assert_eq!(vmcr_priority_mask(0x14 << 27 | VMCR_GRP0_EN), 0xa0);
        // GIC-400's VMCR reset value 0x004c_0000 masks everything.
        assert_eq!(vmcr_priority_mask(0x004c_0000), 0);
    }

    #[test]
    fn new_context_is_enabled_and_empty() {
        let context = HypContext::new();
        assert_eq!(context.hcr, HCR_EN);
        assert_eq!((context.vmcr, context.apr), (0, 0));
        assert!(context.lr.iter().all(ListRegister::is_free));
        assert_eq!(HypContext::default().hcr, 0);
        assert_eq!(
            HypContext {
                hcr: HCR_EN,
                ..HypContext::default()
            },
            context
        );
    }

    #[test]
    fn save_reads_everything_then_turns_the_interface_off() {
        let fake = FakeRegisters::new();
        let gich = hyp_interface(&fake, VTR_GIC400);
        fake.set_word(0x000, HCR_EN | HCR_UIE);
        fake.set_word(0x008, 0xf000_0201);
        fake.set_word(0x0f0, 0x0000_0100);
        for n in 0..5 {
            fake.set_word(0x100 + 4 * n, 0x1000_0000 | (n as u32 + 40));
        }
        let mut context = HypContext::new();
        gich.save(&mut context);
        assert_eq!(context.hcr, HCR_EN | HCR_UIE);
        assert_eq!(context.vmcr, 0xf000_0201);
        assert_eq!(context.apr, 0x100);
        for (n, lr) in context.lr.iter().enumerate() {
            assert_eq!(lr.virtual_id(), n as u32 + 40);
            assert_eq!(lr.state(), LrState::Pending);
        }
        assert_eq!(fake.word(0x000), 0);
        // Nothing else was written.
        assert_eq!(fake.word(0x008), 0xf000_0201);
        assert_eq!(fake.word(0x110), 0x1000_0000 | 44);
    }

    #[test]
    fn restore_writes_what_save_read() {
        let fake = FakeRegisters::new();
        let gich = hyp_interface(&fake, VTR_GIC400);
        let context = HypContext {
            hcr: HCR_EN | HCR_NPIE,
            vmcr: 0xa000_0001,
            apr: 0x8,
            lr: [
                ListRegister::pending(27, 0xa0).with_hardware(30),
                ListRegister::pending(33, 0x80).with_state(LrState::Active),
                ListRegister::pending(1, 0x40)
                    .with_source_cpu(2)
                    .with_eoi_maintenance(),
                ListRegister(0),
            ],
        };
        fake.set_word(0x10c, 0xdead_beef);
        fake.set_word(0x110, 0x0bad_cafe);
        gich.restore(&context);
        assert_eq!(fake.word(0x000), HCR_EN | HCR_NPIE);
        assert_eq!(fake.word(0x008), 0xa000_0001);
        assert_eq!(fake.word(0x0f0), 0x8);
        for (n, lr) in context.lr.iter().enumerate() {
            assert_eq!(fake.word(0x100 + 4 * n), lr.0, "LR{n}");
        }
        // Only the implemented list registers.
        assert_eq!(fake.word(0x110), 0x0bad_cafe);

        let mut saved = HypContext::default();
        gich.save(&mut saved);
        assert_eq!(saved, context);
        assert_eq!(fake.word(0x000), 0);
    }

    #[test]
    fn fewer_implemented_list_registers_than_a_context_holds() {
        let fake = FakeRegisters::new();
        // 2 list registers.
        let gich = hyp_interface(&fake, 0x9000_0001);
        for n in 0..4 {
            fake.set_word(0x100 + 4 * n, 0x2000_0000 | n as u32);
        }
        let mut context = HypContext::new();
        context.lr[3] = ListRegister(0xffff_ffff);
        gich.save(&mut context);
        assert_eq!(context.lr[0], ListRegister(0x2000_0000));
        assert_eq!(context.lr[1], ListRegister(0x2000_0001));
        assert_eq!(context.lr[2], ListRegister(0));
        assert_eq!(context.lr[3], ListRegister(0));

        context.lr = [ListRegister(0x1000_0007); MAX_LIST_REGISTERS];
        gich.restore(&context);
        assert_eq!(fake.word(0x100), 0x1000_0007);
        assert_eq!(fake.word(0x104), 0x1000_0007);
        assert_eq!(fake.word(0x108), 0x2000_0002);
        assert_eq!(fake.word(0x10c), 0x2000_0003);
    }

    #[test]
    fn neutral_entries_convert_both_ways() {
        use hyp::hil::list_registers::{EntryState, ListEntry};
        let timer = ListEntry {
            physical: Some(27),
            ..ListEntry::pending(27, 0xa0)
        };
        let register = ListRegister::from_entry(&timer);
        assert!(register.is_hardware());
        assert_eq!(register.physical_id(), Some(27));
        assert_eq!(register.entry(), timer);
        let level = ListEntry {
            notify_end: true,
            state: EntryState::Active,
            ..ListEntry::pending(33, 0x80)
        };
        assert_eq!(ListRegister::from_entry(&level).entry(), level);
        assert_eq!(ListRegister::from_entry(&ListEntry::FREE), ListRegister(0));
    }
}
