// SPDX-License-Identifier: MIT OR Apache-2.0
//! PSCI 0.2 for single-CPU guests, over HVC or SMC.
//!
//! Guest-visible interface (SMC32 function ids, arguments in r1-r3, result
//! in r0), as the Arm Power State Coordination Interface 0.2 defines it:
//!
//! | id | function | answer |
//! |---|---|---|
//! | 0x8400_0000 | PSCI_VERSION | 0x0000_0002 (0.2) |
//! | 0x8400_0001 | CPU_SUSPEND | NOT_SUPPORTED |
//! | 0x8400_0002 | CPU_OFF | the VM stops (its only CPU is off) |
//! | 0x8400_0003 | CPU_ON | ALREADY_ON for CPU 0, INVALID_PARAMETERS otherwise |
//! | 0x8400_0004 | AFFINITY_INFO | ON (0) for CPU 0, INVALID_PARAMETERS otherwise |
//! | 0x8400_0006 | MIGRATE_INFO_TYPE | 2: no Trusted OS, nothing to migrate |
//! | 0x8400_0008 | SYSTEM_OFF | the VM stops |
//! | 0x8400_0009 | SYSTEM_RESET | the VM restarts |
//! | 0x8400_000a | PSCI_FEATURES | 0 for the functions above, NOT_SUPPORTED otherwise |
//!
//! Every other id in the PSCI ranges (0x8400_0000-0x8400_001f and the SMC64
//! range 0xc400_0000-0xc400_001f, meaningless to a 32-bit guest) answers
//! NOT_SUPPORTED (-1).

use hyp::dispatch::{HypercallDriver, HypercallOutcome, NotResettable, NOT_SUPPORTED};

pub use hyp::psci::{
    AFFINITY_INFO, ALREADY_ON, CPU_OFF, CPU_ON, CPU_SUSPEND, FEATURES, INVALID_PARAMETERS,
    MIGRATE_INFO_TYPE, SYSTEM_OFF, SYSTEM_RESET, VERSION,
};

/// PSCI 0.2, encoded as major << 16 | minor.
pub const PSCI_0_2: u32 = 0x0000_0002;
/// MIGRATE_INFO_TYPE: no Trusted OS, migration not required.
pub const TRUSTED_OS_NOT_PRESENT: u32 = 2;

const IMPLEMENTED: [u32; 8] = [
    VERSION,
    CPU_OFF,
    CPU_ON,
    AFFINITY_INFO,
    MIGRATE_INFO_TYPE,
    SYSTEM_OFF,
    SYSTEM_RESET,
    FEATURES,
];

/// The PSCI service of one single-CPU VM.
#[derive(Debug, Default)]
pub struct Psci;

impl Psci {
    /// A PSCI service.
    pub const fn new() -> Psci {
        Psci
    }
}

/// Whether `mpidr` names the VM's only CPU (affinity 0.0.0).
const fn is_cpu0(mpidr: u32) -> bool {
    mpidr & 0x00ff_ffff == 0
}

impl HypercallDriver for Psci {
    fn name(&self) -> &'static str {
        "psci"
    }

    /// PSCI keeps nothing per VM: there is nothing to forget.
    fn reset(&self) -> Result<(), NotResettable> {
        Ok(())
    }

    /// PSCI's ids, in SMCCC owner 4 (standard secure service calls), SMC32
    /// and SMC64 forms.
    fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
        &[0x8400_0000..=0x8400_001f, 0xc400_0000..=0xc400_001f]
    }

    fn call(&self, function: u32, arguments: [u32; 7]) -> HypercallOutcome {
        let value = HypercallOutcome::value;
        match function {
            VERSION => value(PSCI_0_2),
            CPU_OFF | SYSTEM_OFF => HypercallOutcome::StopVm,
            SYSTEM_RESET => HypercallOutcome::ResetVm,
            CPU_ON if is_cpu0(arguments[0]) => value(ALREADY_ON),
            CPU_ON => value(INVALID_PARAMETERS),
            AFFINITY_INFO if is_cpu0(arguments[0]) && arguments[1] == 0 => value(0),
            AFFINITY_INFO => value(INVALID_PARAMETERS),
            MIGRATE_INFO_TYPE => value(TRUSTED_OS_NOT_PRESENT),
            FEATURES if IMPLEMENTED.contains(&arguments[0]) => value(0),
            _ => value(NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(function: u32, r1: u32, r2: u32) -> HypercallOutcome {
        Psci::new().call(function, [r1, r2, 0, 0, 0, 0, 0])
    }

    #[test]
    fn version_and_power_functions() {
        assert_eq!(call(VERSION, 0, 0), HypercallOutcome::value(2));
        assert_eq!(call(SYSTEM_OFF, 0, 0), HypercallOutcome::StopVm);
        assert_eq!(call(SYSTEM_RESET, 0, 0), HypercallOutcome::ResetVm);
        assert_eq!(call(CPU_OFF, 0, 0), HypercallOutcome::StopVm);
        assert_eq!(call(MIGRATE_INFO_TYPE, 0, 0), HypercallOutcome::value(2));
    }

    #[test]
    fn cpu_on_and_affinity_for_a_single_cpu() {
        assert_eq!(
            call(CPU_ON, 0, 0x4000_8000),
            HypercallOutcome::value(ALREADY_ON)
        );
        assert_eq!(
            call(CPU_ON, 1, 0x4000_8000),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        assert_eq!(
            call(AFFINITY_INFO, 0x8000_0000, 0),
            HypercallOutcome::value(0)
        );
        assert_eq!(
            call(AFFINITY_INFO, 0x100, 0),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
    }

    #[test]
    fn features_and_unknown_ids() {
        assert_eq!(call(FEATURES, SYSTEM_OFF, 0), HypercallOutcome::value(0));
        assert_eq!(
            call(FEATURES, CPU_SUSPEND, 0),
            HypercallOutcome::value(NOT_SUPPORTED)
        );
        assert_eq!(
            call(CPU_SUSPEND, 0, 0),
            HypercallOutcome::value(NOT_SUPPORTED)
        );
        assert_eq!(
            call(0x8400_001f, 0, 0),
            HypercallOutcome::value(NOT_SUPPORTED)
        );
        assert_eq!(
            call(0xc400_0003, 0, 0),
            HypercallOutcome::value(NOT_SUPPORTED)
        );
    }

    #[test]
    fn owns_exactly_the_psci_ranges() {
        let psci = Psci::new();
        for id in [0x8400_0000, 0x8400_001f, 0xc400_0000, 0xc400_001f] {
            assert!(psci.owns(id), "{id:#x}");
        }
        for id in [0x83ff_ffff, 0x8400_0020, 0x8600_0000, 0xc400_0020, 0] {
            assert!(!psci.owns(id), "{id:#x}");
        }
    }
}
