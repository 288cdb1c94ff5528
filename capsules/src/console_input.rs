// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console input: typed bytes from the physical UART to the focused VM,
//! without losing any and without letting a VM take the console hostage.
//!
//! The board owns the UART and its interrupt line and calls
//! [`ConsoleInput::receive`] when the line fires; the bytes go through the
//! console multiplexer ([`ConsoleMux::receive`]: Ctrl-] keys, the focus)
//! and, for the focused VM, to its virtual UART through the board's
//! [`InputTargets`] (which takes the VM's lock and kicks the CPU the
//! byte's interrupt targets).
//!
//! Input comes in bursts (a whole typed or pasted line) and a VM's receive
//! FIFO is small, so bytes are moved only while the focused VM has room;
//! the rest waits in the UART (and in QEMU's queue behind it) with the
//! UART's line masked at the interrupt controller, until the VM has read
//! some. The flow of input ([`Flow`]) has three states:
//!
//! | state | input | leaves it |
//! |---|---|---|
//! | [`Flow::Flowing`] | read, each byte delivered as it comes | the focused VM's FIFO is full: `Held` (line masked) |
//! | [`Flow::Held`] | left in the UART, line masked | the VM has room or has stopped: `Flowing` (line unmasked); it has not read for [`STALL_US`]: `Dropping` (a message, line unmasked) |
//! | [`Flow::Dropping`] | read; Ctrl-] keys act, the VM's bytes are dropped | the VM has room or has stopped: `Flowing`; a focus change: `Flowing` |
//!
//! A focus change (Ctrl-] `n`) always starts the new focus afresh in
//! `Flowing` (held again at once if it has no room either). The board
//! moves the flow on ([`ConsoleInput::update`]) at every interrupt and
//! before its CPU sleeps, and while input is held it wakes the CPU by
//! [`ConsoleInput::wake_by`], since the focused VM may read on another CPU.
//!
//! A focused VM that stops reading must not take the console hostage
//! (nothing one guest does may be felt by another): that is the `Dropping`
//! state.
//! Input for a VM that has stopped is dropped at once (the board's
//! [`InputTargets::deliver`] drops it), and [`announce_stopped`] says so
//! when that VM has the focus.

use crate::console_mux::{ConsoleMux, Input};
use core::cell::Cell;
use hyp::hil::console::ConsoleReceive;
use hyp::hil::interrupt::InterruptController;
use hyp::hil::time::Clock;

/// How long input for the focused VM may wait in the UART before the
/// hypervisor decides the VM is not reading: 2 s.
pub const STALL_US: u64 = 2_000_000;
/// How often the console's CPU, with nothing else to do, looks whether the
/// focused VM (which may run on another CPU) has read held input: 10 ms.
pub const HELD_RECHECK_US: u64 = 10_000;

/// What happens to console input for the focused VM (see the module's
/// table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Bytes go to the focused VM as they come.
    Flowing,
    /// The focused VM's receive FIFO is full: input waits in the UART (its
    /// interrupt masked), since this time on the clock.
    Held { since: u64 },
    /// The focused VM has not read for [`STALL_US`]: the UART is read,
    /// Ctrl-] keys act, the VM's bytes are dropped until it has room again.
    Dropping,
}

/// Whether a VM can take a typed byte now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reception {
    /// Its receive FIFO has room.
    Room,
    /// Its receive FIFO is full.
    Full,
    /// It has stopped (or is no VM): what is typed for it is dropped.
    Stopped,
}

/// The VMs' receiving side, as the board reaches it (under each VM's lock).
pub trait InputTargets {
    /// Whether VM `vm` can take a byte now.
    fn reception(&self, vm: usize) -> Reception;
    /// Gives `byte` to VM `vm`'s virtual UART and kicks the CPU its receive
    /// interrupt targets; drops it if the VM has stopped or has no room.
    fn deliver(&self, vm: usize, byte: u8);
}

/// Console input, on the CPU that takes the UART's interrupt.
pub struct ConsoleInput<'a> {
    uart: &'a dyn ConsoleReceive,
    controller: &'a dyn InterruptController,
    /// The UART's receive interrupt line at `controller`.
    line: u32,
    clock: &'a dyn Clock,
    mux: &'a ConsoleMux<'a>,
    vms: &'a dyn InputTargets,
    flow: Cell<Flow>,
}

impl core::fmt::Debug for ConsoleInput<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ConsoleInput")
            .field("line", &self.line)
            .field("flow", &self.flow.get())
            .finish()
    }
}

