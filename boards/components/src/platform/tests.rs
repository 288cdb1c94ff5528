// SPDX-License-Identifier: MIT OR Apache-2.0
//! The platform's interrupt service with fake devices, on the host.

extern crate std;

use super::*;
use capsules::console_mux::{ESCAPE, STATUS_COMMAND};
use core::cell::RefCell;
use hyp::hil::interrupt::Acknowledged;
use std::boxed::Box;
use std::collections::{BTreeSet, VecDeque};
use std::string::String;
use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

const ALARM: u32 = 26;
const CONSOLE: u32 = 33;
const MAINTENANCE: u32 = 25;
const GUEST_TIMER: u32 = 27;
const KICK: u32 = 1;

const LINES: Lines = Lines {
    alarm: ALARM,
    console: CONSOLE,
    forwarded: &[MAINTENANCE, GUEST_TIMER],
    kick: Some(KICK),
    disk: Some(DISK),
};
const DISK: u32 = 79;

struct FakeClock(Cell<u64>);

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
    fn frequency(&self) -> u32 {
        1_000_000
    }
}

/// An alarm that records its setting and its acknowledgements.
#[derive(Default)]
struct FakeAlarm {
    deadline: Cell<Option<u64>>,
    acknowledged: Cell<usize>,
}

impl Alarm for FakeAlarm {
    fn set_alarm(&self, deadline: u64) {
        self.deadline.set(Some(deadline));
    }
    fn disarm(&self) {
        self.deadline.set(None);
    }
    fn acknowledge(&self) -> bool {
        self.acknowledged.set(self.acknowledged.get() + 1);
        true
    }
}

/// A controller with lines waiting to be acknowledged; records what is
/// enabled and each interrupt's end.
#[derive(Default)]
struct FakeController {
    pending: RefCell<VecDeque<u32>>,
    enabled: RefCell<BTreeSet<u32>>,
    ended: RefCell<Vec<u32>>,
    deactivated: RefCell<Vec<u32>>,
}

impl InterruptController for FakeController {
    fn enable(&self, line: u32) {
        self.enabled.borrow_mut().insert(line);
    }
    fn disable(&self, line: u32) {
        self.enabled.borrow_mut().remove(&line);
    }
    fn acknowledge(&self) -> Option<Acknowledged> {
        let line = self.pending.borrow_mut().pop_front()?;
        Some(Acknowledged { line, token: line })
    }
    fn end_of_interrupt(&self, irq: Acknowledged) {
        self.ended.borrow_mut().push(irq.line);
    }
    fn deactivate(&self, irq: Acknowledged) {
        self.deactivated.borrow_mut().push(irq.line);
    }
}

#[derive(Default)]
struct FakeUart {
    waiting: RefCell<VecDeque<u8>>,
    interrupts: Cell<bool>,
}

