// SPDX-License-Identifier: MIT OR Apache-2.0
//! Time: a monotonic counter and a one-shot alarm the hypervisor owns.
//!
//! Times are counter ticks (on ARMv7-A boards, the generic timer's
//! CNTPCT, which guests also see through CNTVCT less their offset).
//! [`Clock`] converts microseconds to ticks for time slices and tests;
//! [`WallClock`] says what calendar time the counter's zero was: a board
//! reads its real-time clock once at boot and pairs it with the counter
//! ([`BootWallClock::from_reading`]), and [`UtcDateTime`] prints it.
//!
//! ```
//! use hyp::hil::time::{BootWallClock, UtcDateTime, WallClock};
//! // The RTC read 1_796_685_612 s when the counter (62.5 MHz) was at 10 s.
//! let wall = BootWallClock::from_reading(1_796_685_612, 625_000_000, 62_500_000);
//! assert_eq!(wall.seconds_at_zero(), 1_796_685_602);
//! let date = UtcDateTime::from_unix_seconds(1_796_685_612);
//! assert_eq!(format!("{date}"), "2026-12-07 23:20:12 UTC");
//! ```

/// A monotonic counter.
pub trait Clock {
    /// The current count.
    fn now(&self) -> u64;
    /// Counts per second.
    fn frequency(&self) -> u32;
    /// `us` microseconds in ticks.
    fn ticks_from_us(&self, us: u64) -> u64 {
        us * self.frequency() as u64 / 1_000_000
    }
}

/// A one-shot alarm against a [`Clock`]: raises the hypervisor's alarm
/// interrupt once the clock reaches the deadline.
pub trait Alarm {
    /// Arms the alarm for `deadline` (clock ticks), replacing any previous
    /// setting. A deadline already past fires as soon as possible.
    fn set_alarm(&self, deadline: u64);
    /// Disarms the alarm.
    fn disarm(&self);
    /// Acknowledges a fired alarm (clears its interrupt). Returns whether
    /// it had fired.
    fn acknowledge(&self) -> bool;
}

/// Calendar time: what a guest's real-time clock counts from.
pub trait WallClock {
    /// Seconds since 1970-01-01 00:00 UTC when the board's [`Clock`] read
    /// 0 (so the time now is this plus the clock's count in seconds).
    fn seconds_at_zero(&self) -> u64;
}

impl core::fmt::Debug for dyn WallClock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "WallClock({} s at zero)", self.seconds_at_zero())
    }
}

/// A wall clock that was never set: the counter's zero is the epoch,
/// 1970-01-01 (what a board without a battery-backed clock it reads has).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnsetWallClock;

impl WallClock for UnsetWallClock {
    fn seconds_at_zero(&self) -> u64 {
        0
    }
}

/// The wall clock a board read once at boot: its real-time clock's
/// seconds paired with the counter at that moment. The counter carries it
/// from then on (the RTC is never read again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootWallClock {
    seconds_at_zero: u64,
}

impl BootWallClock {
    /// The wall clock of a board whose RTC read `rtc_seconds` (since 1970,
    /// UTC) when its counter read `count` at `frequency` ticks a second:
    /// the counter's zero was `rtc_seconds - count / frequency` (whole
    /// seconds, what the RTC resolves). An RTC that reads less than the
    /// counter's seconds (a board without a set clock: it counts from 0
    /// at power on, like the counter) gives the epoch, 1970-01-01.
    pub const fn from_reading(rtc_seconds: u64, count: u64, frequency: u32) -> BootWallClock {
        let frequency = if frequency == 0 { 1 } else { frequency as u64 };
        BootWallClock {
            seconds_at_zero: rtc_seconds.saturating_sub(count / frequency),
        }
    }
}

impl WallClock for BootWallClock {
    fn seconds_at_zero(&self) -> u64 {
        self.seconds_at_zero
    }
}

/// A calendar date and time of day in UTC (proleptic Gregorian calendar,
/// no leap seconds, as Unix time counts), for printing a wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcDateTime {
    /// The year (1970 and later).
    pub year: u64,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
    /// 0-59.
    pub second: u8,
}

