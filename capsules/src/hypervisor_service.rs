// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capvisor's own hypercall service: version, VM identity, console output.
//!
//! Guest-visible interface: SMCCC fast calls in the vendor-specific
//! hypervisor service range (owner 6), by HVC, arguments in r1-r7, results
//! in r0-r3. Everything travels in registers, so a bad guest pointer can
//! never make the hypervisor touch memory on the guest's behalf.
//!
//! | id | call | arguments | results |
//! |---|---|---|---|
//! | 0x8600_0000 | VERSION | - | r0 = major << 16 \| minor |
//! | 0x8600_0001 | VM_ID | - | r0 = the VM's number (its VMID) |
//! | 0x8600_0002 | VM_NAME | - | r0 = name length; r1-r3 = its first 12 bytes, little-endian |
//! | 0x8600_0003 | CONSOLE_WRITE | r1 = length (at most 24); r2-r7 = the bytes, little-endian | r0 = bytes written, or INVALID_PARAMETERS (-2) |
//! | 0x8600_0004 | EXIT_STATUS | r1 = the guest's own verdict (0 = success) | r0 = 0 |
//! | 0x8600_0005 | YIELD | - | r0 = 0, after the other ready VMs have had a turn |
//!
//! EXIT_STATUS only records the value: a guest reports it before powering
//! off (PSCI SYSTEM_OFF), and the board prints it with the VM's final state.
//! A test guest passes when it reports 0 and powers off.
//!
//! Other ids in 0x8600_0000-0x8600_00ff answer NOT_SUPPORTED (-1).

use core::cell::Cell;
use hyp::dispatch::{HypercallDriver, HypercallOutcome, NotResettable, NOT_SUPPORTED};
use hyp::hil::console::ConsoleOutput;

/// VERSION.
pub const VERSION: u32 = 0x8600_0000;
/// VM_ID.
pub const VM_ID: u32 = 0x8600_0001;
/// VM_NAME.
pub const VM_NAME: u32 = 0x8600_0002;
/// CONSOLE_WRITE.
pub const CONSOLE_WRITE: u32 = 0x8600_0003;
/// EXIT_STATUS.
pub const EXIT_STATUS: u32 = 0x8600_0004;
/// YIELD.
pub const YIELD: u32 = 0x8600_0005;
/// BOOT_COUNT: how many times the VM has started, counted by resets (1 on
/// its first boot, one more at each restart).
pub const BOOT_COUNT: u32 = 0x8600_0006;
/// The service's version: 0.1.
pub const SERVICE_VERSION: u32 = 0x0000_0001;
/// INVALID_PARAMETERS (-2).
pub const INVALID_PARAMETERS: u32 = -2i32 as u32;
/// Most bytes one CONSOLE_WRITE carries (r2-r7).
pub const MAX_WRITE: usize = 24;

/// The service for one VM.
pub struct HypervisorService<'a> {
    vm_id: u32,
    vm_name: &'static str,
    console: &'a dyn ConsoleOutput,
    exit_status: Cell<Option<u32>>,
    boots: Cell<u32>,
}

impl core::fmt::Debug for HypervisorService<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "HypervisorService({} #{})", self.vm_name, self.vm_id)
    }
}

impl<'a> HypervisorService<'a> {
    /// The service for VM number `vm_id` called `vm_name`, writing to
    /// `console`.
    pub fn new(vm_id: u32, vm_name: &'static str, console: &'a dyn ConsoleOutput) -> Self {
        HypervisorService {
            vm_id,
            vm_name,
            console,
            exit_status: Cell::new(None),
            boots: Cell::new(0),
        }
    }

    /// The status the guest last reported with EXIT_STATUS.
    pub fn exit_status(&self) -> Option<u32> {
        self.exit_status.get()
    }

    /// How many times the VM has started.
    pub fn boots(&self) -> u32 {
        self.boots.get()
    }
}

/// Packs up to 4 bytes of `bytes` from `start` into a little-endian word.
fn pack(bytes: &[u8], start: usize) -> u32 {
    (0..4).fold(0, |word, i| {
        word | (u32::from(bytes.get(start + i).copied().unwrap_or(0)) << (8 * i))
    })
}

