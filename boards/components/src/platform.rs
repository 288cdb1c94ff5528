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
//! Each online CPU has its own platform ([`BoardPlatform`]): its alarm, its
//! banked interrupts, the physical interrupts forwarded to the vCPUs it
//! runs, and the kick another CPU sends it (a physical SGI that only
//! interrupts, so that the kernel looks at its vCPUs again). The console's
//! input is CPU 0's: the UART's interrupt goes there, and CPU 0 delivers
//! bytes to the focused VM's virtual UART under that VM's lock, then kicks
//! the CPU of the vCPU the byte's interrupt targets. What every platform
//! shares ([`PlatformShared`]) is the board's and read only.
//!
//! A focused VM that stops reading must not take the console hostage
//! (design rule 2): once its input has waited [`STALL_US`], the hypervisor
//! says so and reads the UART again, acting on Ctrl-] keys and dropping what
//! was typed for that VM, until it reads again or the focus moves. Input
//! for a VM that has stopped is dropped at once.

use crate::guests::VmConsole;
use alloc::vec::Vec;
use armv7a::generic_timer::Counter;
use capsules::console_mux::{ConsoleMux, Input};
use core::cell::Cell;
use hyp::capabilities::InterruptRoutingCapability;
use hyp::hil::interrupt::InterruptController;
use hyp::hil::time::{Alarm, Clock};
use hyp::interrupts::InterruptBackend;
use hyp::kernel::{AnyLock, Guarded, Platform, Vm};
use pl011::Pl011;

/// How long input for the focused VM may wait in the UART before the
/// hypervisor decides the VM is not reading: 2 s.
pub const STALL_US: u64 = 2_000_000;
/// How often CPU 0, with nothing else to do, looks whether the focused VM
/// (which may run on another CPU) has read held input: 10 ms.
pub const HELD_RECHECK_US: u64 = 10_000;

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
    /// Lines forwarded to the interrupt backend of the vCPU switched in (a
    /// GIC's maintenance interrupt and the guest timer's PPI); empty on a
    /// board without GIC virtualization.
    pub forwarded: &'static [u32],
    /// The SGI other CPUs send as a kick; none on a one-CPU board.
    pub kick: Option<u32>,
}

/// What every CPU's platform shares: the board's devices and the VMs.
pub struct PlatformShared<'a> {
    /// The monotonic clock.
    pub counter: &'a Counter,
    /// The hypervisor's alarm: on a board with several CPUs, each CPU's
    /// own behind one address (banked, as the generic timer's CNTHP).
    pub alarm: &'a dyn Alarm,
    /// The interrupt controller: on a board with several CPUs, safe to
    /// drive from all of them (a GIC: its CPU interface banked per CPU).
    pub controller: &'a dyn InterruptController,
    /// Which line is what.
    pub lines: Lines,
    /// The console multiplexer.
    pub mux: &'a ConsoleMux<'a>,
    /// Every VM, for its state and its kicks.
    pub vms: &'a [&'a Vm<'a>],
    /// Each VM's virtual UART and first vCPU's backend (the kicks a
    /// received byte causes), under its VM's lock: used only on the CPU
    /// that takes console input (the one with [`ConsoleInput`]).
    pub consoles: Vec<Guarded<VmConsole<'a>, AnyLock<'a>>>,
}

impl core::fmt::Debug for PlatformShared<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlatformShared")
            .field("lines", &self.lines)
            .field("vms", &self.vms.len())
            .finish()
    }
}

/// Console input, CPU 0's duty.
#[derive(Debug)]
struct ConsoleInput {
    /// The console UART.
    uart: Pl011,
    /// Input for the focused VM.
    flow: Cell<InputFlow>,
}

/// One CPU's platform.
pub struct BoardPlatform<'a> {
    /// What all CPUs share.
    pub shared: &'a PlatformShared<'a>,
    /// The backends of the vCPUs this CPU runs, under their VMs' locks, for
    /// forwarded lines.
    pub backends: Vec<Guarded<&'a dyn InterruptBackend, AnyLock<'a>>>,
    /// Console input, on the CPU that takes the UART's interrupt.
    console: Option<ConsoleInput>,
    /// The alarm the kernel asked for last (the platform may set an earlier
    /// one while the CPU sleeps, to look at held input again).
    kernel_alarm: Cell<Option<u64>>,
    /// Whether a kick arrived since the kernel last asked.
    kicked: Cell<bool>,
}

