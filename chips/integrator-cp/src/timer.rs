//! The Integrator/CP counter/timers (SP804-like, three of them).
//!
//! Each timer is a down-counter with a load value, a control register and an
//! interrupt. Timer 0 counts at about 40 MHz, timers 1 and 2 at 1 MHz. At boot
//! the hypervisor stops all three and clears their interrupts; the time layer
//! builds its clock and alarm on the same driver.
//!
//! | offset | register |
//! |---|---|
//! | 0x00 | LOAD |
//! | 0x04 | VALUE |
//! | 0x08 | CTRL: EN 0x80, PERIODIC 0x40, IE 0x20, 32BIT 0x02, ONESHOT 0x01 |
//! | 0x0c | INTCLR |
//! | 0x10 | RIS |
//! | 0x14 | MIS |
//! | 0x18 | BGLOAD |

use hyp::hil::time::{Alarm, Clock};
use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_structs! {
    /// One timer's register block.
    pub TimerRegisters {
        (0x00 => load: ReadWrite<u32>),
        (0x04 => value: ReadOnly<u32>),
        (0x08 => ctrl: ReadWrite<u32, TIMER_CONTROL::Register>),
        (0x0c => intclr: WriteOnly<u32>),
        (0x10 => ris: ReadOnly<u32>),
        (0x14 => mis: ReadOnly<u32>),
        (0x18 => bgload: ReadWrite<u32>),
        (0x1c => @END),
    }
}

register_bitfields! [u32,
    TIMER_CONTROL [
        ONESHOT OFFSET(0) NUMBITS(1) [],
        SIZE_32BIT OFFSET(1) NUMBITS(1) [],
        PRESCALE OFFSET(2) NUMBITS(2) [],
        INTERRUPT_ENABLE OFFSET(5) NUMBITS(1) [],
        PERIODIC OFFSET(6) NUMBITS(1) [],
        ENABLE OFFSET(7) NUMBITS(1) []
    ]
];

/// Distance between consecutive timers' register blocks.
pub const TIMER_STRIDE: usize = 0x100;

/// One counter/timer.
#[derive(Debug)]
pub struct Timer {
    registers: StaticRef<TimerRegisters>,
}

impl Timer {
    /// A driver for the timer whose registers start at `base`.
    ///
    /// # Safety
    /// `base` must be a timer register block, mapped as Device memory
    /// whenever the driver is used.
    pub const unsafe fn new(base: usize) -> Timer {
        Timer {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const TimerRegisters) },
        }
    }

    /// Stops the counter and clears a pending interrupt.
    pub fn stop(&self) {
        self.registers.ctrl.set(0);
        self.registers.intclr.set(1);
    }

    /// Whether the timer is counting.
    pub fn is_running(&self) -> bool {
        self.registers.ctrl.is_set(TIMER_CONTROL::ENABLE)
    }

    /// The current counter value.
    pub fn value(&self) -> u32 {
        self.registers.value.get()
    }

    /// Whether the timer's interrupt is asserted (raw, before masking).
    pub fn interrupt_raised(&self) -> bool {
        self.registers.ris.get() & 1 != 0
    }
}

/// The input clock of counter/timers 1 and 2 on Integrator/CP.
pub const TIMER1_HZ: u32 = 1_000_000;

/// A counter/timer in one-shot mode as the hypervisor's alarm
/// (`hyp::hil::time::Alarm`), against a clock of another frequency (the
/// CPU's counter): a deadline in clock ticks becomes a count of timer
/// ticks, rounded up so the alarm never fires early.
#[derive(Debug)]
pub struct OneShotAlarm<'a, C: Clock> {
    timer: Timer,
    timer_hz: u32,
    clock: &'a C,
}

impl<'a, C: Clock> OneShotAlarm<'a, C> {
    /// An alarm on `timer`, counting at `timer_hz`, for deadlines on `clock`.
    pub fn new(timer: Timer, timer_hz: u32, clock: &'a C) -> Self {
        timer.stop();
        OneShotAlarm {
            timer,
            timer_hz,
            clock,
        }
    }
}

/// `clock_ticks` of a `clock_hz` clock in ticks of a `timer_hz` timer,
/// rounded up, at least 1 and at most `u32::MAX`.
pub const fn timer_ticks(clock_ticks: u64, clock_hz: u32, timer_hz: u32) -> u32 {
    if clock_hz == 0 {
        return 1;
    }
    let scaled = (clock_ticks as u128 * timer_hz as u128).div_ceil(clock_hz as u128);
    if scaled == 0 {
        1
    } else if scaled > u32::MAX as u128 {
        u32::MAX
    } else {
        scaled as u32
    }
}

impl<C: Clock> Alarm for OneShotAlarm<'_, C> {
    fn set_alarm(&self, deadline: u64) {
        let now = self.clock.now();
        let ticks = timer_ticks(
            deadline.saturating_sub(now),
            self.clock.frequency(),
            self.timer_hz,
        );
        let regs = &*self.timer.registers;
        regs.ctrl.set(0);
        regs.intclr.set(1);
        regs.load.set(ticks);
        regs.ctrl.write(
            TIMER_CONTROL::ENABLE::SET
                + TIMER_CONTROL::ONESHOT::SET
                + TIMER_CONTROL::SIZE_32BIT::SET
                + TIMER_CONTROL::INTERRUPT_ENABLE::SET,
        );
    }

    fn disarm(&self) {
        self.timer.stop();
    }

    fn acknowledge(&self) -> bool {
        let fired = self.timer.interrupt_raised();
        if fired {
            self.timer.registers.intclr.set(1);
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_convert_to_timer_ticks_rounding_up() {
        // 62.5 MHz counter, 1 MHz timer: 62.5 counter ticks per timer tick.
        assert_eq!(timer_ticks(625, 62_500_000, 1_000_000), 10);
        assert_eq!(timer_ticks(626, 62_500_000, 1_000_000), 11);
        assert_eq!(timer_ticks(0, 62_500_000, 1_000_000), 1, "never 0");
        assert_eq!(timer_ticks(u64::MAX, 62_500_000, 1_000_000), u32::MAX);
        assert_eq!(timer_ticks(5, 0, 1_000_000), 1);
    }
}
