// SPDX-License-Identifier: MIT OR Apache-2.0
//! What happens to a VM that faults in a way it cannot handle.
//!
//! Most guest faults are reflected into the guest (design rule 2,
//! `docs/architecture.md`). Some
//! cannot be: a fault taken while reflecting the previous one (the guest's
//! vectors are unmapped or themselves fault), or a guest that faults at the
//! same place over and over without making progress. The core only
//! *detects* these ([`FaultLoopDetector`]) and marks the VM faulted; a
//! [`VmFaultPolicy`], which the board picks per VM from the capsules,
//! decides whether the VM is stopped, restarted, or (for a VM the system
//! cannot live without) the whole hypervisor stops. This follows Tock's
//! process fault policies and Hubris's supervisor: the kernel marks, policy
//! decides.

/// The decision for a VM that faulted fatally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultResponse {
    /// Stop the whole hypervisor with a report.
    Panic,
    /// Stop this VM; the others carry on.
    Stop,
    /// Reset this VM to its boot state and run it again.
    Restart,
}

/// Chooses the response to a VM's fatal fault.
pub trait VmFaultPolicy {
    /// `restarts` is how many times the VM has been restarted already.
    fn response(&self, restarts: u32) -> FaultResponse;
}

/// Recognises a guest that cannot take its own faults. Two signs:
///
/// * the guest faults again at the very vector it was just sent to (its
///   vector table is unmapped or itself faults): [`VECTOR_FAULT_LIMIT`]
///   times in a row;
/// * the guest faults at one address [`FAULT_LOOP_LIMIT`] times in a row
///   with no other exit in between (a handler that "returns" to the same
///   faulting instruction forever). The limit is high because a guest may
///   legitimately fault at one instruction many times in a loop of its own.
///
/// The kernel reports each fault with [`Self::faulted_at`] before
/// reflecting it, with a count of the VM's exits that were neither faults
/// nor physical interrupts (its progress: when the count moved since the
/// last fault, the guest got somewhere in between and everything seen is
/// forgotten), and the vector it sent the guest to with [`Self::entered`].
/// Ordinary exits cost the detector nothing: the count is one the kernel
/// keeps anyway. A restart forgets everything ([`Self::progressed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultLoopDetector {
    progress: Option<u32>,
    last_pc: Option<u32>,
    repeats: u32,
    last_vector: Option<u32>,
    vector_faults: u32,
}

/// How many identical faults in a row, with no other exit, mean the guest
/// is stuck.
pub const FAULT_LOOP_LIMIT: u32 = 10_000;
/// How many faults in a row at the vector just entered mean the guest's
/// vectors are unusable.
pub const VECTOR_FAULT_LIMIT: u32 = 3;

impl FaultLoopDetector {
    /// A detector with nothing seen.
    pub const fn new() -> Self {
        FaultLoopDetector {
            progress: None,
            last_pc: None,
            repeats: 0,
            last_vector: None,
            vector_faults: 0,
        }
    }

    /// Records a fault at guest address `pc`, before it is reflected;
    /// `progress` counts the VM's exits that were not faults or physical
    /// interrupts. Returns true when the guest is stuck: the policy must
    /// decide.
    pub fn faulted_at(&mut self, pc: u32, progress: u32) -> bool {
        if self.progress != Some(progress) {
            *self = FaultLoopDetector::new();
            self.progress = Some(progress);
        }
        if self.last_pc == Some(pc) {
            self.repeats += 1;
        } else {
            self.last_pc = Some(pc);
            self.repeats = 1;
        }
        if self.last_vector == Some(pc) {
            self.vector_faults += 1;
        } else {
            self.vector_faults = 0;
        }
        self.repeats >= FAULT_LOOP_LIMIT || self.vector_faults >= VECTOR_FAULT_LIMIT
    }

    /// Records the vector address a reflected fault sent the guest to.
    pub fn entered(&mut self, vector: u32) {
        self.last_vector = Some(vector);
    }

    /// Forgets every fault seen (the VM restarts).
    pub fn progressed(&mut self) {
        *self = FaultLoopDetector::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_at_the_vector_just_entered_are_a_loop() {
        let mut detector = FaultLoopDetector::new();
        assert!(!detector.faulted_at(0x4000_8000, 7)); // the original fault
        for _ in 1..VECTOR_FAULT_LIMIT {
            detector.entered(0xffff_0010);
            assert!(!detector.faulted_at(0xffff_0010, 7));
        }
        detector.entered(0xffff_0010);
        assert!(detector.faulted_at(0xffff_0010, 7));
    }

    #[test]
    fn a_guest_handling_repeated_faults_is_not_stuck_too_soon() {
        // A handler that resumes after the faulting load, in a loop: the
        // same fault address each time, the vector never faults.
        let mut detector = FaultLoopDetector::new();
        for _ in 1..FAULT_LOOP_LIMIT {
            assert!(!detector.faulted_at(0x4000_0100, 0));
            detector.entered(0x4000_0010);
        }
        assert!(detector.faulted_at(0x4000_0100, 0), "but not forever");
    }

    #[test]
    fn progress_resets_everything() {
        let mut detector = FaultLoopDetector::new();
        detector.faulted_at(0x10, 3);
        detector.entered(0x20);
        for _ in 1..VECTOR_FAULT_LIMIT {
            assert!(!detector.faulted_at(0x20, 3));
        }
        // One exit of progress in between: not a loop.
        assert!(!detector.faulted_at(0x20, 4));
        detector.progressed();
        assert_eq!(detector, FaultLoopDetector::new());
    }
}
