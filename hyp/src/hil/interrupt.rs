//! The physical interrupt controller the hypervisor owns.
//!
//! Guests never reach it: physical interrupts are taken by the hypervisor
//! (HCR.IMO/FMO), serviced by the board's drivers, and turned into
//! virtual interrupts for the VM they concern.

/// An interrupt controller with numbered, level-sensitive lines.
pub trait InterruptController {
    /// Lets line `line` interrupt the CPU.
    fn enable(&self, line: u32);
    /// Masks line `line`.
    fn disable(&self, line: u32);
    /// The lowest-numbered line that is enabled and asserted, if any.
    fn next_pending(&self) -> Option<u32>;
}