impl HypercallDriver for HypervisorService<'_> {
    /// The first 256 ids of SMCCC owner 6 (standard hypervisor service
    /// calls).
    fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
        &[0x8600_0000..=0x8600_00ff]
    }

    fn name(&self) -> &'static str {
        "capvisor-service"
    }

    /// Forgets the reported status and counts one more boot: the board
    /// resets every VM's devices and services before its first boot and
    /// the kernel at each restart.
    fn reset(&self) -> Result<(), NotResettable> {
        self.exit_status.set(None);
        self.boots.set(self.boots.get() + 1);
        Ok(())
    }

    fn call(&self, function: u32, arguments: [u32; 7]) -> HypercallOutcome {
        match function {
            VERSION => HypercallOutcome::value(SERVICE_VERSION),
            VM_ID => HypercallOutcome::value(self.vm_id),
            VM_NAME => {
                let name = self.vm_name.as_bytes();
                HypercallOutcome::Return([
                    Some(name.len() as u32),
                    Some(pack(name, 0)),
                    Some(pack(name, 4)),
                    Some(pack(name, 8)),
                ])
            }
            CONSOLE_WRITE => {
                let length = arguments[0] as usize;
                if length > MAX_WRITE {
                    return HypercallOutcome::value(INVALID_PARAMETERS);
                }
                let mut bytes = [0u8; MAX_WRITE];
                for (chunk, word) in bytes.chunks_mut(4).zip(&arguments[1..]) {
                    chunk.copy_from_slice(&word.to_le_bytes());
                }
                self.console.write(&bytes[..length]);
                HypercallOutcome::value(length as u32)
            }
            EXIT_STATUS => {
                self.exit_status.set(Some(arguments[0]));
                HypercallOutcome::value(0)
            }
            YIELD => HypercallOutcome::Yield([Some(0), None, None, None]),
            BOOT_COUNT => HypercallOutcome::value(self.boots.get()),
            _ => HypercallOutcome::value(NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    use crate::test_support::Recorder;

    #[test]
    fn version_id_and_name() {
        let out = Recorder::default();
        let service = HypervisorService::new(3, "linux-guest-a", &out);
        assert_eq!(service.call(VERSION, [0; 7]), HypercallOutcome::value(1));
        assert_eq!(service.call(VM_ID, [0; 7]), HypercallOutcome::value(3));
        assert_eq!(
            service.call(VM_NAME, [0; 7]),
            HypercallOutcome::Return([
                Some(13),
                Some(u32::from_le_bytes(*b"linu")),
                Some(u32::from_le_bytes(*b"x-gu")),
                Some(u32::from_le_bytes(*b"est-")),
            ])
        );
    }

    #[test]
    fn console_write_unpacks_registers() {
        let out = Recorder::default();
        let service = HypervisorService::new(1, "vm", &out);
        let mut arguments = [0u32; 7];
        arguments[0] = 6;
        arguments[1] = u32::from_le_bytes(*b"hell");
        arguments[2] = u32::from_le_bytes(*b"o!xx");
        assert_eq!(
            service.call(CONSOLE_WRITE, arguments),
            HypercallOutcome::value(6)
        );
        assert_eq!(&*out.0.borrow(), b"hello!");
        arguments[0] = 25;
        assert_eq!(
            service.call(CONSOLE_WRITE, arguments),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        arguments[0] = u32::MAX;
        assert_eq!(
            service.call(CONSOLE_WRITE, arguments),
            HypercallOutcome::value(INVALID_PARAMETERS)
        );
        assert_eq!(out.0.borrow().len(), 6, "refused writes print nothing");
    }

    #[test]
    fn exit_status_is_recorded_until_reset() {
        let out = Recorder::default();
        let service = HypervisorService::new(1, "vm", &out);
        assert_eq!(service.exit_status(), None);
        let mut arguments = [0u32; 7];
        arguments[0] = 3;
        assert_eq!(
            service.call(EXIT_STATUS, arguments),
            HypercallOutcome::value(0)
        );
        assert_eq!(service.exit_status(), Some(3));
        assert_eq!(service.reset(), Ok(()));
        assert_eq!(service.exit_status(), None);
        assert_eq!(service.call(BOOT_COUNT, [0; 7]), HypercallOutcome::value(1));
        assert_eq!(service.reset(), Ok(()));
        assert_eq!(service.call(BOOT_COUNT, [0; 7]), HypercallOutcome::value(2));
    }

    #[test]
    fn yield_returns_zero_and_gives_up_the_cpu() {
        let out = Recorder::default();
        let service = HypervisorService::new(1, "vm", &out);
        assert_eq!(
            service.call(YIELD, [0; 7]),
            HypercallOutcome::Yield([Some(0), None, None, None])
        );
    }

    #[test]
    fn range_and_unknown_ids() {
        let out = Recorder::default();
        let service = HypervisorService::new(1, "vm", &out);
        assert!(service.owns(0x8600_0000) && service.owns(0x8600_00ff));
        assert!(!service.owns(0x8600_0100) && !service.owns(0x8400_0000));
        assert_eq!(
            service.call(0x8600_0042, [0; 7]),
            HypercallOutcome::value(NOT_SUPPORTED)
        );
    }
}