impl ConsoleReceive for FakeUart {
    fn read_byte(&self) -> Option<u8> {
        self.waiting.borrow_mut().pop_front()
    }
    fn set_receive_interrupts(&self, enabled: bool) {
        self.interrupts.set(enabled);
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<u8>>);

impl hyp::hil::console::ConsoleOutput for Recorder {
    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
}

impl Recorder {
    fn take(&self) -> String {
        String::from_utf8(core::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// A platform with no VMs behind its console multiplexer's one name
/// (input for it is dropped, as for a stopped VM).
struct Rig {
    alarm: &'static FakeAlarm,
    controller: &'static FakeController,
    uart: &'static FakeUart,
    console: &'static Recorder,
    platform: BoardPlatform<'static>,
}

fn rig(takes_console: bool) -> Rig {
    let alarm = leak(FakeAlarm::default());
    let controller = leak(FakeController::default());
    let uart = leak(FakeUart::default());
    let console = leak(Recorder::default());
    let mux = leak(ConsoleMux::new(console, &["alpha"]));
    let shared = leak(PlatformShared {
        counter: leak(FakeClock(Cell::new(0))),
        alarm,
        controller,
        lines: LINES,
        mux,
        vms: &[],
        consoles: Vec::new(),
        board_disk: None,
    });
    let routing = hyp::create_capability!(InterruptRoutingCapability);
    let platform = BoardPlatform::with_console(
        &routing,
        shared,
        takes_console.then_some(uart as &dyn ConsoleReceive),
        Vec::new(),
    );
    Rig {
        alarm,
        controller,
        uart,
        console,
        platform,
    }
}

impl Rig {
    fn raise(&self, lines: &[u32]) {
        self.controller.pending.borrow_mut().extend(lines);
    }
}

#[test]
fn each_line_is_told_apart() {
    assert_eq!(LINES.source(ALARM, true), Source::Alarm);
    assert_eq!(LINES.source(KICK, false), Source::Kick);
    assert_eq!(LINES.source(CONSOLE, true), Source::Console);
    // The console's line on a CPU that does not take console input.
    assert_eq!(LINES.source(CONSOLE, false), Source::Unexpected);
    assert_eq!(LINES.source(MAINTENANCE, false), Source::Forwarded);
    assert_eq!(LINES.source(GUEST_TIMER, true), Source::Forwarded);
    assert_eq!(LINES.source(40, true), Source::Unexpected);
    // The board disk's completion, on whichever CPU takes it.
    assert_eq!(LINES.source(DISK, true), Source::Disk);
    assert_eq!(LINES.source(DISK, false), Source::Disk);
    // A one-CPU board has no kick line.
    let one_cpu = Lines {
        kick: None,
        forwarded: &[],
        ..LINES
    };
    assert_eq!(one_cpu.source(KICK, true), Source::Unexpected);
    assert_eq!(one_cpu.source(MAINTENANCE, true), Source::Unexpected);
}

#[test]
fn the_sleep_alarm_is_the_earlier_one() {
    assert_eq!(sleep_deadline(None, None), None);
    assert_eq!(sleep_deadline(Some(5), None), Some(5));
    assert_eq!(sleep_deadline(None, Some(7)), Some(7));
    assert_eq!(sleep_deadline(Some(5), Some(7)), Some(5));
    assert_eq!(sleep_deadline(Some(9), Some(7)), Some(7));
}

#[test]
fn enabling_turns_on_this_cpus_lines_and_the_console_only_where_it_is_taken() {
    let console_cpu = rig(true);
    console_cpu.platform.enable_interrupts();
    assert_eq!(
        *console_cpu.controller.enabled.borrow(),
        BTreeSet::from([KICK, MAINTENANCE, ALARM, GUEST_TIMER, CONSOLE])
    );
    assert!(console_cpu.uart.interrupts.get());
    let other = rig(false);
    other.platform.enable_interrupts();
    assert_eq!(
        *other.controller.enabled.borrow(),
        BTreeSet::from([KICK, MAINTENANCE, ALARM, GUEST_TIMER])
    );
    assert!(!other.uart.interrupts.get());
}

#[test]
fn the_alarm_is_acknowledged_and_every_interrupt_ended() {
    let rig = rig(true);
    rig.raise(&[ALARM, ALARM]);
    assert!(!rig.platform.service_interrupts());
    assert_eq!(rig.alarm.acknowledged.get(), 2);
    assert_eq!(*rig.controller.ended.borrow(), vec![ALARM, ALARM]);
    assert_eq!(*rig.controller.deactivated.borrow(), vec![ALARM, ALARM]);
    assert!(!rig.platform.take_kick());
}

#[test]
fn a_kick_is_taken_once() {
    let rig = rig(false);
    rig.raise(&[KICK]);
    rig.platform.service_interrupts();
    assert!(rig.platform.take_kick());
    assert!(!rig.platform.take_kick());
    assert_eq!(*rig.controller.deactivated.borrow(), vec![KICK]);
}

#[test]
fn console_input_is_read_on_the_console_cpu_and_asks_for_the_status() {
    let rig = rig(true);
    rig.platform.enable_interrupts();
    rig.uart
        .waiting
        .borrow_mut()
        .extend([b'x', ESCAPE, STATUS_COMMAND]);
    rig.raise(&[CONSOLE]);
    assert!(rig.platform.service_interrupts());
    assert!(rig.uart.waiting.borrow().is_empty());
    // No VM behind it: the byte is dropped, the line stays on.
    assert!(rig.controller.enabled.borrow().contains(&CONSOLE));
    assert_eq!(*rig.controller.deactivated.borrow(), vec![CONSOLE]);
}

#[test]
fn an_unexpected_line_is_masked_and_said() {
    let rig = rig(false);
    rig.platform.enable_interrupts();
    rig.controller.enabled.borrow_mut().insert(CONSOLE);
    rig.uart.waiting.borrow_mut().push_back(b'x');
    rig.raise(&[40, CONSOLE]);
    assert!(!rig.platform.service_interrupts());
    assert!(!rig.controller.enabled.borrow().contains(&40));
    // Not the console's CPU: its line is masked, the UART left alone.
    assert!(!rig.controller.enabled.borrow().contains(&CONSOLE));
    assert_eq!(rig.uart.waiting.borrow().len(), 1);
    let said = rig.console.take();
    assert!(
        said.contains("capvisor: unexpected interrupt on line 40; masked"),
        "{said}"
    );
    assert!(
        said.contains("capvisor: unexpected interrupt on line 33; masked"),
        "{said}"
    );
    assert_eq!(*rig.controller.deactivated.borrow(), vec![40, CONSOLE]);
}

#[test]
fn the_kernels_alarm_is_set_and_disarmed() {
    let rig = rig(true);
    rig.platform.set_alarm(Some(1234));
    assert_eq!(rig.alarm.deadline.get(), Some(1234));
    rig.platform.set_alarm(None);
    assert_eq!(rig.alarm.deadline.get(), None);
    // Input not held: sleeping leaves the alarm as the kernel set it.
    rig.platform.set_alarm(Some(99));
    rig.platform.wait_for_interrupt();
    assert_eq!(rig.alarm.deadline.get(), Some(99));
}

#[test]
fn a_stopped_focused_vm_is_said() {
    let rig = rig(true);
    rig.platform.vm_stopped(0);
    let said = rig.console.take();
    assert!(
        said.contains("VM 1 has stopped; its console input is dropped"),
        "{said}"
    );
}
