// SPDX-License-Identifier: MIT OR Apache-2.0
//! How a VM's virtual interrupts reach its vCPU: the interrupt backend.
//!
//! Every VM has one [`InterruptBackend`]. It owns the VM's interrupt state
//! (its virtual GIC) and a context that lives in the CPU while the VM runs
//! and is switched in and out with it, like the vCPU's registers. The
//! kernel drives it at a few points of the exit loop and knows nothing of
//! how interrupts are delivered:
//!
//! | when | call |
//! |---|---|
//! | the VM gets the CPU / gives it up | [`InterruptBackend::switch_in`] / [`InterruptBackend::switch_out`] |
//! | before every entry | [`InterruptBackend::before_entry`] |
//! | the VM waits (WFI), or the hypervisor looks at a waiting VM | [`InterruptBackend::poll`] |
//! | the VM restarts | [`InterruptBackend::reset`] |
//!
//! Two backends exist (both in `capsules::virtual_gic`):
//! - *software*, for CPUs whose board has no GIC virtualization interface
//!   (Integrator/CP): the whole GIC is emulated, the vCPU's IRQ input is
//!   HCR.VI (the [`VirtualIrqLine`] HIL), and the guest's virtual timer is
//!   evaluated before every entry, with the hypervisor's alarm set for its
//!   deadline;
//! - *GICv2 virtualization* (qemu-virt): the distributor is emulated, the
//!   CPU interface is the GIC's own virtual CPU interface (GICV), fed
//!   through its list registers, and the timer's interrupt is taken
//!   physically and forwarded, so nothing is polled at an exit.
//!
//! A backend is told what changed (`changed`) rather than finding out: the
//! kernel sets it after an exit that can have changed the VM's interrupts
//! (an emulated device access, a physical interrupt, a new slice).

/// A guest's architected virtual timer (CNTV): its control register and
/// its compare value converted to the hypervisor's clock (CVAL plus the
/// VM's CNTVOFF, so it can be compared with the platform's `now`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtualTimerState {
    /// CNTV_CTL: ENABLE (bit 0), IMASK (bit 1).
    pub control: u32,
    /// When the timer condition is met, in clock ticks.
    pub deadline: u64,
}

impl VirtualTimerState {
    /// CNTV_CTL.ENABLE.
    pub const ENABLE: u32 = 1 << 0;
    /// CNTV_CTL.IMASK.
    pub const IMASK: u32 = 1 << 1;

    /// Whether the timer is enabled and its interrupt not masked.
    pub const fn armed(&self) -> bool {
        Self::control_armed(self.control)
    }

    /// Whether a timer with CNTV_CTL `control` is armed.
    pub const fn control_armed(control: u32) -> bool {
        control & (Self::ENABLE | Self::IMASK) == Self::ENABLE
    }

    /// Whether the timer's interrupt condition holds at `now`.
    pub const fn fired(&self, now: u64) -> bool {
        self.armed() && now >= self.deadline
    }
}

/// The vCPU's virtual timer as its backend reads it (implemented by the
/// architecture's vCPU; live CP15 registers while the VM is switched in,
/// the saved ones otherwise).
pub trait VirtualTimer {
    /// CNTV_CTL; cheap, read first.
    fn virtual_timer_control(&self) -> u32;
    /// CNTV_CVAL plus the VM's CNTVOFF, in clock ticks; read only when the
    /// timer is armed.
    fn virtual_timer_deadline(&self) -> u64;
    /// Both.
    fn virtual_timer(&self) -> VirtualTimerState {
        VirtualTimerState {
            control: self.virtual_timer_control(),
            deadline: self.virtual_timer_deadline(),
        }
    }
}

/// What [`InterruptBackend::poll`] found for a waiting VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Poll {
    /// An interrupt is pending for the vCPU: a WFI completes.
    pub pending: bool,
    /// If not: when to look again (the VM's timer deadline).
    pub wake_at: Option<u64>,
}

/// One VM's interrupt delivery (see the module documentation).
pub trait InterruptBackend {
    /// The VM gets the CPU: its interrupt context goes into the CPU.
    fn switch_in(&self);
    /// Another VM gets the CPU: saves what `switch_in` loaded.
    fn switch_out(&self);
    /// Before an entry of the switched-in VM: presents its pending
    /// interrupts to the vCPU, when `changed` says they can have changed
    /// since the last entry or the backend must look anyway. Returns when
    /// the hypervisor's alarm must fire for this VM (a timer deadline the
    /// backend tracks in software), if ever. `now` reads the clock.
    fn before_entry(
        &self,
        timer: &dyn VirtualTimer,
        now: &dyn Fn() -> u64,
        changed: bool,
    ) -> Option<u64>;
    /// Whether [`before_entry`](Self::before_entry) must run before every
    /// entry while the guest's timer is armed (a backend that polls the
    /// timer in software; the kernel also calls it once after the timer
    /// was disarmed), or only when the kernel says something changed.
    /// Asked once, when the VM is given its backend.
    fn polls_every_entry(&self) -> bool {
        true
    }
    /// Whether an interrupt is pending for the VM at `now` (it waits, or
    /// is about to), and if not, when to look again. Called for switched-in
    /// and switched-out VMs alike.
    fn poll(&self, timer: &dyn VirtualTimer, now: u64) -> Poll;
    /// A physical interrupt the board routes to the switched-in VM (its
    /// timer's, or the GIC's maintenance interrupt). Returns whether the
    /// backend took it.
    fn physical_interrupt(&self, id: u32) -> bool {
        let _ = id;
        false
    }
    /// The VM restarts: its interrupt controller goes back to its reset
    /// state. Called while the VM is switched in.
    fn reset(&self);
    /// The other vCPUs of this VM (bit n: vCPU n) whose deliverable
    /// interrupts changed since the last call because of something this
    /// vCPU or a device did (an SGI, an SPI routed or raised for them): the
    /// kernel kicks the physical CPUs they run on. Clears the set. A
    /// single-vCPU VM never has any.
    fn take_kicks(&self) -> u32 {
        0
    }
}

/// A VM without interrupts (nothing pending, ever).
#[derive(Debug)]
pub struct NoInterrupts;

impl InterruptBackend for NoInterrupts {
    fn switch_in(&self) {}
    fn switch_out(&self) {}
    fn before_entry(
        &self,
        _timer: &dyn VirtualTimer,
        _now: &dyn Fn() -> u64,
        _changed: bool,
    ) -> Option<u64> {
        None
    }
    fn poll(&self, _timer: &dyn VirtualTimer, _now: u64) -> Poll {
        Poll::default()
    }
    fn reset(&self) {}
}

/// The vCPU's IRQ input on a CPU without a GIC virtualization interface
/// (on ARMv7-A, HCR.VI), implemented by the architecture chip for the
/// software backend.
pub trait VirtualIrqLine {
    /// Asserts or deasserts the IRQ input of the switched-in vCPU; takes
    /// effect at the next entry.
    fn set(&self, asserted: bool);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_fires_only_when_armed_and_due() {
        let armed = VirtualTimerState {
            control: VirtualTimerState::ENABLE,
            deadline: 100,
        };
        assert!(!armed.fired(99));
        assert!(armed.fired(100));
        let masked = VirtualTimerState {
            control: VirtualTimerState::ENABLE | VirtualTimerState::IMASK,
            deadline: 100,
        };
        assert!(!masked.fired(u64::MAX));
        assert!(!VirtualTimerState::default().fired(u64::MAX));
    }
}
