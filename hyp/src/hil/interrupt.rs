// SPDX-License-Identifier: MIT OR Apache-2.0
//! The physical interrupt controller the hypervisor owns.
//!
//! Guests never reach it: physical interrupts are taken by the hypervisor
//! (HCR.IMO/FMO), serviced by the board's drivers, and turned into
//! virtual interrupts for the VM they concern. The trait has the shape of
//! a GIC (acknowledge, end of interrupt, deactivation, priorities, active
//! state); a simpler controller, such as the Integrator/CP's PIC, whose
//! lines are level-sensitive and cleared at the device, implements the
//! GIC-only parts as no-ops.

/// An interrupt the CPU interface handed out by [`InterruptController::acknowledge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledged {
    /// The interrupt's line (its id, on a GIC).
    pub line: u32,
    /// What the controller needs back to end it (a GIC's full IAR value).
    pub token: u32,
}

/// An interrupt controller with numbered lines.
pub trait InterruptController {
    /// Lets line `line` interrupt the CPU.
    fn enable(&self, line: u32);
    /// Masks line `line`.
    fn disable(&self, line: u32);
    /// Takes the highest-priority pending interrupt, if any. On a GIC it is
    /// active from now until deactivated.
    fn acknowledge(&self) -> Option<Acknowledged>;
    /// Priority drop: interrupts of the acknowledged one's priority can be
    /// taken again. It stays active until [`deactivate`](Self::deactivate).
    fn end_of_interrupt(&self, irq: Acknowledged) {
        let _ = irq;
    }
    /// Ends the acknowledged interrupt: it can be signalled again.
    fn deactivate(&self, irq: Acknowledged) {
        let _ = irq;
    }
    /// Sets line `line`'s priority (lower is more urgent).
    fn set_priority(&self, line: u32, priority: u8) {
        let _ = (line, priority);
    }
    /// Whether line `line` is active (acknowledged, not yet deactivated).
    fn is_active(&self, line: u32) -> bool {
        let _ = line;
        false
    }
    /// Sets or clears line `line`'s active state (a VM's context, for an
    /// interrupt forwarded to it).
    fn set_active(&self, line: u32, active: bool) {
        let _ = (line, active);
    }
}