impl core::fmt::Debug for BoardPlatform<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardPlatform")
            .field("console", &self.console)
            .finish()
    }
}

impl<'a> BoardPlatform<'a> {
    /// A CPU's platform: `console` is the UART on the CPU that takes its
    /// interrupt (CPU 0), with input flowing to the focused VM; `backends`
    /// are the vCPUs' on this CPU. Which physical lines go where (`lines`,
    /// and each vCPU's backend) is a routing only a board may decide
    /// (`_routing`).
    pub fn new(
        _routing: &dyn InterruptRoutingCapability,
        shared: &'a PlatformShared<'a>,
        console: Option<Pl011>,
        backends: Vec<Guarded<&'a dyn InterruptBackend, AnyLock<'a>>>,
    ) -> Self {
        BoardPlatform {
            shared,
            backends,
            console: console.map(|uart| ConsoleInput {
                uart,
                flow: Cell::new(InputFlow::Flowing),
            }),
            kernel_alarm: Cell::new(None),
            kicked: Cell::new(false),
        }
    }

    /// Lets this CPU's alarm, its forwarded lines and, on the console's
    /// CPU, console input interrupt it.
    pub fn enable_interrupts(&self) {
        let shared = self.shared;
        shared.controller.enable(shared.lines.alarm);
        for &line in shared.lines.forwarded {
            shared.controller.enable(line);
        }
        if let Some(kick) = shared.lines.kick {
            shared.controller.enable(kick);
        }
        if let Some(console) = &self.console {
            console.uart.set_receive_interrupts(true);
            shared.controller.enable(shared.lines.console);
        }
    }

    /// Whether VM `vm` takes input: it has stopped (its input is dropped)
    /// or its receive FIFO has room.
    fn has_room(&self, vm: usize) -> bool {
        let shared = self.shared;
        let (Some(owner), Some(console)) = (shared.vms.get(vm), shared.consoles.get(vm)) else {
            return true;
        };
        if !owner.is_running() {
            return true;
        }
        console.with(|console| console.uart.receive_room() > 0)
    }

    /// Moves the input flow on: held input is let in again once the
    /// focused VM has read some, or dropped once it has waited
    /// [`STALL_US`]; dropping ends when the VM reads again.
    #[inline]
    fn update_input_flow(&self) {
        let Some(console) = &self.console else {
            return;
        };
        let flow = console.flow.get();
        if flow == InputFlow::Flowing {
            return;
        }
        self.update_held_input(console, flow);
    }

    /// [`update_input_flow`](Self::update_input_flow) for input that is
    /// held or being dropped.
    fn update_held_input(&self, console: &ConsoleInput, flow: InputFlow) {
        let shared = self.shared;
        let room = self.has_room(shared.mux.focus());
        match flow {
            InputFlow::Flowing => {}
            InputFlow::Held { .. } | InputFlow::Dropping if room => {
                console.flow.set(InputFlow::Flowing);
                shared.controller.enable(shared.lines.console);
            }
            InputFlow::Held { since } => {
                if shared.counter.now().saturating_sub(since) >= self.stall_ticks() {
                    console.flow.set(InputFlow::Dropping);
                    shared.mux.print_hypervisor(format_args!(
                        "VM {} has not read its console input for {} s; what is typed for it is dropped until it reads again (Ctrl-] n moves the focus)",
                        shared.mux.focus() + 1,
                        STALL_US / 1_000_000
                    ));
                    shared.controller.enable(shared.lines.console);
                }
            }
            InputFlow::Dropping => {}
        }
    }

    fn stall_ticks(&self) -> u64 {
        self.shared.counter.ticks_from_us(STALL_US)
    }

    /// Moves bytes from the UART to the multiplexer while the focused VM can
    /// take them; when it cannot, leaves the rest in the UART (and QEMU's
    /// queue behind it) and masks the interrupt until it can, so no typed
    /// byte is lost; while input is being dropped, reads on. Returns
    /// whether the user asked for the VMs' status.
    fn receive_console_input(&self, console: &ConsoleInput) -> bool {
        let shared = self.shared;
        let mut status = false;
        loop {
            if !self.has_room(shared.mux.focus()) && console.flow.get() != InputFlow::Dropping {
                if console.flow.get() == InputFlow::Flowing {
                    console.flow.set(InputFlow::Held {
                        since: shared.counter.now(),
                    });
                }
                shared.controller.disable(shared.lines.console);
                return status;
            }
            let Some(byte) = console.uart.read_byte() else {
                return status;
            };
            match shared.mux.receive(byte) {
                Input::ToVm { vm, byte } => self.deliver(vm, byte),
                Input::StatusRequested => status = true,
                // The new focus starts afresh (held again at once if it
                // has no room either).
                Input::FocusChanged { .. } => console.flow.set(InputFlow::Flowing),
                Input::Consumed => {}
            }
        }
    }

