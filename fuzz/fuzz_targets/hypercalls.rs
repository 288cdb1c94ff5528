// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any function id and arguments to PSCI and Capvisor's service: no panic,
//! no id owned by both, and the dispatch tables send every id to the
//! service that owns it (or answer NOT_SUPPORTED when none does).
#![no_main]

use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use hyp::dispatch::{dispatch, GuestRegisters, HypercallDriver, Routes, NOT_SUPPORTED};
use hyp::trap::{GuestExit, Trap};
use hyp::hil::console::ConsoleOutput;
use libfuzzer_sys::fuzz_target;

struct Sink;
impl ConsoleOutput for Sink {
    fn write(&self, _bytes: &[u8]) {}
}

/// r0-r7 of a guest, for the dispatcher.
#[derive(Default)]
struct Registers([u32; 15]);

impl GuestRegisters for Registers {
    fn register(&self, n: u8) -> u32 {
        self.0[n as usize]
    }
    fn set_register(&mut self, n: u8, value: u32) {
        self.0[n as usize] = value;
    }
    fn pc(&self) -> u32 {
        0
    }
    fn set_pc(&mut self, _pc: u32) {}
}

fuzz_target!(|data: (u32, [u32; 7])| {
    let (function, arguments) = data;
    let sink = Sink;
    let psci = Psci::new();
    let service = HypervisorService::new(1, "fuzz", &sink);
    let services: [&dyn HypercallDriver; 2] = [&psci, &service];
    // The tables refuse an id claimed twice: building them proves none is.
    let routes = Routes::new(&[], &services).expect("PSCI and Capvisor's service share an id");
    let mut registers = Registers::default();
    registers.0[0] = function;
    registers.0[1..8].copy_from_slice(&arguments);
    let exit = GuestExit {
        trap: Trap::Hypercall { immediate: 0 },
        instruction_bytes: 4,
    };
    let _ = dispatch(&exit, &mut registers, &routes);
    if !psci.owns(function) && !service.owns(function) {
        assert_eq!(registers.0[0], NOT_SUPPORTED, "{function:#x} owned by nobody");
    }
});
