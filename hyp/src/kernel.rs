// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VM objects and the core's exit loop.
//!
//! A [`Vm`] is to Capvisor what a process is to Tock: a name, a state, its
//! virtual CPU, the virtual devices and hypercall services it owns, its fault
//! policy, its virtual interrupts and counters. [`Kernel::run`] is the loop
//! of DESIGN.md's boot flow step 4: the scheduler picks a VM and its time
//! slice ([`crate::scheduler`]), the kernel enters it, takes its exit,
//! dispatches it ([`crate::dispatch`]), and carries out what the exit asks:
//! resume, block on WFI until an interrupt is pending, stop, restart, or
//! reflect a fault (asking the VM's fault policy when the guest cannot take
//! its own faults); physical interrupts go to the board ([`Platform`]),
//! whose alarm ends time slices. It returns when every VM has stopped. The
//! architecture hides behind [`Vcpu`] and the board behind [`Platform`], so
//! the loop is tested on the host with scripted fakes.

use crate::dispatch::{dispatch, Action, GuestRegisters, HypercallDriver, MmioDevice, Routes};
use crate::fault_policy::{FaultLoopDetector, FaultResponse, VmFaultPolicy};
use crate::interrupts::{InterruptBackend, NoInterrupts, VirtualTimer};
use crate::scheduler::{Scheduler, SchedulingDecision, StopReason};
use crate::trap::{GuestExit, Trap};

/// A virtual CPU, implemented by the architecture chip. Its virtual
/// timer is read by the VM's interrupt backend ([`VirtualTimer`]).
pub trait Vcpu: GuestRegisters + VirtualTimer {
    /// Makes this vCPU's state (stage 2, system registers, FP) the CPU's,
    /// after another VM ran. Not called between exits of the same VM.
    fn switch_in(&mut self);
    /// Saves the state `switch_in` loaded, before another VM runs.
    fn switch_out(&mut self);
    /// Runs the guest until its next exit.
    fn run(&mut self) -> GuestExit;
    /// Makes the guest take the exception `action` asks for (an
    /// `Inject...` action); false if it cannot (its vectors are unusable).
    fn reflect(&mut self, action: &Action) -> bool;
    /// Puts the vCPU back in its boot state (for a restart), forgetting
    /// every translation the guest's previous life cached (TLB entries of
    /// its VMID). Called while the vCPU is switched in.
    fn reset(&mut self);
    /// The VM has stopped for good: drop what the CPU still caches for it
    /// (TLB entries of its VMID). Called while the vCPU is switched in.
    fn release(&mut self);
}

/// What the kernel needs from the board: time, the alarm and the physical
/// interrupts the hypervisor owns.
pub trait Platform {
    /// The monotonic clock, in ticks (the same clock as
    /// [`crate::interrupts::VirtualTimerState::deadline`]).
    fn now(&self) -> u64;
    /// Programs the hypervisor's alarm for `deadline`, or disarms it.
    fn set_alarm(&self, deadline: Option<u64>);
    /// Services every pending physical interrupt (console input, the
    /// alarm, ...), raising virtual interrupts in the VMs they concern.
    /// Returns true when the user asked for the VMs' status (the kernel
    /// then calls [`Platform::report_status`]).
    fn service_interrupts(&self) -> bool;
    /// Prints one status line per VM; `describe` writes VM `n`'s state and
    /// counters.
    fn report_status(
        &self,
        describe: &dyn Fn(usize, &mut dyn core::fmt::Write) -> core::fmt::Result,
    );
    /// Waits until a physical interrupt is pending (WFI in Hyp mode, with
    /// interrupts masked: it returns, and `service_interrupts` handles it).
    fn wait_for_interrupt(&self);
    /// VM `vm` has stopped for good (powered off or stopped by its fault
    /// policy): nothing it owned should wait for it any more (console
    /// input, for one).
    fn vm_stopped(&self, vm: usize) {
        let _ = vm;
    }
}

/// A VM's RAM as the board set it up: what a restart reloads.
pub trait GuestMemory {
    /// Makes the RAM what it must be at boot: zeroed, the images copied in,
    /// and visible to a guest that starts with its MMU and caches off.
    fn load(&self);
}

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    /// Can run.
    Ready,
    /// Waiting for an interrupt (WFI/WFE).
    Waiting,
    /// Powered off by itself (PSCI SYSTEM_OFF or CPU_OFF).
    Stopped,
    /// Stopped by its fault policy.
    Faulted,
}

/// Exit counts of one VM, by what the exit was. Each exit is counted once,
/// in its kind's counter; [`VmCounters::exits`] is their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmCounters {
    /// Hypercalls and SMCs.
    pub hypercalls: u32,
    /// Emulated MMIO accesses (and MMIO accesses refused with an abort).
    pub mmio: u32,
    /// WFI/WFE.
    pub waits: u32,
    /// Other exits: trapped system registers and floating point,
    /// undefined instructions, aborts.
    pub other: u32,
    /// Faults reflected into the guest.
    pub injected_faults: u32,
    /// Restarts by SYSTEM_RESET or by the fault policy.
    pub restarts: u32,
    /// Physical interrupts that took the CPU from it.
    pub irqs: u32,
    /// Times it was given the CPU.
    pub slices: u32,
    /// Times its slice ran out while another VM was ready.
    pub preemptions: u32,
    /// Times its slice ran out with no other VM ready (it went on).
    pub ticks: u32,
}

impl VmCounters {
    /// Every exit.
    pub const fn exits(&self) -> u32 {
        self.hypercalls
            .wrapping_add(self.mmio)
            .wrapping_add(self.waits)
            .wrapping_add(self.other)
            .wrapping_add(self.irqs)
    }

