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
//! acknowledged, the console UART's goes to console input
//! (`capsules::console_input`: through the console multiplexer to the
//! focused VM's virtual UART, holding input the VM has no room for and
//! dropping it once the VM stops reading), and lines forwarded to guests
//! (on a GIC with virtualization: the guest timer's PPI and the
//! maintenance interrupt) go to the interrupt backend of the VM switched
//! in.
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
//! The board disk, when VMs have slices of it
//! (`capsules::virtio::board_slice`): its completion interrupt (targeted
//! by the board at the CPUs that deliver to slices, the first to
//! acknowledge it serves it; none for a disk that is polled) moves it on
//! through
//! [`PlatformShared::board_disk`], which posts the completion to the
//! slice and kicks the CPU of the slice's VM's vCPU 0. Every CPU, whenever
//! it serves interrupts, delivers the completions waiting for its own
//! VMs' virtio disks ([`SliceDisk`]: under the VM's lock, then kicks the
//! vCPUs the disk's interrupt now targets). A polled disk is moved on at
//! every service, and a CPU with nothing to run does not sleep while it
//! holds a request: it polls until the request completes.

use alloc::vec::Vec;
use capsules::console_input::{self, ConsoleInput, InputTargets, Reception};
use capsules::console_mux::ConsoleMux;
use capsules::virtio::blk::VirtioBlk;
use capsules::virtio::board_slice::BoardDisk;
use capsules::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::capabilities::InterruptRoutingCapability;
use hyp::hil::console::ConsoleReceive;
use hyp::hil::interrupt::InterruptController;
use hyp::hil::time::{Alarm, Clock};
use hyp::interrupts::InterruptBackend;
use hyp::kernel::{AnyLock, Guarded, Platform, SpinLock, Vm};
use pl011::Pl011;

/// What console input reaches of one VM: its virtual UART and its first
/// vCPU's interrupt backend (the kicks a received byte causes), kept under
/// the VM's lock ([`PlatformShared::consoles`]).
#[derive(Clone, Copy)]
pub struct VmConsole<'a> {
    /// The VM's virtual PL011.
    pub uart: &'a VirtualUart<'a>,
    /// Its first vCPU's interrupt backend.
    pub backend: &'a dyn InterruptBackend,
}

impl core::fmt::Debug for VmConsole<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VmConsole")
    }
}

/// A VM's virtio disk over a board-disk slice, and its vCPU 0's backend
/// (the kicks its interrupt causes), kept under the VM's lock.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)] // a trait object without Debug
pub struct VmDisk<'a> {
    /// The VM's virtio-blk device.
    pub blk: &'a VirtioBlk<'a>,
    /// Its vCPU 0's interrupt backend.
    pub backend: &'a dyn InterruptBackend,
}

/// A virtio disk over a board-disk slice that a CPU delivers completions
/// to: the CPU of its VM's vCPU 0.
#[derive(Clone)]
pub struct SliceDisk<'a> {
    /// Its slice's number (`capsules::virtio::board_slice::BoardDisk`).
    pub slice: usize,
    /// Its VM (for the kicks).
    pub vm: &'a Vm<'a>,
    /// The disk, under the VM's lock.
    pub disk: Guarded<VmDisk<'a>, AnyLock<'a>>,
}

impl core::fmt::Debug for SliceDisk<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SliceDisk")
            .field("slice", &self.slice)
            .finish()
    }
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
    /// The board disk's completion interrupt, taken by the CPUs that
    /// deliver to VMs' slices (the board targets it at them); none for a
    /// disk that is polled (or no disk).
    pub disk: Option<u32>,
}

/// What an acknowledged line is, to the platform of one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The hypervisor's alarm.
    Alarm,
    /// A kick from another CPU.
    Kick,
    /// Console input, on the CPU that takes it.
    Console,
    /// A line for the switched-in vCPU's interrupt backend.
    Forwarded,
    /// The board disk's completion, on a CPU that delivers to slices.
    Disk,
    /// Nothing this CPU enabled (the console's line on another CPU too).
    Unexpected,
}

impl Lines {
    /// What `line` is on a CPU that takes console input (`console`) or not.
    pub fn source(&self, line: u32, console: bool) -> Source {
        if line == self.alarm {
            Source::Alarm
        } else if self.kick == Some(line) {
            Source::Kick
        } else if line == self.console && console {
            Source::Console
        } else if self.disk == Some(line) {
            Source::Disk
        } else if self.forwarded.contains(&line) {
            Source::Forwarded
        } else {
            Source::Unexpected
        }
    }
}

