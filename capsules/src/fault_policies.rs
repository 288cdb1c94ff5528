// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VM fault policies a board can choose from.
//!
//! Each implements `hyp::fault_policy::VmFaultPolicy` (see there for when
//! a policy is asked). Boards pick one per VM in their configuration.
//!
//! ```
//! use capsules::fault_policies::RestartThenStop;
//! use hyp::fault_policy::{FaultResponse, VmFaultPolicy};
//! let policy = RestartThenStop::new(2);
//! assert_eq!(policy.response(0), FaultResponse::Restart);
//! assert_eq!(policy.response(2), FaultResponse::Stop);
//! ```

use hyp::fault_policy::{FaultResponse, VmFaultPolicy};

/// Stop the VM; the others carry on.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopFaultPolicy;

impl VmFaultPolicy for StopFaultPolicy {
    fn response(&self, _restarts: u32) -> FaultResponse {
        FaultResponse::Stop
    }
}

/// Stop the hypervisor: for a VM the system cannot run without.
#[derive(Clone, Copy, Debug, Default)]
pub struct PanicFaultPolicy;

impl VmFaultPolicy for PanicFaultPolicy {
    fn response(&self, _restarts: u32) -> FaultResponse {
        FaultResponse::Panic
    }
}

/// Restart the VM up to `limit` times, then stop it.
#[derive(Clone, Copy, Debug)]
pub struct RestartThenStop {
    limit: u32,
}

impl RestartThenStop {
    /// Allows `limit` restarts.
    pub const fn new(limit: u32) -> Self {
        RestartThenStop { limit }
    }
}

impl VmFaultPolicy for RestartThenStop {
    fn response(&self, restarts: u32) -> FaultResponse {
        if restarts < self.limit {
            FaultResponse::Restart
        } else {
            FaultResponse::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_policies() {
        assert_eq!(StopFaultPolicy.response(0), FaultResponse::Stop);
        assert_eq!(PanicFaultPolicy.response(7), FaultResponse::Panic);
    }

    #[test]
    fn restart_limit() {
        let policy = RestartThenStop::new(3);
        let responses: [FaultResponse; 5] = core::array::from_fn(|n| policy.response(n as u32));
        use FaultResponse::*;
        assert_eq!(responses, [Restart, Restart, Restart, Stop, Stop]);
        assert_eq!(RestartThenStop::new(0).response(0), Stop);
    }
}
