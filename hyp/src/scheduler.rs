// SPDX-License-Identifier: MIT OR Apache-2.0
//! Choosing which vCPU one physical CPU runs next, and for how long.
//!
//! The shape of Tock's `Scheduler` trait: the kernel asks
//! [`Scheduler::next`] which of the vCPUs pinned to its CPU to run (and
//! with what time slice), runs it until it stops running, and reports why
//! with [`Scheduler::stopped`]. The vCPUs are numbered by their place in
//! the CPU's list (of any VM). [`RoundRobin`] gives every ready vCPU the
//! same slice in turn; a vCPU that waits for an interrupt gives up the
//! rest of its slice and is not picked again until an interrupt is pending
//! for it.

use core::cell::Cell;

/// What the scheduler decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulingDecision {
    /// Run vCPU `vcpu` (its place in the CPU's list) for at most `slice`
    /// clock ticks (`None`: until it stops by itself).
    Run { vcpu: usize, slice: Option<u64> },
    /// No vCPU is ready: wait for an interrupt.
    Sleep,
}

/// Why a vCPU stopped running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Its time slice ran out.
    Preempted,
    /// It waits for an interrupt (WFI/WFE with nothing pending).
    Waiting,
    /// It powered off, was stopped or restarted.
    Stopped,
}

/// A scheduling policy.
pub trait Scheduler {
    /// The next vCPU to run among `count`, given which are `ready`.
    fn next(&self, count: usize, ready: &dyn Fn(usize) -> bool) -> SchedulingDecision;
    /// vCPU `vcpu` stopped running for `reason`.
    fn stopped(&self, vcpu: usize, reason: StopReason);
}

/// Round robin with a fixed time slice.
#[derive(Debug)]
pub struct RoundRobin {
    slice: u64,
    /// The vCPU after the one that ran last: where the search starts.
    cursor: Cell<usize>,
}

impl RoundRobin {
    /// Round robin with slices of `slice` clock ticks.
    pub const fn new(slice: u64) -> RoundRobin {
        RoundRobin {
            slice,
            cursor: Cell::new(0),
        }
    }
}

impl Scheduler for RoundRobin {
    fn next(&self, count: usize, ready: &dyn Fn(usize) -> bool) -> SchedulingDecision {
        let start = self.cursor.get().min(count);
        match (start..count).chain(0..start).find(|&vcpu| ready(vcpu)) {
            Some(vcpu) => SchedulingDecision::Run {
                vcpu,
                slice: Some(self.slice),
            },
            None => SchedulingDecision::Sleep,
        }
    }

    fn stopped(&self, vcpu: usize, _reason: StopReason) {
        self.cursor.set(vcpu + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns_among_ready_vcpus() {
        let scheduler = RoundRobin::new(100);
        let ready = [true, false, true];
        let is_ready = |vcpu: usize| ready[vcpu];
        let mut order = [0usize; 4];
        for slot in order.iter_mut() {
            let SchedulingDecision::Run { vcpu, slice } = scheduler.next(3, &is_ready) else {
                panic!("a vCPU is ready");
            };
            assert_eq!(slice, Some(100));
            *slot = vcpu;
            scheduler.stopped(vcpu, StopReason::Preempted);
        }
        assert_eq!(order, [0, 2, 0, 2]);
    }

    #[test]
    fn sleeps_when_nothing_is_ready() {
        let scheduler = RoundRobin::new(100);
        assert_eq!(scheduler.next(2, &|_| false), SchedulingDecision::Sleep);
        assert_eq!(scheduler.next(0, &|_| true), SchedulingDecision::Sleep);
    }
}
