// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Power State Coordination Interface's function ids and return codes
//! (Arm DEN 0022), shared by the two sides Capvisor plays: the caller of
//! the firmware's PSCI that starts the secondary CPUs (`armv7a::psci`) and
//! the PSCI a guest calls (`capsules::psci`).

/// PSCI_VERSION.
pub const VERSION: u32 = 0x8400_0000;
/// CPU_SUSPEND.
pub const CPU_SUSPEND: u32 = 0x8400_0001;
/// CPU_OFF.
pub const CPU_OFF: u32 = 0x8400_0002;
/// CPU_ON (SMC32).
pub const CPU_ON: u32 = 0x8400_0003;
/// AFFINITY_INFO (SMC32).
pub const AFFINITY_INFO: u32 = 0x8400_0004;
/// MIGRATE_INFO_TYPE.
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// SYSTEM_OFF.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// SYSTEM_RESET.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// PSCI_FEATURES.
pub const FEATURES: u32 = 0x8400_000a;

/// SUCCESS (0).
pub const SUCCESS: u32 = 0;
/// NOT_SUPPORTED (-1).
pub const NOT_SUPPORTED: u32 = -1i32 as u32;
/// INVALID_PARAMETERS (-2).
pub const INVALID_PARAMETERS: u32 = -2i32 as u32;
/// DENIED (-3).
pub const DENIED: u32 = -3i32 as u32;
/// ALREADY_ON (-4).
pub const ALREADY_ON: u32 = -4i32 as u32;
/// ON_PENDING (-5).
pub const ON_PENDING: u32 = -5i32 as u32;
/// INTERNAL_FAILURE (-6).
pub const INTERNAL_FAILURE: u32 = -6i32 as u32;
/// INVALID_ADDRESS (-9).
pub const INVALID_ADDRESS: u32 = -9i32 as u32;

/// AFFINITY_INFO's answers.
pub const AFFINITY_ON: u32 = 0;
/// AFFINITY_INFO: the CPU is off.
pub const AFFINITY_OFF: u32 = 1;
/// AFFINITY_INFO: the CPU is being turned on.
pub const AFFINITY_ON_PENDING: u32 = 2;

/// A PSCI call's failure, from its return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsciError(pub u32);

impl PsciError {
    /// The return code's name in the specification.
    pub const fn name(self) -> &'static str {
        match self.0 {
            NOT_SUPPORTED => "NOT_SUPPORTED",
            INVALID_PARAMETERS => "INVALID_PARAMETERS",
            DENIED => "DENIED",
            ALREADY_ON => "ALREADY_ON",
            ON_PENDING => "ON_PENDING",
            INTERNAL_FAILURE => "INTERNAL_FAILURE",
            0xffff_fff9 => "NOT_PRESENT",
            0xffff_fff8 => "DISABLED",
            INVALID_ADDRESS => "INVALID_ADDRESS",
            _ => "an unknown code",
        }
    }
}

impl core::fmt::Display for PsciError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0 as i32)
    }
}

/// The power states of a VM's vCPUs, as its PSCI service asks and
/// changes them (implemented by the kernel's [`crate::kernel::Vm`]). A vCPU
/// is named by its index, which is its MPIDR affinity level 0.
pub trait VcpuPower {
    /// How many vCPUs the VM has.
    fn vcpus(&self) -> usize;
    /// CPU_ON: vCPU `target` starts at `entry` (an IPA) with r0 =
    /// `context`. Returns SUCCESS, ALREADY_ON, ON_PENDING,
    /// INVALID_PARAMETERS (no such vCPU) or INVALID_ADDRESS (`entry` is
    /// not in the VM's RAM).
    fn cpu_on(&self, target: usize, entry: u32, context: u32) -> u32;
    /// AFFINITY_INFO at level 0: [`AFFINITY_ON`], [`AFFINITY_OFF`] or
    /// [`AFFINITY_ON_PENDING`] for vCPU `target` (which exists).
    fn affinity_info(&self, target: usize) -> u32;
}

/// A call's result: `Ok` for SUCCESS, the error otherwise.
pub const fn result(code: u32) -> Result<(), PsciError> {
    if code == SUCCESS {
        Ok(())
    } else {
        Err(PsciError(code))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn codes_are_named() {
        assert_eq!(result(0), Ok(()));
        assert_eq!(
            result(ALREADY_ON).unwrap_err().to_string(),
            "ALREADY_ON (-4)"
        );
        assert_eq!(result(-7i32 as u32).unwrap_err().name(), "NOT_PRESENT");
        assert_eq!(result(7).unwrap_err().to_string(), "an unknown code (7)");
    }
}
