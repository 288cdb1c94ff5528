// SPDX-License-Identifier: MIT OR Apache-2.0
//! PSCI 0.2 for guests, over HVC or SMC: one service per vCPU.
//!
//! Guest-visible interface (SMC32 function ids, arguments in r1-r3, result
//! in r0), as the Arm Power State Coordination Interface 0.2 defines it. A
//! vCPU is named by its MPIDR affinity: Aff0 is its number in the VM, the
//! other affinity levels 0.
//!
//! | id | function | answer |
//! |---|---|---|
//! | 0x8400_0000 | PSCI_VERSION | 0x0000_0002 (0.2) |
//! | 0x8400_0001 | CPU_SUSPEND | NOT_SUPPORTED |
//! | 0x8400_0002 | CPU_OFF | the calling vCPU turns off; the VM stops with its last vCPU (at once for a one-vCPU VM) |
//! | 0x8400_0003 | CPU_ON | the target vCPU starts at r2 with r0 = r3: SUCCESS; ALREADY_ON, ON_PENDING; INVALID_PARAMETERS for a vCPU the VM does not have; INVALID_ADDRESS for an entry outside its RAM |
//! | 0x8400_0004 | AFFINITY_INFO | ON (0), OFF (1) or ON_PENDING (2) at level 0; INVALID_PARAMETERS for a vCPU the VM does not have or another level |
//! | 0x8400_0006 | MIGRATE_INFO_TYPE | 2: no Trusted OS, nothing to migrate |
//! | 0x8400_0008 | SYSTEM_OFF | the VM stops |
//! | 0x8400_0009 | SYSTEM_RESET | the VM restarts |
//! | 0x8400_000a | PSCI_FEATURES | 0 for the functions above, NOT_SUPPORTED otherwise |
//!
//! Every other id in the PSCI ranges (0x8400_0000-0x8400_001f and the SMC64
//! range 0xc400_0000-0xc400_001f, meaningless to a 32-bit guest) answers
//! NOT_SUPPORTED (-1). The vCPUs' power states are the kernel's
//! ([`hyp::psci::VcpuPower`], implemented by `hyp::kernel::Vm`); a service
//! made with [`Psci::new`] serves a VM with one vCPU and no power control.

use hyp::dispatch::{HypercallDriver, HypercallOutcome, NotResettable, NOT_SUPPORTED};
use hyp::psci::VcpuPower;

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

/// The PSCI service of one vCPU.
#[derive(Clone, Copy, Default)]
pub struct Psci<'a> {
    /// The VM's vCPU power states, and which vCPU calls.
    power: Option<(&'a dyn VcpuPower, usize)>,
}

impl core::fmt::Debug for Psci<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Psci")
            .field("vcpu", &self.power.map(|(_, vcpu)| vcpu))
            .finish()
    }
}

impl<'a> Psci<'a> {
    /// The service of a VM with one vCPU.
    pub const fn new() -> Psci<'a> {
        Psci { power: None }
    }

    /// The service of vCPU `vcpu` of the VM whose power states `power`
    /// holds.
    pub const fn for_vcpu(power: &'a dyn VcpuPower, vcpu: usize) -> Psci<'a> {
        Psci {
            power: Some((power, vcpu)),
        }
    }

    /// How many vCPUs the VM has.
    fn vcpus(&self) -> usize {
        self.power.map_or(1, |(power, _)| power.vcpus())
    }

    /// The vCPU `mpidr` names: affinity level 0 below the VM's vCPU count,
    /// the others 0 (bits 31:24 and the MT/U bits are not affinity and are
    /// ignored).
    fn vcpu_of(&self, mpidr: u32) -> Option<usize> {
        let vcpu = (mpidr & 0xff) as usize;
        (mpidr & 0x00ff_ff00 == 0 && vcpu < self.vcpus()).then_some(vcpu)
    }

    fn cpu_on(&self, target: u32, entry: u32, context: u32) -> u32 {
        match (self.vcpu_of(target), self.power) {
            (None, _) => INVALID_PARAMETERS,
            (Some(vcpu), Some((power, _))) => power.cpu_on(vcpu, entry, context),
            // The only vCPU, which is running this call.
            (Some(_), None) => ALREADY_ON,
        }
    }

    fn affinity_info(&self, target: u32, level: u32) -> u32 {
        match (self.vcpu_of(target), self.power) {
            (Some(_), _) if level != 0 => INVALID_PARAMETERS,
            (None, _) => INVALID_PARAMETERS,
            (Some(vcpu), Some((power, _))) => power.affinity_info(vcpu),
            (Some(_), None) => hyp::psci::AFFINITY_ON,
        }
    }
}

