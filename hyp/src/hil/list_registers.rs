// SPDX-License-Identifier: MIT OR Apache-2.0
//! A GIC's virtualization interface as a VM's interrupt backend drives it.
//!
//! On a GICv2 with the virtualization extensions (GIC-400, QEMU `virt`)
//! the guest's CPU interface is the GIC's virtual CPU interface (GICV),
//! which the guest reads and writes without trapping. The hypervisor feeds
//! it through a few list registers (GICH_LRn), each holding one virtual
//! interrupt and its state; the guest acknowledges and ends interrupts in
//! them by itself. The interrupt-controller chip implements [`ListRegisters`]
//! over GICH; the GICv2 backend in `capsules::virtual_gic` uses it.

/// The state of a virtual interrupt in a list register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EntryState {
    /// The register is free (or the guest has ended the interrupt).
    #[default]
    Invalid,
    /// Pending: the guest has not acknowledged it.
    Pending,
    /// Acknowledged, not yet ended.
    Active,
    /// Acknowledged and pending again (an edge while active).
    PendingActive,
}

/// One virtual interrupt as a list register holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// The virtual interrupt id the guest sees (bits 9:0); for an SGI,
    /// bits 12:10 hold the vCPU the guest sees as its sender, where
    /// GICH_LR's CPUID field keeps it.
    pub id: u32,
    /// Its priority (the GIC keeps the top 5 bits).
    pub priority: u8,
    /// Its state.
    pub state: EntryState,
    /// A physical interrupt linked to it: when the guest deactivates the
    /// virtual interrupt, the GIC deactivates this one (hardware
    /// forwarding, used for the guest's timer).
    pub physical: Option<u32>,
    /// Ask for a maintenance interrupt when the guest ends it (for
    /// level-sensitive interrupts whose line may still be high; not with
    /// `physical`).
    pub notify_end: bool,
}

impl ListEntry {
    /// A free list register.
    pub const FREE: ListEntry = ListEntry {
        id: 0,
        priority: 0,
        state: EntryState::Invalid,
        physical: None,
        notify_end: false,
    };

    /// Interrupt `id` pending at `priority`.
    pub const fn pending(id: u32, priority: u8) -> ListEntry {
        ListEntry {
            id,
            priority,
            state: EntryState::Pending,
            physical: None,
            notify_end: false,
        }
    }

    /// Whether the register holds nothing.
    pub const fn is_free(&self) -> bool {
        matches!(self.state, EntryState::Invalid)
    }
}

/// The per-VM control state of the virtual CPU interface that is not in
/// the list registers (on GICv2: GICH_VMCR, the guest's priority mask,
/// binary points and enables; GICH_APR, its active priorities).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceState {
    /// GICH_VMCR.
    pub control: u32,
    /// GICH_APR.
    pub active_priorities: u32,
}

/// The most list registers a VM's context holds: GIC-400 and QEMU's GICv2
/// implement 4 (GICH_VTR.ListRegs = 3). The chip saves and restores, and
/// a backend uses, min([`ListRegisters::count`], this) of them.
pub const MAX_LIST_REGISTERS: usize = 4;

/// The host GIC's interrupts a GICv2 backend takes for its VM, as the
/// board wires them (on every GICv2 the maintenance interrupt is PPI 9,
/// id 25, and the CPU's virtual timer PPI 11, id 27; a board reads or
/// checks them against its firmware's description).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostInterrupts {
    /// The GIC's maintenance interrupt (list registers need attention).
    pub maintenance: u32,
    /// The CPU's virtual timer output (CNTV), injected into the guest.
    pub virtual_timer: u32,
}

/// A GIC virtualization interface (GICH), one per physical CPU.
pub trait ListRegisters {
    /// How many list registers the GIC implements (at least one).
    fn count(&self) -> usize;
    /// List register `n`.
    fn read(&self, n: usize) -> ListEntry;
    /// Writes list register `n` ([`ListEntry::FREE`] empties it).
    fn write(&self, n: usize, entry: ListEntry);
    /// The guest's priority mask in the virtual CPU interface now: a
    /// pending interrupt is signalled only with a priority below it.
    fn priority_mask(&self) -> u8;
    /// The guest's priority mask in a saved [`InterfaceState`].
    fn saved_priority_mask(&self, state: &InterfaceState) -> u8;
    /// Turns the virtual CPU interface on for a VM: its saved state, and
    /// whether to raise the maintenance interrupt when at most one list
    /// register holds an interrupt (more are waiting for a free one).
    fn enable(&self, state: &InterfaceState, notify_underflow: bool);
    /// Asks for the underflow maintenance interrupt, or stops asking.
    fn notify_underflow(&self, on: bool);
    /// Saves the VM's state and turns the virtual CPU interface off.
    fn disable(&self) -> InterfaceState;
}
