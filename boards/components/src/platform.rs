// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the kernel asks of a board while VMs run: time, the alarm, and
//! the physical interrupts the hypervisor owns.
//!
//! The clock is the CPU's counter (CNTPCT); the alarm, the interrupt
//! controller and the console UART are the board's ([`BoardPlatform::new`]
//! names them and their interrupt lines). Every physical interrupt is taken
//! by the hypervisor (HCR.IMO): when one interrupts a guest, or wakes the
//! hypervisor from its own WFI, [`BoardPlatform::service_interrupts`]
//! acknowledges it at the controller and serves it: the alarm is
//! acknowledged, received bytes go to the console multiplexer, which
//! routes them to the focused VM's virtual UART (raising its receive
//! interrupt) or acts on its key sequences, and lines forwarded to guests
//! (on a GIC with virtualization: the guest timer's PPI and the
//! maintenance interrupt) go to the interrupt backend of the VM switched
//! in. Input arrives in bursts (a whole typed or pasted line), so bytes are
//! moved only while the focused VM's receive FIFO has room; the rest waits
//! in the UART, with its interrupt masked, until the VM has read some
//! (checked at every interrupt and before the hypervisor sleeps). Nothing
//! typed for a VM that reads its console is dropped.
//!
//! A focused VM that stops reading must not take the console hostage
//! (design rule 2): once its input has waited [`STALL_US`], the hypervisor
//! says so and reads the UART again, acting on Ctrl-] keys and dropping what
//! was typed for that VM, until it reads again or the focus moves. Input
//! for a VM that has stopped is dropped at once.

use alloc::vec::Vec;
use armv7a::generic_timer::Counter;
use capsules::console_mux::{ConsoleMux, Input};
use capsules::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::capabilities::InterruptRoutingCapability;
use hyp::hil::interrupt::InterruptController;
use hyp::hil::time::{Alarm, Clock};
use hyp::interrupts::InterruptBackend;
use hyp::kernel::Platform;
use pl011::Pl011;

/// How long input for the focused VM may wait in the UART before the
/// hypervisor decides the VM is not reading: 2 s.
pub const STALL_US: u64 = 2_000_000;

/// What happens to console input for the focused VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFlow {
    /// Bytes go to the focused VM as they come.
    Flowing,
    /// The focused VM's receive FIFO is full: input waits in the UART (its
    /// interrupt masked), since this time on the counter.
    Held { since: u64 },
    /// The focused VM has not read for [`STALL_US`]: the UART is read, Ctrl-]
    /// keys act, the VM's bytes are dropped until it has room again.
    Dropping,
}

/// The board's interrupt lines, as the platform serves them.
#[derive(Clone, Copy, Debug)]
pub struct Lines {
    /// The alarm's line.
    pub alarm: u32,
    /// The console UART's receive interrupt.
    pub console: u32,
    /// Lines forwarded to the interrupt backend of the VM switched in (a
    /// GIC's maintenance interrupt and the guest timer's PPI); empty on a
    /// board without GIC virtualization.
    pub forwarded: &'static [u32],
}

/// The board's devices as the kernel's platform.
pub struct BoardPlatform<'a> {
    /// The monotonic clock.
    pub counter: &'a Counter,
    /// The hypervisor's alarm.
    pub alarm: &'a dyn Alarm,
    /// The interrupt controller.
    pub controller: &'a dyn InterruptController,
    /// Which line is what.
    pub lines: Lines,
    /// The console UART.
    pub uart: Pl011,
    /// The console multiplexer.
    pub mux: &'a ConsoleMux<'a>,
    /// Each VM's virtual UART, for received bytes.
    pub uarts: &'a [VirtualUart<'a>],
    /// Each VM's interrupt backend, for forwarded lines.
    pub backends: Vec<&'a dyn InterruptBackend>,
    /// Console input for the focused VM.
    pub input: Cell<InputFlow>,
    /// The alarm the kernel asked for last (the platform may set an earlier
    /// one while the CPU sleeps, to look at held input again).
    pub kernel_alarm: Cell<Option<u64>>,
    /// Which VMs have stopped: their input is dropped, not held.
    pub stopped: Vec<Cell<bool>>,
}

impl core::fmt::Debug for BoardPlatform<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardPlatform")
            .field("lines", &self.lines)
            .field("input", &self.input.get())
            .finish()
    }
}

