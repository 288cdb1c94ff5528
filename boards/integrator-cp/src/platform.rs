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
//! bursts (a whole typed or pasted line), so bytes are moved only while the
//! focused VM's receive FIFO has room; the rest waits in UART0, with its
//! interrupt masked, until the VM has read some (checked at every
//! interrupt and before the hypervisor sleeps). Nothing typed for a VM
//! that reads its console is dropped.
//!
//! A focused VM that stops reading must not take the console hostage
//! (design rule 2): once its input has waited [`STALL_US`], the hypervisor
//! says so and reads UART0 again, acting on Ctrl-] keys and dropping what
//! was typed for that VM, until it reads again or the focus moves. Input
//! for a VM that has stopped is dropped at once.

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

/// How long input for the focused VM may wait in UART0 before the
/// hypervisor decides the VM is not reading: 2 s.
pub const STALL_US: u64 = 2_000_000;

/// What happens to console input for the focused VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFlow {
    /// Bytes go to the focused VM as they come.
    Flowing,
    /// The focused VM's receive FIFO is full: input waits in UART0 (its
    /// interrupt masked), since this time on the counter.
    Held { since: u64 },
    /// The focused VM has not read for [`STALL_US`]: UART0 is read, Ctrl-]
    /// keys act, the VM's bytes are dropped until it has room again.
    Dropping,
}

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
    /// Console input for the focused VM.
    pub input: Cell<InputFlow>,
    /// The alarm the kernel asked for last (the platform may set an earlier
    /// one while the CPU sleeps, to look at held input again).
    pub kernel_alarm: Cell<Option<u64>>,
    /// Which VMs have stopped: their input is dropped, not held.
    pub stopped: [Cell<bool>; VMS],
}

impl<'a, const VMS: usize> BoardPlatform<'a, VMS> {
    /// The platform, with console input flowing to VM 1.
    pub fn new(
        counter: &'a Counter,
        alarm: OneShotAlarm<'a, Counter>,
        pic: Pic,
        uart: Pl011,
        mux: &'a ConsoleMux<'a, VMS>,
        uarts: &'a [VirtualUart<'a>; VMS],
    ) -> Self {
        BoardPlatform {
            counter,
            alarm,
            pic,
            uart,
            mux,
            uarts,
            input: Cell::new(InputFlow::Flowing),
            kernel_alarm: Cell::new(None),
            stopped: core::array::from_fn(|_| Cell::new(false)),
        }
    }

    /// Lets the alarm and console input interrupt the CPU.
    pub fn enable_interrupts(&self) {
        self.uart.set_receive_interrupts(true);
        self.pic.enable(lines::TIMER1);
        self.pic.enable(lines::UART0);
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
                self.pic.enable(lines::UART0);
            }
            InputFlow::Held { since } => {
                if self.counter.now().saturating_sub(since) >= self.stall_ticks() {
                    self.input.set(InputFlow::Dropping);
                    self.mux.print_hypervisor(format_args!(
                        "VM {} has not read its console input for {} s; what is typed for it is dropped until it reads again (Ctrl-] n moves the focus)",
                        self.mux.focus() + 1,
                        STALL_US / 1_000_000
                    ));
                    self.pic.enable(lines::UART0);
                }
            }
            InputFlow::Dropping => {}
        }
    }

    fn stall_ticks(&self) -> u64 {
        self.counter.ticks_from_us(STALL_US)
    }

    /// Moves bytes from UART0 to the multiplexer while the focused VM can
    /// take them; when it cannot, leaves the rest in UART0 (and QEMU's
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
                self.pic.disable(lines::UART0);
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

impl<const VMS: usize> Platform for BoardPlatform<'_, VMS> {
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
        while let Some(irq) = self.pic.acknowledge() {
            match irq.line {
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
