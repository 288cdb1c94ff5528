// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any function id and arguments to PSCI and Capvisor's service: no panic,
//! no id owned by both, and every id a service owns is of an SMCCC owner
//! it declares (the dispatcher asks only those services).
#![no_main]

use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use hyp::dispatch::HypercallDriver;
use hyp::hil::console::ConsoleOutput;
use libfuzzer_sys::fuzz_target;

struct Sink;
impl ConsoleOutput for Sink {
    fn write(&self, _bytes: &[u8]) {}
}

fuzz_target!(|data: (u32, [u32; 7])| {
    let (function, arguments) = data;
    let sink = Sink;
    let psci = Psci::new();
    let service = HypervisorService::new(1, "fuzz", &sink);
    let owner = (function >> 24) & 0x3f;
    for driver in [&psci as &dyn HypercallDriver, &service] {
        if driver.owns(function) {
            assert_ne!(driver.owners() & (1 << owner), 0, "{function:#x}: owner not declared");
            let _ = driver.call(function, arguments);
        }
    }
    assert!(
        !(psci.owns(function) && service.owns(function)),
        "{function:#x} owned twice"
    );
});
