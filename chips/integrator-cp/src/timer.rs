// SPDX-License-Identifier: MIT OR Apache-2.0
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
    scale: TickScale,
    clock: &'a C,
}

impl<'a, C: Clock> OneShotAlarm<'a, C> {
    /// An alarm on `timer`, counting at `timer_hz`, for deadlines on `clock`.
    pub fn new(timer: Timer, timer_hz: u32, clock: &'a C) -> Self {
        timer.stop();
        OneShotAlarm {
            timer,
            scale: TickScale::new(clock.frequency(), timer_hz),
            clock,
        }
    }
}

/// Converts clock ticks to timer ticks with one multiplication: the alarm
/// is programmed at every VM switch, and a 64- or 128-bit division there
/// costs hundreds of instructions on a 32-bit CPU. The factor is rounded
/// up, so the alarm is never early; it is late by at most one timer tick
/// plus one per 2^32 clock ticks (at 62.5 MHz, one microsecond per 69 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickScale {
    /// timer_hz / clock_hz as a 32.32 fixed-point number, rounded up.
    factor: u64,
    /// Clock ticks at or beyond which the timer count saturates.
    limit: u64,
}

impl TickScale {
    /// The scale from a `clock_hz` clock to a `timer_hz` timer.
    pub const fn new(clock_hz: u32, timer_hz: u32) -> TickScale {
        if clock_hz == 0 || timer_hz == 0 {
            return TickScale {
                factor: 0,
                limit: 0,
            };
        }
        let factor = ((timer_hz as u128) << 32).div_ceil(clock_hz as u128);
        // Past `limit`, ticks * factor could overflow or the count would
        // not fit the timer's 32 bits anyway.
        let overflow = u64::MAX as u128 / factor;
        let saturation = (u32::MAX as u128 * clock_hz as u128) / timer_hz as u128;
        let limit = if overflow < saturation {
            overflow
        } else {
            saturation
        };
        TickScale {
            factor: factor as u64,
            limit: limit as u64,
        }
    }

    /// `clock_ticks` in timer ticks, rounded up, at least 1 and at most
    /// `u32::MAX`.
    pub const fn timer_ticks(&self, clock_ticks: u64) -> u32 {
        if self.factor == 0 {
            return 1;
        }
        if clock_ticks >= self.limit {
            return u32::MAX;
        }
        let scaled = (clock_ticks * self.factor).div_ceil(1 << 32);
        if scaled == 0 {
            1
        } else if scaled > u32::MAX as u64 {
            u32::MAX
        } else {
            scaled as u32
        }
    }
}

impl<C: Clock> Alarm for OneShotAlarm<'_, C> {
    fn set_alarm(&self, deadline: u64) {
        let now = self.clock.now();
        let ticks = self.scale.timer_ticks(deadline.saturating_sub(now));
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

    /// The exact answer, by 128-bit division.
    fn exact(clock_ticks: u64, clock_hz: u32, timer_hz: u32) -> u128 {
        (clock_ticks as u128 * timer_hz as u128).div_ceil(clock_hz as u128)
    }

    #[test]
    fn deadlines_convert_to_timer_ticks_rounding_up() {
        // 62.5 MHz counter, 1 MHz timer: 62.5 counter ticks per timer tick.
        let scale = TickScale::new(62_500_000, 1_000_000);
        // Exactly 10 timer ticks may come out as 11 (the factor is rounded
        // up), never as 9.
        assert!((10..=11).contains(&scale.timer_ticks(625)));
        assert_eq!(scale.timer_ticks(626), 11);
        assert_eq!(scale.timer_ticks(62_500), 1001);
        assert_eq!(scale.timer_ticks(0), 1, "never 0");
        assert_eq!(scale.timer_ticks(u64::MAX), u32::MAX);
        assert_eq!(TickScale::new(0, 1_000_000).timer_ticks(5), 1);
    }

    #[test]
    fn never_early_and_late_by_at_most_one_tick_per_2_to_the_32() {
        for (clock_hz, timer_hz) in [
            (62_500_000, 1_000_000),
            (24_000_000, 1_000_000),
            (1_000_000, 40_000_000),
            (62_500_000, 62_500_000),
        ] {
            let scale = TickScale::new(clock_hz, timer_hz);
            let mut ticks = 1u64;
            while ticks < (1 << 40) {
                for delta in [ticks - 1, ticks, ticks + 1, ticks * 3 + 7] {
                    let exact = exact(delta, clock_hz, timer_hz).clamp(1, u32::MAX as u128);
                    let got = scale.timer_ticks(delta) as u128;
                    let slack = 1 + (delta >> 32) as u128;
                    assert!(
                        got >= exact && got <= exact + slack,
                        "{delta} ticks at {clock_hz}/{timer_hz}: {got} vs {exact}"
                    );
                }
                ticks = ticks * 5 / 3 + 1;
            }
        }
    }
}
