// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console input's flow, state by state, with fake HILs and fake VMs.

extern crate std;

use super::*;
use crate::console_mux::{ESCAPE, NEXT_COMMAND, STATUS_COMMAND};
use crate::test_support::{FakeClock, FakeController, FakeReceiver, SyncRecorder};
use core::cell::RefCell;
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;

/// The UART's line in these tests.
const LINE: u32 = 33;

/// A VM's receive FIFO as the board's targets see it.
struct FakeVm {
    capacity: usize,
    fifo: RefCell<VecDeque<u8>>,
    stopped: Cell<bool>,
    /// Bytes given to it while it could not take them.
    dropped: Cell<usize>,
}

/// The board's side: each VM's FIFO, under no lock (one thread).
struct FakeVms(Vec<FakeVm>);

impl FakeVms {
    fn new(capacities: &[usize]) -> FakeVms {
        FakeVms(
            capacities
                .iter()
                .map(|&capacity| FakeVm {
                    capacity,
                    fifo: RefCell::new(VecDeque::new()),
                    stopped: Cell::new(false),
                    dropped: Cell::new(0),
                })
                .collect(),
        )
    }

    /// The guest in VM `vm` reads up to `n` bytes.
    fn read(&self, vm: usize, n: usize) -> Vec<u8> {
        let mut fifo = self.0[vm].fifo.borrow_mut();
        let n = n.min(fifo.len());
        fifo.drain(..n).collect()
    }

    fn held(&self, vm: usize) -> Vec<u8> {
        self.0[vm].fifo.borrow().iter().copied().collect()
    }
}

impl InputTargets for FakeVms {
    fn reception(&self, vm: usize) -> Reception {
        match self.0.get(vm) {
            None => Reception::Stopped,
            Some(target) if target.stopped.get() => Reception::Stopped,
            Some(target) if target.fifo.borrow().len() < target.capacity => Reception::Room,
            Some(_) => Reception::Full,
        }
    }

    fn deliver(&self, vm: usize, byte: u8) {
        if self.reception(vm) != Reception::Room {
            if let Some(target) = self.0.get(vm) {
                target.dropped.set(target.dropped.get() + 1);
            }
            return;
        }
        self.0[vm].fifo.borrow_mut().push_back(byte);
    }
}

