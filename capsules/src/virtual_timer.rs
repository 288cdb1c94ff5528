// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's architected virtual timer, whose interrupt the hypervisor
//! raises.
//!
//! Guest-visible interface: the ARMv7 generic timer's virtual timer (CNTV_CTL,
//! CNTV_CVAL, CNTV_TVAL, CNTVCT, all CP15 registers the guest uses directly),
//! interrupting through PPI 11 of the device tree (`arm,armv7-timer`, the
//! third entry), interrupt id [`TIMER_INTERRUPT`] at the virtual GIC (the
//! guest platform's `hyp::guest_platform::VIRTUAL_TIMER`),
//! level-sensitive: asserted while CNTV_CTL has ENABLE set, IMASK clear
//! and the counter has reached CNTV_CVAL (ISTATUS).
//!
//! On Integrator/CP the CPU's timer outputs are not wired, so nothing
//! interrupts when the condition is met; the kernel evaluates the guest's
//! timer ([`evaluate`]) at every exit, at every scheduling tick and, when
//! the guest waits, programs the hypervisor's alarm for the deadline.
//!
//! Time while a VM is not running: the virtual counter is the physical
//! counter less a per-VM offset (CNTVOFF) fixed when the VM is created, so
//! a guest's clock keeps running while it is descheduled, as wall-clock
//! time does; a deadline that passes meanwhile raises the interrupt when it
//! is next evaluated (at the latest when the VM is next scheduled, or, if it
//! waits, at the alarm). Guests keep correct time and may see late, never
//! lost, timer interrupts.

use hyp::interrupts::VirtualTimerState;

/// The timer's interrupt id at the virtual GIC (PPI 11), from the guest
/// platform.
pub const TIMER_INTERRUPT: u32 = hyp::guest_platform::VIRTUAL_TIMER;

/// What the timer asks of the interrupt controller and the alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerOutput {
    /// The level of the timer's interrupt line.
    pub level: bool,
    /// When to look again: the deadline of an armed timer that has not
    /// fired yet.
    pub wake_at: Option<u64>,
}

/// The timer's output for `timer` at time `now`.
pub const fn evaluate(timer: VirtualTimerState, now: u64) -> TimerOutput {
    let armed = timer.armed();
    let fired = armed && now >= timer.deadline;
    TimerOutput {
        level: fired,
        wake_at: if armed && !fired {
            Some(timer.deadline)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(control: u32, deadline: u64) -> VirtualTimerState {
        VirtualTimerState { control, deadline }
    }

    #[test]
    fn an_armed_timer_fires_at_its_deadline() {
        let armed = timer(VirtualTimerState::ENABLE, 1000);
        assert_eq!(
            evaluate(armed, 999),
            TimerOutput {
                level: false,
                wake_at: Some(1000)
            }
        );
        assert_eq!(
            evaluate(armed, 1000),
            TimerOutput {
                level: true,
                wake_at: None
            }
        );
        assert!(evaluate(armed, u64::MAX).level);
    }

    #[test]
    fn disabled_or_masked_timers_never_fire() {
        for control in [
            0,
            VirtualTimerState::IMASK,
            VirtualTimerState::ENABLE | VirtualTimerState::IMASK,
        ] {
            let output = evaluate(timer(control, 10), 1000);
            assert_eq!(
                output,
                TimerOutput {
                    level: false,
                    wake_at: None
                },
                "{control:#x}"
            );
        }
    }

    #[test]
    fn the_other_control_bits_do_not_matter() {
        // ISTATUS (bit 2) is read-only status; guests write it back as 1.
        let output = evaluate(timer(VirtualTimerState::ENABLE | 0b100, 5), 5);
        assert!(output.level);
    }
}