impl HypercallDriver for Psci<'_> {
    fn name(&self) -> &'static str {
        "psci"
    }

    /// PSCI keeps nothing of its own (the vCPUs' power states are the
    /// kernel's, reset with the VM): there is nothing to forget.
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
            CPU_OFF if self.power.is_some() => HypercallOutcome::CpuOff,
            CPU_OFF | SYSTEM_OFF => HypercallOutcome::StopVm,
            SYSTEM_RESET => HypercallOutcome::ResetVm,
            CPU_ON => value(self.cpu_on(arguments[0], arguments[1], arguments[2])),
            AFFINITY_INFO => value(self.affinity_info(arguments[0], arguments[1])),
            MIGRATE_INFO_TYPE => value(TRUSTED_OS_NOT_PRESENT),
            FEATURES if IMPLEMENTED.contains(&arguments[0]) => value(0),
            _ => value(NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
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

    /// Power states as a fake kernel keeps them.
    struct FakePower {
        vcpus: usize,
        calls: core::cell::RefCell<std::vec::Vec<(usize, u32, u32)>>,
    }

    impl VcpuPower for FakePower {
        fn vcpus(&self) -> usize {
            self.vcpus
        }
        fn cpu_on(&self, target: usize, entry: u32, context: u32) -> u32 {
            self.calls.borrow_mut().push((target, entry, context));
            if target == 0 {
                ALREADY_ON
            } else {
                0
            }
        }
        fn affinity_info(&self, target: usize) -> u32 {
            if target == 0 {
                hyp::psci::AFFINITY_ON
            } else {
                hyp::psci::AFFINITY_OFF
            }
        }
    }

    #[test]
    fn cpu_on_and_affinity_reach_the_vms_power_states() {
        let power = FakePower {
            vcpus: 2,
            calls: core::cell::RefCell::new(std::vec::Vec::new()),
        };
        let psci = Psci::for_vcpu(&power, 0);
        let call = |function, r1, r2, r3| psci.call(function, [r1, r2, r3, 0, 0, 0, 0]);
        assert_eq!(
            call(CPU_ON, 0x8000_0001, 0x4000_1000, 7),
            HypercallOutcome::value(0)
        );
        assert_eq!(
            call(CPU_ON, 0, 0x4000_1000, 7),
            HypercallOutcome::value(ALREADY_ON)
        );
        // vCPU 2 does not exist; nor does affinity 1.0.1.
        assert_eq!(
            call(CPU_ON, 2, 0x4000_1000, 7),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        assert_eq!(
            call(CPU_ON, 0x101, 0x4000_1000, 7),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        assert_eq!(
            *power.calls.borrow(),
            [(1, 0x4000_1000, 7), (0, 0x4000_1000, 7)],
            "only calls for vCPUs the VM has reach the kernel"
        );
        assert_eq!(call(AFFINITY_INFO, 1, 0, 0), HypercallOutcome::value(1));
        assert_eq!(call(AFFINITY_INFO, 0, 0, 0), HypercallOutcome::value(0));
        assert_eq!(
            call(AFFINITY_INFO, 5, 0, 0),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        assert_eq!(
            call(AFFINITY_INFO, 1, 1, 0),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        // CPU_OFF turns the vCPU off; SYSTEM_OFF stops the VM.
        assert_eq!(call(CPU_OFF, 0, 0, 0), HypercallOutcome::CpuOff);
        assert_eq!(call(SYSTEM_OFF, 0, 0, 0), HypercallOutcome::StopVm);
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