/// Everything console input is wired to, for the life of a test.
struct Rig {
    console: &'static SyncRecorder,
    uart: &'static FakeReceiver,
    controller: &'static FakeController,
    clock: &'static FakeClock,
    mux: &'static ConsoleMux<'static>,
    vms: &'static FakeVms,
    input: ConsoleInput<'static>,
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// Two VMs, 'alpha' and 'beta', with receive FIFOs of these sizes; input
/// enabled, the console's output so far taken.
fn rig(capacities: [usize; 2], clock: FakeClock) -> Rig {
    let console = leak(SyncRecorder::default());
    let uart = leak(FakeReceiver::default());
    let controller = leak(FakeController::default());
    let clock = leak(clock);
    let mux = leak(ConsoleMux::new(console, &["alpha", "beta"]));
    let vms = leak(FakeVms::new(&capacities));
    let input = ConsoleInput::new(uart, controller, LINE, clock, mux, vms);
    input.enable();
    console.take();
    Rig {
        console,
        uart,
        controller,
        clock,
        mux,
        vms,
        input,
    }
}

/// A rig whose VM 1 (focused) has a FIFO of 4 and whose UART holds 10
/// bytes "0123456789" received at t = 5 µs: 4 delivered, 6 held.
fn held_rig() -> Rig {
    let rig = rig([4, 16], FakeClock::new());
    rig.clock.advance_us(5);
    rig.uart.type_bytes(b"0123456789");
    assert!(!rig.input.receive());
    rig
}

#[test]
fn enable_lets_the_uart_and_its_line_interrupt() {
    let rig = rig([16, 16], FakeClock::new());
    assert!(rig.uart.interrupts.get());
    assert!(rig.controller.is_enabled(LINE));
    assert_eq!(rig.input.line(), LINE);
    assert_eq!(rig.input.flow(), Flow::Flowing);
}

#[test]
fn flowing_input_goes_to_the_focused_vm_byte_for_byte() {
    let rig = rig([16, 16], FakeClock::new());
    rig.uart.type_bytes(b"ls -l\n");
    assert!(!rig.input.receive());
    assert_eq!(rig.vms.held(0), b"ls -l\n");
    assert!(rig.vms.held(1).is_empty());
    assert_eq!(rig.uart.waiting(), 0);
    assert_eq!(rig.input.flow(), Flow::Flowing);
    assert!(rig.controller.is_enabled(LINE));
    assert_eq!(rig.input.wake_by(), None);
    // Flowing input needs no looking after.
    let calls = (rig.controller.enables.get(), rig.controller.disables.get());
    rig.input.update();
    assert_eq!(
        (rig.controller.enables.get(), rig.controller.disables.get()),
        calls
    );
    assert_eq!(rig.console.take(), "");
}

#[test]
fn the_status_keys_are_reported_to_the_caller_and_not_delivered() {
    let rig = rig([16, 16], FakeClock::new());
    rig.uart.type_bytes(&[b'a', ESCAPE, STATUS_COMMAND, b'b']);
    assert!(rig.input.receive());
    assert_eq!(rig.vms.held(0), b"ab");
    // A second burst without the keys asks for nothing.
    rig.uart.type_bytes(b"c");
    assert!(!rig.input.receive());
}

#[test]
fn a_full_fifo_holds_the_rest_in_the_uart_and_masks_the_line() {
    let rig = held_rig();
    assert_eq!(rig.vms.held(0), b"0123");
    assert_eq!(rig.uart.waiting(), 6);
    assert_eq!(rig.input.flow(), Flow::Held { since: 5 });
    assert!(!rig.controller.is_enabled(LINE));
    assert_eq!(rig.console.take(), "");
}

#[test]
fn held_input_flows_again_once_the_vm_reads_and_nothing_is_lost() {
    let rig = held_rig();
    let mut read = rig.vms.read(0, 2);
    rig.clock.advance_us(100);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Flowing);
    assert!(rig.controller.is_enabled(LINE));
    // The line fires again: two more fit, then held again from now.
    assert!(!rig.input.receive());
    assert_eq!(rig.input.flow(), Flow::Held { since: 105 });
    assert_eq!(rig.uart.waiting(), 4);
    // The guest reads on; every byte arrives once, in order.
    while read.len() < 10 {
        read.extend(rig.vms.read(0, 4));
        rig.input.update();
        rig.input.receive();
    }
    assert_eq!(read, b"0123456789");
    assert_eq!(rig.vms.0[0].dropped.get(), 0);
    assert_eq!(rig.console.take(), "");
}

#[test]
fn held_input_waits_until_the_stall_then_is_dropped_with_a_message() {
    let rig = held_rig();
    rig.clock.advance_us(STALL_US - 1);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Held { since: 5 });
    assert!(!rig.controller.is_enabled(LINE));
    assert_eq!(rig.console.take(), "");
    rig.clock.advance_us(1);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Dropping);
    assert!(rig.controller.is_enabled(LINE));
    let said = rig.console.take();
    assert!(
        said.contains("capvisor: VM 1 has not read its console input for 2 s; what is typed for it is dropped until it reads again (Ctrl-] n moves the focus)"),
        "{said}"
    );
    // Said once.
    rig.input.update();
    assert_eq!(rig.console.take(), "");
}

#[test]
fn the_stall_is_measured_in_the_clocks_ticks() {
    // A 24 MHz counter: 2 s are 48,000,000 ticks.
    let clock = FakeClock {
        now: Cell::new(0),
        frequency: 24_000_000,
    };
    let rig = rig([1, 1], clock);
    rig.uart.type_bytes(b"ab");
    rig.input.receive();
    assert_eq!(rig.input.flow(), Flow::Held { since: 0 });
    rig.clock.now.set(47_999_999);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Held { since: 0 });
    rig.clock.now.set(48_000_000);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Dropping);
}

/// [`held_rig`] after the stall: dropping.
fn dropping_rig() -> Rig {
    let rig = held_rig();
    rig.clock.advance_us(STALL_US);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Dropping);
    rig.console.take();
    rig
}