    /// The exits that were neither physical interrupts nor reflected
    /// faults: the VM's progress, for the fault loop detector.
    const fn progress(&self) -> u32 {
        self.exits()
            .wrapping_sub(self.irqs)
            .wrapping_sub(self.injected_faults)
    }
}

/// One VM.
pub struct Vm<'a, V: Vcpu> {
    /// Name, for messages.
    pub name: &'static str,
    /// Current state.
    pub state: VmState,
    /// Its virtual CPU.
    pub vcpu: V,
    /// Its RAM (reloaded on a restart).
    pub memory: &'a dyn GuestMemory,
    /// Its virtual devices and hypercall services, with the tables that
    /// route exits to them.
    pub routes: Routes<'a>,
    /// What happens when it cannot take its own faults.
    pub fault_policy: &'a dyn VmFaultPolicy,
    /// Its interrupt backend: virtual interrupt controller and timer.
    pub interrupts: &'a dyn InterruptBackend,
    /// Exit counters.
    pub counters: VmCounters,
    loop_detector: FaultLoopDetector,
    /// Whether something that can change the vCPU's IRQ input happened
    /// since it was last computed (device MMIO, a physical interrupt, the
    /// timer, a new slice).
    interrupts_changed: bool,
    /// Whether the backend looks before every entry, or only after a change
    /// ([`InterruptBackend::polls_every_entry`]).
    poll_every_entry: bool,
    /// Whether the guest's timer was armed at the last entry (a polling
    /// backend is called while it is, and once after, to lower its line).
    timer_was_armed: bool,
}

impl<V: Vcpu> core::fmt::Debug for Vm<'_, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<'a, V: Vcpu> Vm<'a, V> {
    /// A VM ready to run from its vCPU's boot state.
    ///
    /// # Panics
    ///
    /// With more than [`crate::dispatch::MAX_ROUTES`] devices or services, or
    /// services that claim one function id twice (a board wiring
    /// error).
    pub fn new(
        name: &'static str,
        vcpu: V,
        memory: &'a dyn GuestMemory,
        devices: &'a [&'a dyn MmioDevice],
        services: &'a [&'a dyn HypercallDriver],
        fault_policy: &'a dyn VmFaultPolicy,
    ) -> Self {
        Vm {
            name,
            state: VmState::Ready,
            vcpu,
            memory,
            routes: Routes::new(devices, services)
                .unwrap_or_else(|error| panic!("VM '{name}': {error}")),
            fault_policy,
            interrupts: &NoInterrupts,
            counters: VmCounters::default(),
            loop_detector: FaultLoopDetector::new(),
            interrupts_changed: true,
            poll_every_entry: false,
            timer_was_armed: false,
        }
    }

    /// Writes the VM's state and counters on one line (for status reports).
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let state = match self.state {
            VmState::Ready => "ready",
            VmState::Waiting => "waiting",
            VmState::Stopped => "powered off",
            VmState::Faulted => "stopped by its fault policy",
        };
        let c = &self.counters;
        write!(
            out,
            "{}; exits {} (hypercalls {}, mmio {}, waits {}, irqs {}), injected faults {}, restarts {}, slices {}, preemptions {}, ticks {}",
            state,
            c.exits(),
            c.hypercalls,
            c.mmio,
            c.waits,
            c.irqs,
            c.injected_faults,
            c.restarts,
            c.slices,
            c.preemptions,
            c.ticks
        )
    }

    /// Gives the VM its interrupt backend.
    pub fn with_interrupts(mut self, interrupts: &'a dyn InterruptBackend) -> Self {
        self.interrupts = interrupts;
        self.poll_every_entry = interrupts.polls_every_entry();
        self
    }

    /// Whether an interrupt is pending for the VM now (a WFI completes),
    /// and if not, when to look again.
    fn poll_interrupts(&self, platform: &dyn Platform) -> crate::interrupts::Poll {
        self.interrupts.poll(&self.vcpu, platform.now())
    }

    /// Whether the interrupt backend must run before the next entry: after
    /// a change, and for a backend that polls the guest's timer while the
    /// timer is armed and once after it was (to lower the line). After a
    /// change the backend may have raised the line: it looks once more at
    /// the entry after.
    #[inline(always)]
    fn interrupts_need_a_look(&mut self) -> bool {
        if self.interrupts_changed {
            self.timer_was_armed = true;
            return true;
        }
        self.poll_every_entry && {
            let armed = crate::interrupts::VirtualTimerState::control_armed(
                self.vcpu.virtual_timer_control(),
            );
            let was_armed = core::mem::replace(&mut self.timer_was_armed, armed);
            armed || was_armed
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.state, VmState::Ready | VmState::Waiting)
    }

    fn restart(&mut self) {
        self.memory.load();
        self.vcpu.reset();
        // Every device and service back to its reset state; the board
        // checked when it built the VM that each of a VM with a restart
        // policy can be (a VM that restarts itself by PSCI SYSTEM_RESET
        // gets what its devices can do).
        let _ = self.routes.reset_all();
        self.interrupts.reset();
        self.interrupts_changed = true;
        self.counters.restarts += 1;
        self.loop_detector.progressed();
        self.state = VmState::Ready;
    }

    /// Applies the fault policy to a VM that cannot take its fault.
    /// Returns true when the policy says to stop everything.
    fn fatal_fault(&mut self) -> bool {
        match self.fault_policy.response(self.counters.restarts) {
            FaultResponse::Restart => {
                self.restart();
                false
            }
            FaultResponse::Stop => {
                self.state = VmState::Faulted;
                self.vcpu.release();
                false
            }
            FaultResponse::Panic => {
                self.state = VmState::Faulted;
                self.vcpu.release();
                true
            }
        }
    }

    /// Counts and dispatches one exit of this VM (not a physical
    /// interrupt). `None`: the guest resumes at once, the common case,
    /// decided here in a few instructions; otherwise what
    /// [`Self::carry_out`] made of the action.
    #[inline(always)]
    fn handle(&mut self, exit: &GuestExit) -> Option<Outcome> {
        match exit.trap {
            Trap::Hypercall { .. } | Trap::SecureMonitorCall => self.counters.hypercalls += 1,
            Trap::MmioRead { .. } | Trap::MmioWrite { .. } => self.counters.mmio += 1,
            Trap::WaitForInterrupt { .. } | Trap::WaitForEvent { .. } => self.counters.waits += 1,
            _ => self.counters.other += 1,
        }
        match dispatch(exit, &mut self.vcpu, &self.routes) {
            Action::Resume => None,
            Action::ResumeInterruptsChanged => {
                self.interrupts_changed = true;
                None
            }
            action => Some(self.carry_out(action)),
        }
    }

    /// Carries out an action other than resuming at once.
    #[inline(never)]
    fn carry_out(&mut self, action: Action) -> Outcome {
        match action {
            Action::Resume | Action::ResumeInterruptsChanged => Outcome::Keep,
            Action::Wait => {
                self.state = VmState::Waiting;
                Outcome::Yield
            }
            Action::StopVm => {
                self.state = VmState::Stopped;
                self.vcpu.release();
                Outcome::Yield
            }
            Action::ResetVm => {
                self.restart();
                Outcome::Keep
            }
            Action::Yield => Outcome::Yield,
            Action::InjectDataAbort { .. }
            | Action::InjectPrefetchAbort { .. }
            | Action::InjectUndefined => {
                let pc = self.vcpu.pc();
                if self.loop_detector.faulted_at(pc, self.counters.progress())
                    || !self.vcpu.reflect(&action)
                {
                    return if self.fatal_fault() {
                        Outcome::Panic
                    } else {
                        Outcome::Yield
                    };
                }
                self.loop_detector.entered(self.vcpu.pc());
                self.counters.injected_faults += 1;
                Outcome::Keep
            }
        }
    }
}