impl<'a> ConsoleInput<'a> {
    /// Input read from `uart`, whose receive interrupt is `line` at
    /// `controller`, passed through `mux` to `vms`; times on `clock`.
    /// Input starts flowing; nothing is enabled until [`enable`](Self::enable).
    pub fn new(
        uart: &'a dyn ConsoleReceive,
        controller: &'a dyn InterruptController,
        line: u32,
        clock: &'a dyn Clock,
        mux: &'a ConsoleMux<'a>,
        vms: &'a dyn InputTargets,
    ) -> Self {
        ConsoleInput {
            uart,
            controller,
            line,
            clock,
            mux,
            vms,
            flow: Cell::new(Flow::Flowing),
        }
    }

    /// The UART's receive interrupt line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// Where the flow is.
    pub fn flow(&self) -> Flow {
        self.flow.get()
    }

    /// Lets received bytes interrupt: at the UART and at the controller.
    pub fn enable(&self) {
        self.uart.set_receive_interrupts(true);
        self.controller.enable(self.line);
    }

    /// Whether the focused VM takes input: it has room, or has stopped (its
    /// input is dropped).
    fn focus_takes_input(&self) -> bool {
        self.vms.reception(self.mux.focus()) != Reception::Full
    }

    /// Moves the flow on: held input is let in again once the focused VM
    /// has read some (or stopped), or dropped once it has waited
    /// [`STALL_US`]; dropping ends when the VM reads again. Cheap while
    /// input flows.
    #[inline]
    pub fn update(&self) {
        let flow = self.flow.get();
        if flow == Flow::Flowing {
            return;
        }
        self.update_held(flow);
    }

    /// [`update`](Self::update) for input that is held or being dropped.
    fn update_held(&self, flow: Flow) {
        let room = self.focus_takes_input();
        match flow {
            Flow::Flowing => {}
            Flow::Held { .. } | Flow::Dropping if room => {
                self.flow.set(Flow::Flowing);
                self.controller.enable(self.line);
            }
            Flow::Held { since } => {
                if self.clock.now().saturating_sub(since) >= self.stall_ticks() {
                    self.flow.set(Flow::Dropping);
                    self.mux.print_hypervisor(format_args!(
                        "VM {} has not read its console input for {} s; what is typed for it is dropped until it reads again (Ctrl-] n moves the focus)",
                        self.mux.focus() + 1,
                        STALL_US / 1_000_000
                    ));
                    self.controller.enable(self.line);
                }
            }
            Flow::Dropping => {}
        }
    }

    fn stall_ticks(&self) -> u64 {
        self.clock.ticks_from_us(STALL_US)
    }

    /// Serves the UART's interrupt: moves bytes from the UART through the
    /// multiplexer while the focused VM can take them; when it cannot,
    /// leaves the rest in the UART and masks the line until it can, so no
    /// typed byte is lost; while input is being dropped, reads on. Returns
    /// whether the user asked for the VMs' status (Ctrl-] `s`).
    pub fn receive(&self) -> bool {
        let mut status = false;
        loop {
            if !self.focus_takes_input() && self.flow.get() != Flow::Dropping {
                if self.flow.get() == Flow::Flowing {
                    self.flow.set(Flow::Held {
                        since: self.clock.now(),
                    });
                }
                self.controller.disable(self.line);
                return status;
            }
            let Some(byte) = self.uart.read_byte() else {
                return status;
            };
            match self.mux.receive(byte) {
                Input::ToVm { vm, byte } => self.vms.deliver(vm, byte),
                Input::StatusRequested => status = true,
                // The new focus starts afresh (held again at once if it
                // has no room either).
                Input::FocusChanged { .. } => self.flow.set(Flow::Flowing),
                Input::Consumed => {}
            }
        }
    }

    /// While input is held, when the CPU must look at it again even if
    /// nothing interrupts: soon ([`HELD_RECHECK_US`]; the focused VM may
    /// read on another CPU), and at the latest when it has waited
    /// [`STALL_US`]. `None` otherwise.
    pub fn wake_by(&self) -> Option<u64> {
        let Flow::Held { since } = self.flow.get() else {
            return None;
        };
        let stall = since + self.stall_ticks();
        let recheck = self.clock.now() + self.clock.ticks_from_us(HELD_RECHECK_US);
        Some(stall.min(recheck))
    }
}

/// Says on the console that VM `vm` has stopped and its input is dropped,
/// if it has the focus (any CPU may call it, when the VM stops there).
pub fn announce_stopped(mux: &ConsoleMux<'_>, vm: usize) {
    if vm == mux.focus() {
        mux.print_hypervisor(format_args!(
            "VM {} has stopped; its console input is dropped (Ctrl-] n moves the focus)",
            vm + 1
        ));
    }
}

#[cfg(test)]
mod tests;