#[test]
fn dropping_reads_the_uart_drops_the_vms_bytes_and_acts_on_keys() {
    let rig = dropping_rig();
    rig.uart.type_bytes(&[b'x', ESCAPE, STATUS_COMMAND]);
    assert!(rig.input.receive());
    assert_eq!(rig.uart.waiting(), 0);
    // The 6 held bytes and 'x' were dropped; the FIFO is as it was.
    assert_eq!(rig.vms.0[0].dropped.get(), 7);
    assert_eq!(rig.vms.held(0), b"0123");
    assert_eq!(rig.input.flow(), Flow::Dropping);
    assert!(rig.controller.is_enabled(LINE));
    assert_eq!(rig.input.wake_by(), None);
}

#[test]
fn dropping_ends_when_the_vm_reads_again() {
    let rig = dropping_rig();
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Dropping);
    rig.vms.read(0, 1);
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Flowing);
    assert!(rig.controller.is_enabled(LINE));
    // What still waits in the UART comes first, then what is typed.
    rig.uart.type_bytes(b"y");
    rig.input.receive();
    assert_eq!(rig.vms.held(0), b"1234");
    assert_eq!(rig.uart.waiting(), 6);
    assert!(matches!(rig.input.flow(), Flow::Held { .. }));
}

#[test]
fn a_focus_change_starts_the_new_focus_flowing() {
    let rig = dropping_rig();
    // The 6 bytes held for VM 1 are read and dropped first.
    rig.uart.type_bytes(&[ESCAPE, NEXT_COMMAND, b'h', b'i']);
    assert!(!rig.input.receive());
    assert_eq!(rig.mux.focus(), 1);
    assert_eq!(rig.input.flow(), Flow::Flowing);
    assert_eq!(rig.vms.held(1), b"hi");
    assert_eq!(rig.vms.0[0].dropped.get(), 6);
    assert!(rig.console.take().contains("console focus: VM 2 'beta'"));
}

#[test]
fn a_focus_change_to_a_full_vm_holds_again_at_once() {
    let rig = rig([4, 1], FakeClock::new());
    // VM 2's FIFO is full; VM 1 has room.
    rig.vms.deliver(1, b'!');
    rig.clock.advance_us(7);
    rig.uart.type_bytes(&[ESCAPE, NEXT_COMMAND]);
    rig.uart.type_bytes(b"kept");
    rig.input.receive();
    assert_eq!(rig.mux.focus(), 1);
    assert_eq!(rig.input.flow(), Flow::Held { since: 7 });
    assert_eq!(rig.uart.waiting(), 4);
    assert!(!rig.controller.is_enabled(LINE));
}

#[test]
fn held_input_for_a_vm_that_stops_is_let_go_and_dropped() {
    let rig = held_rig();
    rig.vms.0[0].stopped.set(true);
    announce_stopped(rig.mux, 0);
    let said = rig.console.take();
    assert!(
        said.contains(
            "capvisor: VM 1 has stopped; its console input is dropped (Ctrl-] n moves the focus)"
        ),
        "{said}"
    );
    rig.input.update();
    assert_eq!(rig.input.flow(), Flow::Flowing);
    assert!(rig.controller.is_enabled(LINE));
    rig.uart.type_bytes(&[b'q', ESCAPE, STATUS_COMMAND]);
    assert!(rig.input.receive());
    assert_eq!(rig.uart.waiting(), 0);
    assert_eq!(rig.vms.0[0].dropped.get(), 7);
    assert_eq!(rig.input.flow(), Flow::Flowing);
}

#[test]
fn a_vm_without_the_focus_stops_without_a_message() {
    let rig = rig([16, 16], FakeClock::new());
    announce_stopped(rig.mux, 1);
    assert_eq!(rig.console.take(), "");
}

#[test]
fn held_input_is_looked_at_again_soon_and_at_the_stall_at_the_latest() {
    let rig = held_rig();
    let recheck = HELD_RECHECK_US;
    // Just held: the recheck comes first.
    assert_eq!(rig.input.wake_by(), Some(5 + recheck));
    // Close to the stall: the stall comes first.
    rig.clock.advance_us(STALL_US - recheck / 2);
    assert_eq!(rig.input.wake_by(), Some(5 + STALL_US));
}