/// Days in 400 Gregorian years: the calendar repeats after them.
const DAYS_PER_400_YEARS: u64 = 400 * 365 + 97;
const SECONDS_PER_DAY: u64 = 86_400;

const fn is_leap_year(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

const fn days_in_month(year: u64, month: u8) -> u64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl UtcDateTime {
    /// The date and time `seconds` after 1970-01-01 00:00:00 UTC.
    pub const fn from_unix_seconds(seconds: u64) -> UtcDateTime {
        let mut days = seconds / SECONDS_PER_DAY;
        let time = seconds % SECONDS_PER_DAY;
        // Whole 400-year cycles first (1970 + 400 n starts the same way
        // 1970 does), so the year loop runs at most 400 times.
        let mut year = 1970 + days / DAYS_PER_400_YEARS * 400;
        days %= DAYS_PER_400_YEARS;
        loop {
            let length = if is_leap_year(year) { 366 } else { 365 };
            if days < length {
                break;
            }
            days -= length;
            year += 1;
        }
        let mut month = 1;
        while days >= days_in_month(year, month) {
            days -= days_in_month(year, month);
            month += 1;
        }
        UtcDateTime {
            year,
            month,
            day: days as u8 + 1,
            hour: (time / 3600) as u8,
            minute: (time / 60 % 60) as u8,
            second: (time % 60) as u8,
        }
    }
}

/// `YYYY-MM-DD hh:mm:ss UTC`, as `date -u '+%F %T UTC'` prints it.
impl core::fmt::Display for UtcDateTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;

    fn date(seconds: u64) -> std::string::String {
        UtcDateTime::from_unix_seconds(seconds).to_string()
    }

    #[test]
    fn dates_agree_with_gnu_date() {
        // Each pair checked against `date -u -d @seconds '+%F %T'`.
        for (seconds, expected) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (68_169_600, "1972-02-29 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_767_225_600, "2026-01-01 00:00:00 UTC"),
            (1_796_685_612, "2026-12-07 23:20:12 UTC"),
            (2_147_483_647, "2038-01-19 03:14:07 UTC"),
            (4_107_542_400, "2100-03-01 00:00:00 UTC"),
            (4_294_967_295, "2106-02-07 06:28:15 UTC"),
        ] {
            assert_eq!(date(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // Across five centuries (1970-2470, a 400-year cycle and more):
        // each day is the previous one's next calendar day.
        let mut previous = UtcDateTime::from_unix_seconds(0);
        for day in 1..(500 * 366) {
            let today = UtcDateTime::from_unix_seconds(day * SECONDS_PER_DAY + 3661);
            assert_eq!((today.hour, today.minute, today.second), (1, 1, 1));
            let next = if u64::from(previous.day) < days_in_month(previous.year, previous.month) {
                (previous.year, previous.month, previous.day + 1)
            } else if previous.month < 12 {
                (previous.year, previous.month + 1, 1)
            } else {
                (previous.year + 1, 1, 1)
            };
            assert_eq!((today.year, today.month, today.day), next, "day {day}");
            previous = today;
        }
        assert!(is_leap_year(2000) && !is_leap_year(2100) && is_leap_year(2024));
    }

    #[test]
    fn the_boot_reading_gives_the_counters_zero() {
        // 62.5 MHz, the counter at 12.8 s: zero was 12 whole seconds earlier.
        let wall = BootWallClock::from_reading(1_796_685_612, 800_000_000, 62_500_000);
        assert_eq!(wall.seconds_at_zero(), 1_796_685_600);
        // An RTC that was never set reads the seconds since power on.
        assert_eq!(
            BootWallClock::from_reading(3, 800_000_000, 62_500_000).seconds_at_zero(),
            0
        );
        assert_eq!(BootWallClock::from_reading(0, 0, 0).seconds_at_zero(), 0);
        assert_eq!(UnsetWallClock.seconds_at_zero(), 0);
    }
}