    /// Gives `byte` to VM `vm`'s virtual UART, under the VM's lock, and
    /// kicks the CPU of the vCPU its interrupt goes to. Input for a stopped
    /// VM, or one not reading, is dropped.
    fn deliver(&self, vm: usize, byte: u8) {
        let shared = self.shared;
        let (Some(owner), Some(console)) = (shared.vms.get(vm), shared.consoles.get(vm)) else {
            return;
        };
        if !owner.is_running() {
            return;
        }
        let kicks = console.with(|console| {
            if console.uart.receive_room() == 0 {
                return 0;
            }
            console.uart.receive(byte);
            console.backend.take_kicks()
        });
        owner.kick(kicks, usize::MAX);
    }
}

impl Platform for BoardPlatform<'_> {
    fn now(&self) -> u64 {
        self.shared.counter.now()
    }

    fn set_alarm(&self, deadline: Option<u64>) {
        self.kernel_alarm.set(deadline);
        match deadline {
            Some(deadline) => self.shared.alarm.set_alarm(deadline),
            None => self.shared.alarm.disarm(),
        }
    }

    fn service_interrupts(&self) -> bool {
        let shared = self.shared;
        let mut status = false;
        self.update_input_flow();
        while let Some(irq) = shared.controller.acknowledge() {
            // Priority drop at once: the hypervisor runs with interrupts
            // masked, so nothing nests; deactivation follows the service.
            shared.controller.end_of_interrupt(irq);
            let line = irq.line;
            if line == shared.lines.alarm {
                shared.alarm.acknowledge();
            } else if shared.lines.kick == Some(line) {
                // A kick: the kernel looks at its vCPUs again after this.
                self.kicked.set(true);
            } else if let (true, Some(console)) = (line == shared.lines.console, &self.console) {
                status |= self.receive_console_input(console);
            } else if shared.lines.forwarded.contains(&line) {
                // The switched-in vCPU's backend takes it (and ends it here
                // like any other: the guest timer's is masked meanwhile).
                self.backends
                    .iter()
                    .any(|backend| backend.with(|backend| backend.physical_interrupt(line)));
            } else {
                // Nothing else is enabled; a line that asserts anyway is
                // masked so it cannot storm.
                shared.controller.disable(line);
                shared.mux.print_hypervisor(format_args!(
                    "unexpected interrupt on line {}; masked",
                    line
                ));
            }
            shared.controller.deactivate(irq);
        }
        status
    }

    fn report_status(&self) {
        let shared = self.shared;
        shared
            .mux
            .print_status(|index, out| match shared.vms.get(index) {
                Some(vm) => vm.describe(out),
                None => Ok(()),
            });
    }

    fn wait_for_interrupt(&self) {
        // Every vCPU here waits: the focused VM may have read what it was
        // given.
        self.update_input_flow();
        // Input still held: look again soon (the focused VM may read on
        // another CPU), and give up on it when it has waited long enough
        // (the kernel sets its own alarm again after the wait).
        if let Some(console) = &self.console {
            if let InputFlow::Held { since } = console.flow.get() {
                let counter = self.shared.counter;
                let stall = since + self.stall_ticks();
                let recheck = counter.now() + counter.ticks_from_us(HELD_RECHECK_US);
                let deadline = self
                    .kernel_alarm
                    .get()
                    .map_or(stall, |alarm| alarm.min(stall))
                    .min(recheck);
                self.shared.alarm.set_alarm(deadline);
            }
        }
        armv7a::cpu::wait_for_interrupt();
    }

    fn take_kick(&self) -> bool {
        self.kicked.replace(false)
    }

    fn vm_stopped(&self, vm: usize) {
        let shared = self.shared;
        if vm == shared.mux.focus() {
            shared.mux.print_hypervisor(format_args!(
                "VM {} has stopped; its console input is dropped (Ctrl-] n moves the focus)",
                vm + 1
            ));
        }
        // Input held for it is now dropped instead.
        self.update_input_flow();
    }
}
