// SPDX-License-Identifier: MIT OR Apache-2.0
//! Time: a monotonic counter and a one-shot alarm the hypervisor owns.
//!
//! Times are counter ticks (on ARMv7-A boards, the generic timer's
//! CNTPCT, which guests also see through CNTVCT less their offset).
//! [`Clock`] converts microseconds to ticks for time slices and tests;
//! [`WallClock`] says what calendar time the counter's zero was.

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