/// The alarm to set before a CPU sleeps: the kernel's, made earlier when
/// console input needs a look sooner (`input`).
pub fn sleep_deadline(kernel: Option<u64>, input: Option<u64>) -> Option<u64> {
    match (kernel, input) {
        (Some(kernel), Some(input)) => Some(kernel.min(input)),
        (kernel, input) => kernel.or(input),
    }
}

/// What every CPU's platform shares: the board's devices and the VMs.
pub struct PlatformShared<'a> {
    /// The monotonic clock (the CPU's counter).
    pub counter: &'a dyn Clock,
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
    /// The board disk shared by the VMs' slices, if they have any.
    pub board_disk: Option<&'a BoardDisk<'a, SpinLock<'a>>>,
}

impl core::fmt::Debug for PlatformShared<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PlatformShared")
            .field("lines", &self.lines)
            .field("vms", &self.vms.len())
            .finish()
    }
}

/// Console input reaches the VMs' virtual UARTs under each VM's lock.
impl InputTargets for PlatformShared<'_> {
    fn reception(&self, vm: usize) -> Reception {
        let (Some(owner), Some(console)) = (self.vms.get(vm), self.consoles.get(vm)) else {
            return Reception::Stopped;
        };
        if !owner.is_running() {
            return Reception::Stopped;
        }
        if console.with(|console| console.uart.receive_room() > 0) {
            Reception::Room
        } else {
            Reception::Full
        }
    }

    /// Gives `byte` to VM `vm`'s virtual UART, under the VM's lock, and
    /// kicks the CPU of the vCPU its interrupt goes to.
    fn deliver(&self, vm: usize, byte: u8) {
        let (Some(owner), Some(console)) = (self.vms.get(vm), self.consoles.get(vm)) else {
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

/// One CPU's platform.
pub struct BoardPlatform<'a> {
    /// What all CPUs share.
    pub shared: &'a PlatformShared<'a>,
    /// The backends of the vCPUs this CPU runs, under their VMs' locks, for
    /// forwarded lines.
    pub backends: Vec<Guarded<&'a dyn InterruptBackend, AnyLock<'a>>>,
    /// Console input, on the CPU that takes the UART's interrupt.
    console: Option<ConsoleInput<'a>>,
    /// The alarm the kernel asked for last (the platform may set an earlier
    /// one while the CPU sleeps, to look at held input again).
    kernel_alarm: Cell<Option<u64>>,
    /// Whether a kick arrived since the kernel last asked.
    kicked: Cell<bool>,
    /// The virtio disks over board-disk slices this CPU delivers to.
    disks: Vec<SliceDisk<'a>>,
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
        routing: &dyn InterruptRoutingCapability,
        shared: &'a PlatformShared<'a>,
        console: Option<Pl011>,
        backends: Vec<Guarded<&'a dyn InterruptBackend, AnyLock<'a>>>,
    ) -> Self {
        // The driver is a typed pointer; console input keeps it for the
        // rest of the run.
        let console = console.map(|uart| {
            let uart: &'a dyn ConsoleReceive =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(uart));
            uart
        });
        Self::with_console(routing, shared, console, backends)
    }

    /// [`new`](Self::new) with the console's receive side as any
    /// [`ConsoleReceive`].
    pub fn with_console(
        _routing: &dyn InterruptRoutingCapability,
        shared: &'a PlatformShared<'a>,
        console: Option<&'a dyn ConsoleReceive>,
        backends: Vec<Guarded<&'a dyn InterruptBackend, AnyLock<'a>>>,
    ) -> Self {
        BoardPlatform {
            shared,
            backends,
            console: console.map(|uart| {
                ConsoleInput::new(
                    uart,
                    shared.controller,
                    shared.lines.console,
                    shared.counter,
                    shared.mux,
                    shared,
                )
            }),
            kernel_alarm: Cell::new(None),
            kicked: Cell::new(false),
            disks: Vec::new(),
        }
    }

    /// This CPU delivers the completions of `disks` (its VMs' virtio disks
    /// over board-disk slices).
    pub fn with_disks(mut self, disks: Vec<SliceDisk<'a>>) -> Self {
        self.disks = disks;
        self
    }

    /// Moves a polled board disk on, and delivers the completions waiting
    /// for this CPU's VMs' disks: each under its VM's lock, then kicks the
    /// vCPUs its interrupt now targets. Returns whether a polled board
    /// disk still holds a request.
    fn serve_disks(&self) -> bool {
        let Some(board_disk) = self.shared.board_disk else {
            return false;
        };
        let polled = self.shared.lines.disk.is_none();
        let holds = polled && board_disk.service();
        for disk in &self.disks {
            if board_disk.has_mail(disk.slice) {
                let kicks = disk.disk.with(|disk| {
                    disk.blk.poll();
                    disk.backend.take_kicks()
                });
                disk.vm.kick(kicks, usize::MAX);
            }
        }
        holds
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
            console.enable();
        }
        if let (Some(disk), Some(_), false) =
            (shared.lines.disk, shared.board_disk, self.disks.is_empty())
        {
            shared.controller.enable(disk);
        }
    }

    /// Whether the CPU must not sleep for its disks: a polled board disk
    /// holds a request (moved on here), or a completion waits for one of
    /// its VMs' disks.
    fn serve_disks_pending(&self) -> bool {
        let Some(board_disk) = self.shared.board_disk else {
            return false;
        };
        let polled = self.shared.lines.disk.is_none();
        (polled && board_disk.service())
            || self
                .disks
                .iter()
                .any(|disk| board_disk.has_mail(disk.slice))
    }

    /// Moves console input on (held input let in or dropped), on the
    /// console's CPU.
    #[inline]
    fn update_input(&self) {
        if let Some(console) = &self.console {
            console.update();
        }
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
        self.update_input();
        while let Some(irq) = shared.controller.acknowledge() {
            // Priority drop at once: the hypervisor runs with interrupts
            // masked, so nothing nests; deactivation follows the service.
            shared.controller.end_of_interrupt(irq);
            let line = irq.line;
            match (
                shared.lines.source(line, self.console.is_some()),
                &self.console,
            ) {
                (Source::Alarm, _) => {
                    shared.alarm.acknowledge();
                }
                // A kick: the kernel looks at its vCPUs again after this.
                (Source::Kick, _) => self.kicked.set(true),
                (Source::Console, Some(console)) => status |= console.receive(),
                (Source::Disk, _) => {
                    if let Some(disk) = shared.board_disk {
                        disk.service();
                    }
                }
                (Source::Forwarded, _) => {
                    // The switched-in vCPU's backend takes it (and ends it
                    // here like any other: the guest timer's is masked
                    // meanwhile).
                    self.backends
                        .iter()
                        .any(|backend| backend.with(|backend| backend.physical_interrupt(line)));
                }
                (Source::Console | Source::Unexpected, _) => {
                    // Nothing else is enabled; a line that asserts anyway
                    // is masked so it cannot storm.
                    shared.controller.disable(line);
                    shared.mux.print_hypervisor(format_args!(
                        "unexpected interrupt on line {}; masked",
                        line
                    ));
                }
            }
            shared.controller.deactivate(irq);
        }
        self.serve_disks();
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
        self.update_input();
        // Input still held: look again soon (the focused VM may read on
        // another CPU), and give up on it when it has waited long enough
        // (the kernel sets its own alarm again after the wait).
        let input = self.console.as_ref().and_then(ConsoleInput::wake_by);
        if input.is_some() {
            if let Some(deadline) = sleep_deadline(self.kernel_alarm.get(), input) {
                self.shared.alarm.set_alarm(deadline);
            }
        }
        // A polled board disk holding a request, or a completion waiting
        // for this CPU's disks: no sleep (the kernel serves interrupts
        // next, which moves the disk on and delivers). A completion posted
        // by another CPU after this look comes with a kick, which ends
        // the WFI.
        let disks_pending = self.serve_disks_pending();
        // (Host builds, for tests only, have no CPU to stop.)
        #[cfg(target_arch = "arm")]
        if !disks_pending {
            armv7a::cpu::wait_for_interrupt();
        }
        #[cfg(not(target_arch = "arm"))]
        let _ = disks_pending;
    }

    fn take_kick(&self) -> bool {
        // (A disk completion delivered here may have made a vCPU of
        // another VM on this CPU ready: the kernel looks at its waiting
        // vCPUs after every service anyway.)
        self.kicked.replace(false)
    }

    fn vm_stopped(&self, vm: usize) {
        console_input::announce_stopped(self.shared.mux, vm);
        // Input held for it is now dropped instead.
        self.update_input();
    }
}

#[cfg(test)]
mod tests;