impl<'a> BoardPlatform<'a> {
    /// The platform, with console input flowing to the focused VM. Which
    /// physical lines go where (`lines`, and each VM's backend) is a
    /// routing only a board may decide (`_routing`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        _routing: &dyn InterruptRoutingCapability,
        counter: &'a Counter,
        alarm: &'a dyn Alarm,
        controller: &'a dyn InterruptController,
        lines: Lines,
        uart: Pl011,
        mux: &'a ConsoleMux<'a>,
        uarts: &'a [VirtualUart<'a>],
        backends: Vec<&'a dyn InterruptBackend>,
    ) -> Self {
        BoardPlatform {
            counter,
            alarm,
            controller,
            lines,
            uart,
            mux,
            uarts,
            backends,
            input: Cell::new(InputFlow::Flowing),
            kernel_alarm: Cell::new(None),
            stopped: uarts.iter().map(|_| Cell::new(false)).collect(),
        }
    }

    /// Lets the alarm and console input interrupt the CPU.
    pub fn enable_interrupts(&self) {
        self.uart.set_receive_interrupts(true);
        self.controller.enable(self.lines.alarm);
        self.controller.enable(self.lines.console);
        for &line in self.lines.forwarded {
            self.controller.enable(line);
        }
    }

    /// Whether VM `vm` takes input: it has stopped (its input is dropped)
    /// or its receive FIFO has room.
    fn has_room(&self, vm: usize) -> bool {
        self.stopped.get(vm).is_none_or(Cell::get)
            || self
                .uarts
                .get(vm)
                .is_none_or(|uart| uart.receive_room() > 0)
    }

    /// Moves the input flow on: held input is let in again once the
    /// focused VM has read some, or dropped once it has waited
    /// [`STALL_US`]; dropping ends when the VM reads again.
    #[inline]
    fn update_input_flow(&self) {
        let flow = self.input.get();
        if flow == InputFlow::Flowing {
            return;
        }
        self.update_held_input(flow);
    }

    /// [`update_input_flow`](Self::update_input_flow) for input that is
    /// held or being dropped.
    fn update_held_input(&self, flow: InputFlow) {
        let room = self.has_room(self.mux.focus());
        match flow {
            InputFlow::Flowing => {}
            InputFlow::Held { .. } | InputFlow::Dropping if room => {
                self.input.set(InputFlow::Flowing);
                self.controller.enable(self.lines.console);
            }
            InputFlow::Held { since } => {
                if self.counter.now().saturating_sub(since) >= self.stall_ticks() {
                    self.input.set(InputFlow::Dropping);
                    self.mux.print_hypervisor(format_args!(
                        "VM {} has not read its console input for {} s; what is typed for it is dropped until it reads again (Ctrl-] n moves the focus)",
                        self.mux.focus() + 1,
                        STALL_US / 1_000_000
                    ));
                    self.controller.enable(self.lines.console);
                }
            }
            InputFlow::Dropping => {}
        }
    }

    fn stall_ticks(&self) -> u64 {
        self.counter.ticks_from_us(STALL_US)
    }

    /// Moves bytes from the UART to the multiplexer while the focused VM can
    /// take them; when it cannot, leaves the rest in the UART (and QEMU's
    /// queue behind it) and masks the interrupt until it can, so no typed
    /// byte is lost; while input is being dropped, reads on. Returns
    /// whether the user asked for the VMs' status.
    fn receive_console_input(&self) -> bool {
        let mut status = false;
        loop {
            if !self.has_room(self.mux.focus()) && self.input.get() != InputFlow::Dropping {
                if self.input.get() == InputFlow::Flowing {
                    self.input.set(InputFlow::Held {
                        since: self.counter.now(),
                    });
                }
                self.controller.disable(self.lines.console);
                return status;
            }
            let Some(byte) = self.uart.read_byte() else {
                return status;
            };
            match self.mux.receive(byte) {
                Input::ToVm { vm, byte } => {
                    // Input for a stopped VM, or one not reading, is
                    // dropped.
                    let live = !self.stopped.get(vm).is_some_and(Cell::get);
                    match self.uarts.get(vm) {
                        Some(uart) if live && uart.receive_room() > 0 => {
                            uart.receive(byte);
                        }
                        _ => {}
                    }
                }
                Input::StatusRequested => status = true,
                // The new focus starts afresh (held again at once if it
                // has no room either).
                Input::FocusChanged { .. } => self.input.set(InputFlow::Flowing),
                Input::Consumed => {}
            }
        }
    }
}

impl Platform for BoardPlatform<'_> {
    fn now(&self) -> u64 {
        self.counter.now()
    }

    fn set_alarm(&self, deadline: Option<u64>) {
        self.kernel_alarm.set(deadline);
        match deadline {
            Some(deadline) => self.alarm.set_alarm(deadline),
            None => self.alarm.disarm(),
        }
    }

    fn service_interrupts(&self) -> bool {
        let mut status = false;
        self.update_input_flow();
        while let Some(irq) = self.controller.acknowledge() {
            // Priority drop at once: the hypervisor runs with interrupts
            // masked, so nothing nests; deactivation follows the service.
            self.controller.end_of_interrupt(irq);
            let line = irq.line;
            if line == self.lines.alarm {
                self.alarm.acknowledge();
            } else if line == self.lines.console {
                status |= self.receive_console_input();
            } else if self.lines.forwarded.contains(&line) {
                // The switched-in VM's backend takes it (and ends it here
                // like any other: the guest timer's is masked meanwhile).
                self.backends
                    .iter()
                    .any(|backend| backend.physical_interrupt(line));
            } else {
                // Nothing else is enabled; a line that asserts anyway is
                // masked so it cannot storm.
                self.controller.disable(line);
                self.mux.print_hypervisor(format_args!(
                    "unexpected interrupt on line {}; masked",
                    line
                ));
            }
            self.controller.deactivate(irq);
        }
        status
    }

    fn report_status(
        &self,
        describe: &dyn Fn(usize, &mut dyn core::fmt::Write) -> core::fmt::Result,
    ) {
        self.mux.print_status(|index, out| describe(index, out));
    }

    fn wait_for_interrupt(&self) {
        // Every VM waits: the focused one may have read what it was given.
        self.update_input_flow();
        // Input still held: wake up when it has waited long enough (the
        // kernel sets its own alarm again after the wait).
        if let InputFlow::Held { since } = self.input.get() {
            let stall = since + self.stall_ticks();
            let deadline = self
                .kernel_alarm
                .get()
                .map_or(stall, |alarm| alarm.min(stall));
            self.alarm.set_alarm(deadline);
        }
        armv7a::cpu::wait_for_interrupt();
    }

    fn vm_stopped(&self, vm: usize) {
        if let Some(stopped) = self.stopped.get(vm) {
            stopped.set(true);
        }
        if vm == self.mux.focus() {
            self.mux.print_hypervisor(format_args!(
                "VM {} has stopped; its console input is dropped (Ctrl-] n moves the focus)",
                vm + 1
            ));
        }
        // Input held for it is now dropped instead.
        self.update_input_flow();
    }
}