/// What an exit that did not simply resume leaves the loop to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The VM keeps the CPU.
    Keep,
    /// The VM gives up the CPU (it yields, waits, stopped or restarted by
    /// its policy).
    Yield,
    /// The VM's policy stops the hypervisor.
    Panic,
}

/// How a [`Kernel::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every VM stopped (by itself or by its policy).
    AllStopped,
    /// A VM's policy asked to stop the hypervisor; its index.
    Panicked { vm: usize },
    /// The exit budget ran out with VMs still live.
    BudgetExhausted,
}

/// The exit loop.
#[derive(Debug, Default)]
pub struct Kernel;

/// Asks the platform to print every VM's state and counters.
fn report_status<V: Vcpu>(vms: &[Vm<'_, V>], platform: &dyn Platform) {
    platform.report_status(&|index, out| match vms.get(index) {
        Some(vm) => vm.describe(out),
        None => Ok(()),
    });
}

/// "No time" where the kernel keeps times as plain u64s (no deadline is
/// that far: the clock would need centuries to get there).
const NEVER: u64 = u64::MAX;

/// The earlier of two optional times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Kernel {
    /// Runs the VMs until they all stop, at most `budget` exits.
    ///
    /// `scheduler` picks the VM and its time slice. The running VM keeps
    /// the CPU across its exits until its slice ends (the hypervisor's
    /// alarm interrupts it), it waits for an interrupt with none pending,
    /// or it stops. Before every entry the VM's interrupt backend presents
    /// its pending interrupts to the vCPU (told whether something changed
    /// them since the last entry); the alarm is set for the earliest of the slice's end,
    /// the VM's own timer and the timers of waiting VMs. A waiting VM is
    /// ready again once an interrupt is pending for it. When no VM is
    /// ready, the hypervisor sleeps (`Platform::wait_for_interrupt`) until
    /// the next interrupt.
    pub fn run<V: Vcpu>(
        &self,
        vms: &mut [Vm<'_, V>],
        platform: &dyn Platform,
        scheduler: &dyn Scheduler,
        budget: u32,
    ) -> RunOutcome {
        let mut loaded: Option<usize> = None;
        let mut remaining = budget;
        // The alarm as last programmed (NEVER: disarmed or already fired).
        // Times are plain u64s here, NEVER for none, so that the check at
        // every exit is a compare.
        let mut armed = NEVER;
        loop {
            let now = platform.now();
            // Waiting VMs with an interrupt pending are ready again; the
            // others' timers say when to look again.
            let mut wake_at = None;
            for vm in vms.iter_mut().filter(|vm| vm.state == VmState::Waiting) {
                let poll = vm.poll_interrupts(platform);
                if poll.pending {
                    vm.state = VmState::Ready;
                } else {
                    wake_at = earliest(wake_at, poll.wake_at);
                }
            }
            let decision = scheduler.next(vms.len(), &|index| vms[index].state == VmState::Ready);
            let SchedulingDecision::Run { vm: current, slice } = decision else {
                if !vms.iter().any(Vm::is_live) {
                    return RunOutcome::AllStopped;
                }
                if wake_at.unwrap_or(NEVER) != armed {
                    platform.set_alarm(wake_at);
                }
                armed = NEVER;
                platform.wait_for_interrupt();
                if platform.service_interrupts() {
                    report_status(vms, platform);
                }
                continue;
            };
            if loaded != Some(current) {
                if let Some(previous) = loaded {
                    vms[previous].interrupts.switch_out();
                    vms[previous].vcpu.switch_out();
                }
                vms[current].vcpu.switch_in();
                vms[current].interrupts.switch_in();
                loaded = Some(current);
            }
            vms[current].counters.slices += 1;
            vms[current].interrupts_changed = true;
            let mut slice_end = slice.map(|slice| now + slice);
            // The alarm but for the running VM's own timer: the slice's end
            // or a waiting VM's timer (they change only at a tick).
            let mut alarm_without_timer = earliest(slice_end, wake_at).unwrap_or(NEVER);
            let reason = loop {
                if remaining == 0 {
                    return if vms.iter().any(Vm::is_live) {
                        RunOutcome::BudgetExhausted
                    } else {
                        RunOutcome::AllStopped
                    };
                }
                remaining -= 1;
                let vm = &mut vms[current];
                // Before the entry, the backend presents the VM's
                // interrupts when something can have changed them (and a
                // polling backend looks at the guest's timer while it is
                // armed). Only then can the alarm need moving: the slice's
                // end and the waiting VMs' timers change only along with a
                // change. The common exit pays for one flag (and, with a
                // polling backend, one CNTV_CTL read).
                if vm.interrupts_need_a_look() {
                    let changed = core::mem::replace(&mut vm.interrupts_changed, false);
                    let timer = vm
                        .interrupts
                        .before_entry(&vm.vcpu, &|| platform.now(), changed);
                    let alarm = match timer {
                        None => alarm_without_timer,
                        Some(timer) => timer.min(alarm_without_timer),
                    };
                    if alarm != armed {
                        platform.set_alarm((alarm != NEVER).then_some(alarm));
                        armed = alarm;
                    }
                }
                let exit = vm.vcpu.run();
                if matches!(exit.trap, Trap::Irq | Trap::Fiq) {
                    vm.counters.irqs += 1;
                    vm.interrupts_changed = true;
                    if platform.service_interrupts() {
                        report_status(vms, platform);
                    }
                    // The alarm is one-shot: whatever fired, program it
                    // afresh before the next entry.
                    armed = NEVER;
                    let now = platform.now();
                    let slice_over = slice_end.is_some_and(|end| now >= end);
                    let woken = wake_at.is_some_and(|at| now >= at)
                        || vms.iter().any(|other| {
                            other.state == VmState::Waiting
                                && other.poll_interrupts(platform).pending
                        });
                    let others_ready = vms
                        .iter()
                        .enumerate()
                        .any(|(index, other)| index != current && other.state == VmState::Ready);
                    if (slice_over && others_ready) || woken {
                        vms[current].counters.preemptions += 1;
                        break StopReason::Preempted;
                    }
                    if slice_over {
                        // The scheduling tick with nobody else ready: the
                        // VM carries on with a fresh slice (the alarm must
                        // not be left at a time already past).
                        slice_end = slice.map(|slice| now + slice);
                        alarm_without_timer = earliest(slice_end, wake_at).unwrap_or(NEVER);
                        vms[current].counters.ticks += 1;
                    }
                    continue;
                }
                // The lean path: an exit its device or service handled
                // that leaves the VM running goes straight back in.
                let Some(outcome) = vm.handle(&exit) else {
                    continue;
                };
                if !vm.is_live() {
                    platform.vm_stopped(current);
                }
                if outcome == Outcome::Panic {
                    return RunOutcome::Panicked { vm: current };
                }
                if vm.state == VmState::Waiting {
                    // WFI completes at once when an interrupt is pending;
                    // the backend looked at its state and must present it.
                    if vm.poll_interrupts(platform).pending {
                        vm.state = VmState::Ready;
                        vm.interrupts_changed = true;
                        continue;
                    }
                    break StopReason::Waiting;
                }
                if outcome == Outcome::Yield {
                    break if vm.state == VmState::Ready {
                        StopReason::Preempted
                    } else {
                        StopReason::Stopped
                    };
                }
            };
            scheduler.stopped(current, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dispatch::{HypercallOutcome, NOT_SUPPORTED};
    use crate::interrupts::VirtualTimerState;
    use crate::scheduler::RoundRobin;
    use crate::trap::AccessSize;
    use core::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::string::String;
    use std::vec::Vec;

    type Log = Rc<RefCell<Vec<String>>>;

    /// A vCPU that plays a script of exits and logs what the kernel does.
    /// Each run advances the fake clock by 10 ticks.
    struct ScriptedVcpu {
        name: char,
        script: Vec<(Trap, u32)>,
        next: usize,
        r: [u32; 15],
        pc: u32,
        reflectable: bool,
        /// r0 as each run found it (the previous exit's result).
        r0_seen: Vec<u32>,
        /// The virtual IRQ input at each run.
        irq_seen: Vec<bool>,
        /// The virtual IRQ input, as the fake backend last set it.
        irq: Rc<Cell<bool>>,
        timer: VirtualTimerState,
        clock: Rc<Cell<u64>>,
        log: Log,
    }

    impl ScriptedVcpu {
        fn new(name: char, script: Vec<(Trap, u32)>, world: &World) -> Self {
            ScriptedVcpu {
                name,
                script,
                next: 0,
                r: [0; 15],
                pc: 0x4000_0000,
                reflectable: true,
                r0_seen: Vec::new(),
                irq_seen: Vec::new(),
                irq: Rc::new(Cell::new(false)),
                timer: VirtualTimerState::default(),
                clock: world.clock.clone(),
                log: world.log.clone(),
            }
        }

        fn note(&self, what: &str) {
            self.log
                .borrow_mut()
                .push(std::format!("{} {}", what, self.name));
        }
    }

    impl GuestRegisters for ScriptedVcpu {
        fn register(&self, n: u8) -> u32 {
            self.r[n as usize]
        }
        fn set_register(&mut self, n: u8, value: u32) {
            self.r[n as usize] = value;
        }
        fn pc(&self) -> u32 {
            self.pc
        }
        fn set_pc(&mut self, pc: u32) {
            self.pc = pc;
        }
    }

    impl Vcpu for ScriptedVcpu {
        fn switch_in(&mut self) {
            self.note("in");
        }
        fn switch_out(&mut self) {
            self.note("out");
        }
        fn run(&mut self) -> GuestExit {
            let (trap, r0) = self.script[self.next % self.script.len()];
            self.next += 1;
            self.r0_seen.push(self.r[0]);
            self.irq_seen.push(self.irq.get());
            self.r[0] = r0;
            self.clock.set(self.clock.get() + 10);
            GuestExit {
                trap,
                instruction_bytes: 4,
            }
        }
        fn reflect(&mut self, _action: &Action) -> bool {
            self.note("reflect");
            self.reflectable
        }
        fn reset(&mut self) {
            self.note("reset");
            self.next = 0;
        }
        fn release(&mut self) {
            self.note("release");
        }
    }

    impl VirtualTimer for ScriptedVcpu {
        fn virtual_timer_control(&self) -> u32 {
            self.timer.control
        }
        fn virtual_timer_deadline(&self) -> u64 {
            self.timer.deadline
        }
    }

    /// The fake board: a clock, an alarm, and interrupts that arrive when
    /// the hypervisor sleeps (`input` names the VM whose line rises).
    struct World {
        clock: Rc<Cell<u64>>,
        alarm: Cell<Option<u64>>,
        sleeps: Cell<u32>,
        log: Log,
        /// Raised by `service_interrupts` after a sleep.
        input: Rc<Cell<bool>>,
    }

    impl World {
        fn new() -> World {
            World {
                clock: Rc::new(Cell::new(0)),
                alarm: Cell::new(None),
                sleeps: Cell::new(0),
                log: Rc::new(RefCell::new(Vec::new())),
                input: Rc::new(Cell::new(false)),
            }
        }
    }

    impl Platform for World {
        fn now(&self) -> u64 {
            self.clock.get()
        }
        fn set_alarm(&self, deadline: Option<u64>) {
            self.alarm.set(deadline);
        }
        fn service_interrupts(&self) -> bool {
            false
        }
        fn report_status(
            &self,
            describe: &dyn Fn(usize, &mut dyn core::fmt::Write) -> core::fmt::Result,
        ) {
            let mut line = String::new();
            let _ = describe(0, &mut line);
            self.log.borrow_mut().push(line);
        }
        fn vm_stopped(&self, vm: usize) {
            self.log.borrow_mut().push(std::format!("stopped {vm}"));
        }
        fn wait_for_interrupt(&self) {
            self.sleeps.set(self.sleeps.get() + 1);
            assert!(self.sleeps.get() < 100, "slept forever");
            // Time passes to the alarm, or input arrives.
            match self.alarm.get() {
                Some(deadline) => self.clock.set(self.clock.get().max(deadline)),
                None => self.input.set(true),
            }
        }
    }

    /// Interrupts of one VM: an input line (console) and a timer that is
    /// pending once `now` reaches its deadline; the vCPU's IRQ input
    /// (`irq`, shared with the scripted vCPU) follows them.
    struct FakeInterrupts {
        input: Rc<Cell<bool>>,
        timer_fired: Cell<bool>,
        irq: Rc<Cell<bool>>,
    }

    impl FakeInterrupts {
        fn new(input: Rc<Cell<bool>>, vcpu: &ScriptedVcpu) -> Self {
            FakeInterrupts {
                input,
                timer_fired: Cell::new(false),
                irq: vcpu.irq.clone(),
            }
        }
        fn update_timer(&self, timer: &dyn VirtualTimer, now: u64) -> Option<u64> {
            let timer = timer.virtual_timer();
            let fired = timer.fired(now);
            self.timer_fired.set(fired);
            (timer.armed() && !fired).then_some(timer.deadline)
        }
    }

    impl InterruptBackend for FakeInterrupts {
        fn switch_in(&self) {}
        fn switch_out(&self) {}
        fn before_entry(
            &self,
            timer: &dyn VirtualTimer,
            now: &dyn Fn() -> u64,
            _changed: bool,
        ) -> Option<u64> {
            let wake_at = self.update_timer(timer, now());
            self.irq.set(self.input.get() || self.timer_fired.get());
            wake_at
        }
        fn poll(&self, timer: &dyn VirtualTimer, now: u64) -> crate::interrupts::Poll {
            let wake_at = self.update_timer(timer, now);
            let pending = self.input.get() || self.timer_fired.get();
            crate::interrupts::Poll {
                pending,
                wake_at: if pending { None } else { wake_at },
            }
        }
        fn reset(&self) {}
    }

    /// PSCI SYSTEM_OFF / SYSTEM_RESET and Capvisor's YIELD.
    struct PowerOff;

    impl HypercallDriver for PowerOff {
        fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
            &[0x8400_0008..=0x8400_0009, 0x8600_0005..=0x8600_0005]
        }
        fn call(&self, function: u32, _arguments: [u32; 7]) -> HypercallOutcome {
            match function {
                0x8400_0008 => HypercallOutcome::StopVm,
                0x8400_0009 => HypercallOutcome::ResetVm,
                _ => HypercallOutcome::Yield([Some(0), None, None, None]),
            }
        }
    }

    /// RAM that logs its reloads.
    struct LoggedMemory(char, Log);

    impl GuestMemory for LoggedMemory {
        fn load(&self) {
            self.1.borrow_mut().push(std::format!("load {}", self.0));
        }
    }

    /// The services every test VM has.
    fn services() -> &'static [&'static dyn HypercallDriver] {
        std::boxed::Box::leak(std::boxed::Box::new([&PowerOff as &dyn HypercallDriver]))
    }

    /// A test VM named `name` (its RAM logs as `name`'s first letter).
    fn vm<'a>(
        name: &'static str,
        vcpu: ScriptedVcpu,
        world: &World,
        policy: &'a dyn VmFaultPolicy,
    ) -> Vm<'a, ScriptedVcpu> {
        let letter = vcpu.name;
        Vm::new(name, vcpu, memory(letter, world), &[], services(), policy)
    }

    /// A leaked [`LoggedMemory`] (tests only), so a VM table can borrow it.
    fn memory(name: char, world: &World) -> &'static LoggedMemory {
        std::boxed::Box::leak(std::boxed::Box::new(LoggedMemory(name, world.log.clone())))
    }

    const HVC: Trap = Trap::Hypercall { immediate: 0 };
    const WFI: Trap = Trap::WaitForInterrupt { condition: None };
    const IRQ: Trap = Trap::Irq;
    const OFF: (Trap, u32) = (HVC, 0x8400_0008);
    const YIELD: (Trap, u32) = (HVC, 0x8600_0005);
    const UNCLAIMED: Trap = Trap::MmioRead {
        ipa: 0x0a00_0000,
        va: 0x0a00_0000,
        size: AccessSize::Word,
        sign_extend: false,
        register: 1,
    };
    /// No time slices: a VM runs until it yields, waits or stops.
    fn no_slices() -> RoundRobin {
        RoundRobin::new(u64::MAX / 2)
    }

    struct Fixed(FaultResponse);
    impl VmFaultPolicy for Fixed {
        fn response(&self, _restarts: u32) -> FaultResponse {
            self.0
        }
    }

    #[test]
    fn round_robin_on_yield_until_all_stop() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(HVC, 0x1), YIELD, YIELD, OFF], &world);
        let b = ScriptedVcpu::new('b', std::vec![YIELD, OFF], &world);
        let mut vms = [vm("a", a, &world, &policy), vm("b", b, &world, &policy)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        assert_eq!(
            *world.log.borrow(),
            [
                "in a",
                "out a",
                "in b",
                "out b",
                "in a",
                "out a",
                "in b",
                "release b",
                "stopped 1",
                "out b",
                "in a",
                "release a",
                "stopped 0"
            ]
        );
        assert_eq!(vms[0].vcpu.r0_seen[1], NOT_SUPPORTED, "unowned id 0x1");
        assert_eq!(vms[0].vcpu.r0_seen[2], 0, "YIELD returns 0");
        assert_eq!(
            (
                vms[0].counters.exits(),
                vms[0].counters.hypercalls,
                vms[0].counters.slices
            ),
            (4, 4, 3)
        );
        assert_eq!(
            (vms[0].state, vms[1].state),
            (VmState::Stopped, VmState::Stopped)
        );
    }

    #[test]
    fn wfi_blocks_until_an_interrupt_is_pending() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        // 'a' waits for input; 'b' yields twice and stops. Nothing is
        // pending for 'a' until the hypervisor sleeps (then input comes).
        let a = ScriptedVcpu::new('a', std::vec![(WFI, 0), OFF], &world);
        let b = ScriptedVcpu::new('b', std::vec![YIELD, YIELD, OFF], &world);
        let a_irq = FakeInterrupts::new(world.input.clone(), &a);
        let mut vms = [
            vm("a", a, &world, &policy).with_interrupts(&a_irq),
            vm("b", b, &world, &policy),
        ];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        // 'a' was not scheduled while blocked: one slice to block, one
        // after the input; 'b' had its three turns without it.
        assert_eq!((vms[0].counters.slices, vms[1].counters.slices), (2, 3));
        assert_eq!(world.sleeps.get(), 1, "slept once, with 'b' done");
        assert_eq!(
            vms[0].vcpu.irq_seen,
            [false, true],
            "HCR.VI follows the line"
        );
        assert_eq!(vms[0].counters.waits, 1);
    }

    #[test]
    fn wfi_with_an_interrupt_pending_completes_at_once() {
        let world = World::new();
        world.input.set(true);
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(WFI, 0), (WFI, 0), OFF], &world);
        let irq = FakeInterrupts::new(world.input.clone(), &a);
        let mut vms = [vm("a", a, &world, &policy).with_interrupts(&irq)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        assert_eq!((vms[0].counters.slices, world.sleeps.get()), (1, 0));
    }

    #[test]
    fn a_waiting_vm_wakes_at_its_timer_deadline() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let mut a = ScriptedVcpu::new('a', std::vec![(WFI, 0), OFF], &world);
        a.timer = VirtualTimerState {
            control: VirtualTimerState::ENABLE,
            deadline: 5_000,
        };
        let irq = FakeInterrupts::new(Rc::new(Cell::new(false)), &a);
        let mut vms = [vm("a", a, &world, &policy).with_interrupts(&irq)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        // The hypervisor slept with the alarm at the guest's deadline.
        assert_eq!(world.sleeps.get(), 1);
        assert!(world.clock.get() >= 5_000);
        assert_eq!(vms[0].vcpu.irq_seen, [false, true]);
    }

    #[test]
    fn slices_end_at_the_alarm_when_another_vm_is_ready() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        // Both VMs compute (MMIO-free hypercalls) and are interrupted by
        // the alarm (IRQ exits); each run takes 10 ticks, slices are 25.
        let script = std::vec![(HVC, 0x1), (IRQ, 0), (HVC, 0x1), (IRQ, 0)];
        let mut a_script = script.clone();
        a_script.extend([OFF]);
        let a = ScriptedVcpu::new('a', a_script, &world);
        let b = ScriptedVcpu::new('b', script, &world);
        let mut vms = [vm("a", a, &world, &policy), vm("b", b, &world, &policy)];
        let scheduler = RoundRobin::new(25);
        assert_eq!(
            Kernel.run(&mut vms, &world, &scheduler, 40),
            RunOutcome::BudgetExhausted
        );
        assert!(vms[0].counters.preemptions >= 1, "{:?}", vms[0].counters);
        assert!(vms[1].counters.preemptions >= 1, "{:?}", vms[1].counters);
        assert_eq!(vms[0].state, VmState::Stopped);
        // The alarm was programmed for the end of a slice.
        assert!(world.alarm.get().is_some());
    }

    /// A polling backend that counts its calls.
    struct CountingBackend(Cell<u32>);

    impl InterruptBackend for CountingBackend {
        fn switch_in(&self) {}
        fn switch_out(&self) {}
        fn before_entry(
            &self,
            _timer: &dyn VirtualTimer,
            _now: &dyn Fn() -> u64,
            _changed: bool,
        ) -> Option<u64> {
            self.0.set(self.0.get() + 1);
            None
        }
        fn poll(&self, _timer: &dyn VirtualTimer, _now: u64) -> crate::interrupts::Poll {
            crate::interrupts::Poll::default()
        }
        fn reset(&self) {}
    }

    #[test]
    fn a_polling_backend_is_skipped_while_the_guest_timer_is_off_and_nothing_changed() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        // Ten hypercalls, then power off: the first entry (a new slice) is
        // a change; the nine after it find the timer off and were off.
        let mut script = std::vec![(HVC, 0x1); 10];
        script.push(OFF);
        let a = ScriptedVcpu::new('a', script, &world);
        let backend = CountingBackend(Cell::new(0));
        let mut vms = [vm("a", a, &world, &policy).with_interrupts(&backend)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        // The slice's first entry, and the one after it (after a change
        // the kernel looks once more); none for the rest.
        assert_eq!(backend.0.get(), 2);
        // With the timer armed, every entry calls it.
        let mut script = std::vec![(HVC, 0x1); 10];
        script.push(OFF);
        let mut b = ScriptedVcpu::new('b', script, &world);
        b.timer = VirtualTimerState {
            control: VirtualTimerState::ENABLE,
            deadline: u64::MAX,
        };
        let backend = CountingBackend(Cell::new(0));
        let mut vms = [vm("b", b, &world, &policy).with_interrupts(&backend)];
        Kernel.run(&mut vms, &world, &no_slices(), 100);
        assert_eq!(backend.0.get(), 11);
    }

    /// A device at 0x0900_0000 whose register 0 is status (reading it
    /// changes no interrupt) and register 4 an acknowledge (it does).
    struct StatusAndAcknowledge;

    impl MmioDevice for StatusAndAcknowledge {
        fn name(&self) -> &'static str {
            "status-and-acknowledge"
        }
        fn base(&self) -> u64 {
            0x0900_0000
        }
        fn size(&self) -> u64 {
            0x1000
        }
        fn read(&self, _offset: u64, _size: AccessSize) -> Result<u32, crate::dispatch::MmioError> {
            Ok(0)
        }
        fn write(&self, _: u64, _: AccessSize, _: u32) -> Result<(), crate::dispatch::MmioError> {
            Ok(())
        }
        fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
            write || offset == 4
        }
    }

    /// A backend that looks only after a change, recording the entries at
    /// which it was called (each run advances the clock by 10: the entry
    /// number is the clock's tens, plus one).
    struct ChangeRecorder(RefCell<Vec<u64>>);

    impl InterruptBackend for ChangeRecorder {
        fn switch_in(&self) {}
        fn switch_out(&self) {}
        fn before_entry(
            &self,
            _timer: &dyn VirtualTimer,
            now: &dyn Fn() -> u64,
            changed: bool,
        ) -> Option<u64> {
            assert!(changed, "called without a change");
            self.0.borrow_mut().push(now() / 10 + 1);
            None
        }
        fn polls_every_entry(&self) -> bool {
            false
        }
        fn poll(&self, _timer: &dyn VirtualTimer, _now: u64) -> crate::interrupts::Poll {
            crate::interrupts::Poll::default()
        }
        fn reset(&self) {}
    }

    #[test]
    fn interrupts_are_presented_again_only_after_an_exit_that_can_change_them() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let read = |offset: u32| Trap::MmioRead {
            ipa: 0x0900_0000 + u64::from(offset),
            va: 0x0900_0000 + offset,
            size: AccessSize::Word,
            sign_extend: false,
            register: 1,
        };
        let write = Trap::MmioWrite {
            ipa: 0x0900_0000,
            va: 0x0900_0000,
            size: AccessSize::Word,
            register: 1,
        };
        // Exits 1-7: status read, hypercall, acknowledge read, status
        // read, write, an IRQ, a refused access; then power off.
        let script = std::vec![
            (read(0), 0),
            (HVC, 0x1),
            (read(4), 0),
            (read(0), 0),
            (write, 0),
            (IRQ, 0),
            (UNCLAIMED, 0),
            OFF,
        ];
        let a = ScriptedVcpu::new('a', script, &world);
        let backend = ChangeRecorder(RefCell::new(Vec::new()));
        let devices: &'static [&'static dyn MmioDevice] = &[&StatusAndAcknowledge];
        let mut vms = [
            Vm::new("a", a, memory('a', &world), devices, services(), &policy)
                .with_interrupts(&backend),
        ];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        // Before the first entry (a new slice), after the acknowledge,
        // after the write and after the IRQ: entries 1, 4, 6 and 7. The
        // status reads, the hypercall and the refused access (the guest
        // takes an abort) cost no look.
        assert_eq!(*backend.0.borrow(), std::vec![1, 4, 6, 7]);
        let counters = vms[0].counters;
        assert_eq!(
            (
                counters.mmio,
                counters.hypercalls,
                counters.irqs,
                counters.injected_faults
            ),
            (5, 2, 1, 1)
        );
        assert_eq!(counters.exits(), 8);
    }

    #[test]
    fn an_irq_does_not_preempt_the_only_ready_vm() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new(
            'a',
            std::vec![(IRQ, 0), (IRQ, 0), (IRQ, 0), (IRQ, 0), OFF],
            &world,
        );
        let mut vms = [vm("a", a, &world, &policy)];
        let scheduler = RoundRobin::new(15);
        assert_eq!(
            Kernel.run(&mut vms, &world, &scheduler, 100),
            RunOutcome::AllStopped
        );
        assert_eq!(
            (
                vms[0].counters.slices,
                vms[0].counters.preemptions,
                vms[0].counters.irqs
            ),
            (1, 0, 4)
        );
    }

    #[test]
    fn a_vm_describes_its_state_and_counters() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(HVC, 0x1), OFF], &world);
        let mut vms = [vm("a", a, &world, &policy)];
        Kernel.run(&mut vms, &world, &no_slices(), 100);
        let mut line = String::new();
        vms[0].describe(&mut line).unwrap();
        assert_eq!(
            line,
            "powered off; exits 2 (hypercalls 2, mmio 0, waits 0, irqs 0), injected faults 0, restarts 0, slices 1, preemptions 0, ticks 0"
        );
        report_status(&vms, &world);
        assert_eq!(world.log.borrow().last(), Some(&line));
    }

    #[test]
    fn a_lone_vm_gets_fresh_slices_and_the_alarm_is_never_left_in_the_past() {
        struct AlarmCheck<'w>(&'w World);
        impl Platform for AlarmCheck<'_> {
            fn now(&self) -> u64 {
                self.0.now()
            }
            fn set_alarm(&self, deadline: Option<u64>) {
                if let Some(deadline) = deadline {
                    assert!(deadline > self.0.now(), "alarm set in the past");
                }
                self.0.set_alarm(deadline)
            }
            fn service_interrupts(&self) -> bool {
                false
            }
            fn report_status(
                &self,
                _describe: &dyn Fn(usize, &mut dyn core::fmt::Write) -> core::fmt::Result,
            ) {
            }
            fn wait_for_interrupt(&self) {
                self.0.wait_for_interrupt()
            }
        }
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        // Every run takes 10 ticks; the slice is 25, so the second IRQ
        // comes after the slice ended.
        let mut script = std::vec![(HVC, 0x1), (IRQ, 0)];
        script.extend([(HVC, 0x1), (IRQ, 0), (HVC, 0x1), (IRQ, 0), OFF]);
        let a = ScriptedVcpu::new('a', script, &world);
        let mut vms = [vm("a", a, &world, &policy)];
        let scheduler = RoundRobin::new(25);
        assert_eq!(
            Kernel.run(&mut vms, &AlarmCheck(&world), &scheduler, 100),
            RunOutcome::AllStopped
        );
        let counters = vms[0].counters;
        assert_eq!((counters.slices, counters.preemptions), (1, 0));
        assert!(counters.ticks >= 1, "{counters:?}");
    }

    #[test]
    fn faults_are_reflected_and_counted() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Panic);
        let a = ScriptedVcpu::new('a', std::vec![(UNCLAIMED, 0), OFF], &world);
        let mut vms = [vm("a", a, &world, &policy)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        assert_eq!(vms[0].counters.injected_faults, 1);
        assert_eq!(vms[0].counters.mmio, 1);
        assert!(world.log.borrow().contains(&"reflect a".into()));
    }

    #[test]
    fn a_fault_loop_goes_to_the_policy_and_others_carry_on() {
        let world = World::new();
        let stop = Fixed(FaultResponse::Stop);
        let looping = ScriptedVcpu::new('l', std::vec![(UNCLAIMED, 0)], &world);
        let healthy = ScriptedVcpu::new('h', std::vec![YIELD, YIELD, OFF], &world);
        let mut vms = [
            vm("looping", looping, &world, &stop),
            vm("healthy", healthy, &world, &stop),
        ];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 1000),
            RunOutcome::AllStopped
        );
        assert_eq!(vms[0].state, VmState::Faulted);
        assert_eq!(vms[1].state, VmState::Stopped);
        // The scripted vCPU stays at its PC when a fault is reflected, so it
        // looks like a guest faulting at the vector it was just sent to.
        assert_eq!(
            vms[0].counters.injected_faults,
            crate::fault_policy::VECTOR_FAULT_LIMIT
        );
    }

    #[test]
    fn unreflectable_fault_restarts_then_panics_by_policy() {
        struct RestartOnce;
        impl VmFaultPolicy for RestartOnce {
            fn response(&self, restarts: u32) -> FaultResponse {
                if restarts == 0 {
                    FaultResponse::Restart
                } else {
                    FaultResponse::Panic
                }
            }
        }
        let world = World::new();
        let mut broken = ScriptedVcpu::new('a', std::vec![(UNCLAIMED, 0)], &world);
        broken.reflectable = false;
        let mut vms = [vm("broken", broken, &world, &RestartOnce)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 100),
            RunOutcome::Panicked { vm: 0 }
        );
        assert_eq!(vms[0].counters.restarts, 1);
        let log = world.log.borrow();
        let load = log.iter().position(|line| line == "load a");
        let reset = log.iter().position(|line| line == "reset a");
        assert!(
            load.is_some() && load < reset,
            "a restart reloads RAM, then resets the vCPU: {log:?}"
        );
        assert_eq!(
            log.iter()
                .rev()
                .take(2)
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["stopped 0", "release a"],
            "released, and the platform told"
        );
    }

    #[test]
    fn system_reset_restarts_and_budget_is_reported() {
        let world = World::new();
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(HVC, 0x8400_0009)], &world);
        let mut vms = [vm("a", a, &world, &policy)];
        assert_eq!(
            Kernel.run(&mut vms, &world, &no_slices(), 5),
            RunOutcome::BudgetExhausted
        );
        assert_eq!(vms[0].counters.restarts, 5);
    }
}
