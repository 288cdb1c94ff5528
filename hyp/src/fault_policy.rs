//! What happens to a VM that faults in a way it cannot handle.
//!
//! Most guest faults are reflected into the guest (design rule 2). Some
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

/// Recognises a guest that cannot take its own faults: the same fault
/// reflected to the same vector again and again with no other exit in
/// between. Every reflected fault is reported with [`Self::reflected`];
/// any other exit resets the count with [`Self::progressed`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultLoopDetector {
    last_pc: Option<u32>,
    repeats: u32,
}

/// How many identical reflections in a row mean the guest is stuck.
pub const FAULT_LOOP_LIMIT: u32 = 32;

impl FaultLoopDetector {
    /// A detector with nothing seen.
    pub const fn new() -> Self {
        FaultLoopDetector {
            last_pc: None,
            repeats: 0,
        }
    }

    /// Records a fault at guest address `pc` that is about to be reflected.
    /// Returns true when the guest is stuck: the policy must decide.
    pub fn reflected(&mut self, pc: u32) -> bool {
        if self.last_pc == Some(pc) {
            self.repeats += 1;
        } else {
            self.last_pc = Some(pc);
            self.repeats = 1;
        }
        self.repeats >= FAULT_LOOP_LIMIT
    }

    /// Records an exit that was not a reflected fault.
    pub fn progressed(&mut self) {
        *self = FaultLoopDetector::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_faults_at_one_place_are_a_loop() {
        let mut detector = FaultLoopDetector::new();
        for _ in 1..FAULT_LOOP_LIMIT {
            assert!(!detector.reflected(0x4000_0010));
        }
        assert!(detector.reflected(0x4000_0010));
    }

    #[test]
    fn progress_or_another_place_resets_the_count() {
        let mut detector = FaultLoopDetector::new();
        for _ in 1..FAULT_LOOP_LIMIT {
            detector.reflected(0x10);
        }
        detector.progressed();
        assert!(!detector.reflected(0x10));
        for _ in 1..FAULT_LOOP_LIMIT {
            detector.reflected(0x10);
        }
        assert!(!detector.reflected(0x14), "a different address starts over");
    }
}
