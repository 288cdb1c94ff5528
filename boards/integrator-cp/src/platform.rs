//! What the kernel asks of this board while VMs run: time, the alarm, and
//! the physical interrupts the hypervisor owns.
//!
//! The clock is the CPU's counter (CNTPCT, 62.5 MHz); the alarm is
//! counter/timer 1 (1 MHz, one-shot, PIC line 6); console input arrives on
//! UART0's receive interrupt (PIC line 1). Both lines are taken by the
//! hypervisor (HCR.IMO): when one interrupts a guest, or wakes the
//! hypervisor from its own WFI, [`BoardPlatform::service_interrupts`]
//! acknowledges the alarm and passes received bytes to the console
//! multiplexer, which routes them to the focused VM's virtual UART (raising
//! its receive interrupt) or acts on its key sequences. Input arrives in
//! bursts (a whole typed line), so bytes are moved only while the focused
//! VM's receive FIFO has room; the rest waits in UART0, with its interrupt
//! masked, until the VM has read some (checked at every interrupt and
//! before the hypervisor sleeps). Nothing typed is dropped.

use armv7a::generic_timer::Counter;
use capsules::console_mux::{ConsoleMux, Input};
use capsules::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::hil::interrupt::InterruptController;
use hyp::hil::time::{Alarm, Clock};
use hyp::kernel::Platform;
use integrator_cp::pic::{lines, Pic};
use integrator_cp::timer::OneShotAlarm;
use integrator_cp::uart::Pl011;

/// The board's devices as the kernel's platform.
pub struct BoardPlatform<'a, const VMS: usize> {
    /// The monotonic clock.
    pub counter: &'a Counter,
    /// The hypervisor's alarm (counter/timer 1).
    pub alarm: OneShotAlarm<'a, Counter>,
    /// The interrupt controller.
    pub pic: Pic,
    /// The console UART.
    pub uart: Pl011,
    /// The console multiplexer.
    pub mux: &'a ConsoleMux<'a, VMS>,
    /// Each VM's virtual UART, for received bytes.
    pub uarts: &'a [VirtualUart<'a>; VMS],
    /// Whether console input is held back in UART0 (its interrupt masked)
    /// because the focused VM's receive FIFO is full.
    pub input_held: Cell<bool>,
    /// Which VMs have stopped: their input is dropped, not held.
    pub stopped: [Cell<bool>; VMS],
}

impl<const VMS: usize> BoardPlatform<'_, VMS> {
    /// Lets the alarm and console input interrupt the CPU.
    pub fn enable_interrupts(&self) {
        self.uart.set_receive_interrupts(true);
        self.pic.enable(lines::TIMER1);
        self.pic.enable(lines::UART0);
    }

    /// Whether the focused VM's receive FIFO has room for a byte (a
    /// stopped VM always has: its input is dropped).
    fn focus_has_room(&self) -> bool {
        let focus = self.mux.focus();
        self.stopped.get(focus).is_none_or(Cell::get)
            || self
                .uarts
                .get(focus)
                .is_none_or(|uart| uart.receive_room() > 0)
    }

    /// Lets console input in again once the focused VM has read some.
    fn release_held_input(&self) {
        if self.input_held.get() && self.focus_has_room() {
            self.input_held.set(false);
            self.pic.enable(lines::UART0);
        }
    }

    /// Moves bytes from UART0 to the multiplexer while the focused VM can
    /// take them; when it cannot, leaves the rest in UART0 (and QEMU's
    /// queue behind it) and masks the interrupt until it can, so no typed
    /// byte is lost. Returns whether the user asked for the VMs' status.
    fn receive_console_input(&self) -> bool {
        let mut status = false;
        loop {
            if !self.focus_has_room() {
                self.input_held.set(true);
                self.pic.disable(lines::UART0);
                return status;
            }
            let Some(byte) = self.uart.read_byte() else {
                return status;
            };
            match self.mux.receive(byte) {
                Input::ToVm { vm, byte } => {
                    // Input for a stopped VM is dropped.
                    let live = !self.stopped.get(vm).is_some_and(Cell::get);
                    match self.uarts.get(vm) {
                        Some(uart) if live => {
                            uart.receive(byte);
                        }
                        _ => {}
                    }
                }
                Input::StatusRequested => status = true,
                Input::FocusChanged { .. } | Input::Consumed => {}
            }
        }
    }
}

impl<const VMS: usize> Platform for BoardPlatform<'_, VMS> {
    fn now(&self) -> u64 {
        self.counter.now()
    }

    fn set_alarm(&self, deadline: Option<u64>) {
        match deadline {
            Some(deadline) => self.alarm.set_alarm(deadline),
            None => self.alarm.disarm(),
        }
    }

    fn service_interrupts(&self) -> bool {
        let mut status = false;
        self.release_held_input();
        while let Some(line) = self.pic.next_pending() {
            match line {
                lines::TIMER1 => {
                    self.alarm.acknowledge();
                }
                lines::UART0 => {
                    status |= self.receive_console_input();
                }
                other => {
                    // Nothing else is enabled; a line that asserts anyway
                    // is masked so it cannot storm.
                    self.pic.disable(other);
                    self.mux.print_hypervisor(format_args!(
                        "unexpected interrupt on PIC line {}; masked",
                        other
                    ));
                }
            }
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
        // Every VM waits: the focused one has read what it was given.
        self.release_held_input();
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
        self.release_held_input();
    }
}
