// SPDX-License-Identifier: MIT OR Apache-2.0
//! Time: a monotonic counter and a one-shot alarm the hypervisor owns.
//!
//! Times are counter ticks (on ARMv7-A boards, the generic timer's
//! CNTPCT, which guests also see through CNTVCT less their offset).
//! [`Clock`] converts microseconds to ticks for time slices and tests.

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
