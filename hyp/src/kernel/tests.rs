// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host tests of the exit loop, with scripted fakes of the vCPU, the board
//! and the capsules.

extern crate std;
use super::*;
use crate::dispatch::{Action, GuestRegisters, HypercallDriver, MmioDevice};
use crate::dispatch::{HypercallOutcome, NOT_SUPPORTED};
use crate::fault_policy::{FaultResponse, VmFaultPolicy};
use crate::interrupts::VirtualTimerState;
use crate::interrupts::{InterruptBackend, VirtualTimer};
use crate::psci::VcpuPower;
use crate::scheduler::RoundRobin;
use crate::trap::AccessSize;
use crate::trap::GuestExit;
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
    /// The PC at each run.
    pc_seen: Vec<u32>,
    /// Where its script starts after each reset (from the top once
    /// this runs out).
    restart_at: std::collections::VecDeque<usize>,
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
            pc_seen: Vec::new(),
            restart_at: std::collections::VecDeque::new(),
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

impl ArchVcpu for ScriptedVcpu {
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
        self.pc_seen.push(self.pc);
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
        self.next = self.restart_at.pop_front().unwrap_or(0);
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
    fn report_status(&self) {
        self.log.borrow_mut().push("status".into());
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

/// A test VM named `name` with one vCPU (its RAM logs as `name`'s
/// first letter; its id is that letter's place in the alphabet).
fn vm<'a>(
    name: &'static str,
    vcpu: ScriptedVcpu,
    world: &World,
    policy: &'a dyn VmFaultPolicy,
) -> VirtualCpu<'a, ScriptedVcpu> {
    solo(name, vcpu, world, policy, &[])
}

/// A one-vCPU VM named `name` (its RAM logs as the vCPU's letter; its id
/// is that letter's place in the alphabet), reaching `devices` and
/// [`services`] with no lock ([`OneCpu`]).
fn solo<'a>(
    name: &'static str,
    vcpu: ScriptedVcpu,
    world: &World,
    policy: &'a dyn VmFaultPolicy,
    devices: &'a [&'a dyn MmioDevice],
) -> VirtualCpu<'a, ScriptedVcpu> {
    let letter = vcpu.name;
    let id = (letter as u8 - b'a') as usize;
    let vm = std::boxed::Box::leak(std::boxed::Box::new(Vm::new(name, id)));
    let objects = VcpuObjects::new(devices, services(), memory(letter, world), policy).unwrap();
    VirtualCpu::new(vm, 0, vcpu, OneCpu::new().guard(objects).into())
}

/// Gives a test vCPU an interrupt backend.
trait WithInterrupts<'a> {
    fn with_interrupts(self, backend: &'a dyn InterruptBackend) -> Self;
}

impl<'a> WithInterrupts<'a> for VirtualCpu<'a, ScriptedVcpu> {
    fn with_interrupts(self, backend: &'a dyn InterruptBackend) -> Self {
        let objects = self
            .objects
            .map(|objects| objects.clone().with_interrupts(backend));
        VirtualCpu::new(self.vm, self.index, self.arch, objects)
    }
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
    assert_eq!(vms[0].arch.r0_seen[1], NOT_SUPPORTED, "unowned id 0x1");
    assert_eq!(vms[0].arch.r0_seen[2], 0, "YIELD returns 0");
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
        (VcpuState::Stopped, VcpuState::Stopped)
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
        vms[0].arch.irq_seen,
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
    assert_eq!(vms[0].arch.irq_seen, [false, true]);
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
    assert_eq!(vms[0].state, VcpuState::Stopped);
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
    let mut vms = [solo("a", a, &world, &policy, devices).with_interrupts(&backend)];
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
    let mut summary = String::new();
    vms[0].vm.describe(&mut summary).unwrap();
    assert_eq!(summary, line, "one vCPU: the VM's line is its vCPU's");
    report_status(&vms, &world);
    assert_eq!(
        world.log.borrow().last().map(String::as_str),
        Some("status")
    );
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
        fn report_status(&self) {}
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
    assert_eq!(vms[0].state, VcpuState::Faulted);
    assert_eq!(vms[1].state, VcpuState::Stopped);
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

/// A kicker that records the CPUs it kicks.
#[derive(Default)]
struct Kicks(std::sync::Mutex<Vec<usize>>);

impl CpuKick for Kicks {
    fn kick(&self, cpu: usize) {
        self.0.lock().unwrap().push(cpu);
    }
}

/// PSCI's power calls as a test service: 0x8600_0010 CPU_ON of vCPU 1
/// at 0x4000_1000 with context 7, 0x8600_0011 CPU_OFF, 0x8600_0012
/// AFFINITY_INFO of vCPU 1.
struct PowerCalls<'a>(&'a Vm<'a>);

impl HypercallDriver for PowerCalls<'_> {
    fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
        &[0x8600_0010..=0x8600_0012]
    }
    fn call(&self, function: u32, _arguments: [u32; 7]) -> HypercallOutcome {
        match function {
            0x8600_0010 => HypercallOutcome::value(self.0.cpu_on(1, 0x4000_1000, 7)),
            0x8600_0011 => HypercallOutcome::CpuOff,
            _ => HypercallOutcome::value(self.0.affinity_info(1)),
        }
    }
}

const CPU_ON_1: (Trap, u32) = (HVC, 0x8600_0010);
const CPU_OFF: (Trap, u32) = (HVC, 0x8600_0011);
const AFFINITY_1: (Trap, u32) = (HVC, 0x8600_0012);
const RESET: (Trap, u32) = (HVC, 0x8400_0009);

/// A VM with two vCPUs on CPUs 0 and 1 (run here by one kernel), RAM
/// at 0x4000_0000, its RAM logging as 'x', and the two scripts.
fn pair<'a>(
    world: &World,
    kicks: &'a Kicks,
    policy: &'a dyn VmFaultPolicy,
    first: Vec<(Trap, u32)>,
    second: Vec<(Trap, u32)>,
) -> [VirtualCpu<'a, ScriptedVcpu>; 2] {
    let vm: &'a Vm<'a> = std::boxed::Box::leak(std::boxed::Box::new(
        Vm::new("pair", 0).with_vcpus(&[0, 1], kicks, (0x4000_0000, 0x0100_0000)),
    ));
    let services: &'a [&'a dyn HypercallDriver] = std::boxed::Box::leak(std::boxed::Box::new([
        &PowerOff as &dyn HypercallDriver,
        std::boxed::Box::leak(std::boxed::Box::new(PowerCalls(vm))),
    ]));
    let objects = VcpuObjects::new(&[], services, memory('x', world), policy).unwrap();
    let mutex: &'a VmMutex = std::boxed::Box::leak(std::boxed::Box::new(VmMutex::new()));
    #[allow(unsafe_code)]
    // SAFETY: the VM's objects (its RAM log, policy and services) are
    // reached only through these two guards.
    let [first_objects, second_objects] =
        unsafe { [mutex.guard(objects.clone()), mutex.guard(objects)] };
    [
        VirtualCpu::new(
            vm,
            0,
            ScriptedVcpu::new('a', first, world),
            first_objects.into(),
        ),
        VirtualCpu::new(
            vm,
            1,
            ScriptedVcpu::new('b', second, world),
            second_objects.into(),
        ),
    ]
}

#[test]
fn cpu_on_starts_a_vcpu_at_its_entry_and_the_vm_stops_with_its_last_vcpu() {
    let world = World::new();
    let kicks = Kicks::default();
    let policy = Fixed(FaultResponse::Stop);
    let mut vcpus = pair(
        &world,
        &kicks,
        &policy,
        std::vec![AFFINITY_1, CPU_ON_1, CPU_ON_1, YIELD, AFFINITY_1, CPU_OFF],
        std::vec![CPU_OFF],
    );
    assert_eq!(vcpus[1].state, VcpuState::Off, "vCPU 1 waits for CPU_ON");
    assert_eq!(
        Kernel.run(&mut vcpus, &world, &no_slices(), 100),
        RunOutcome::AllStopped
    );
    // AFFINITY_INFO: off; CPU_ON: success, then already on; after it
    // ran, on.
    assert_eq!(
        vcpus[0].arch.r0_seen[1..5],
        [
            crate::psci::AFFINITY_OFF,
            crate::psci::SUCCESS,
            crate::psci::ON_PENDING,
            0
        ]
    );
    // vCPU 1 started from its reset state at the entry, r0 = context.
    assert_eq!(vcpus[1].arch.pc_seen[0], 0x4000_1000);
    assert_eq!(vcpus[1].arch.r0_seen[0], 7);
    assert!(world.log.borrow().contains(&"reset b".into()));
    // Its CPU was kicked to start it, and again when the VM stopped
    // (an off vCPU's CPU must learn it has nothing more to wait for).
    assert_eq!(*kicks.0.lock().unwrap(), [1, 1]);
    // vCPU 1 turned itself off first: the VM ran on; then vCPU 0 did,
    // the last one: the VM stopped, once.
    assert_eq!(vcpus[0].arch.r0_seen[5], crate::psci::AFFINITY_OFF);
    assert_eq!(
        (vcpus[0].state, vcpus[1].state),
        (VcpuState::Stopped, VcpuState::Stopped),
        "the off vCPU stops with its VM"
    );
    assert!(!vcpus[0].vm.is_running());
    let log = world.log.borrow();
    assert_eq!(
        log.iter().filter(|line| *line == "stopped 0").count(),
        1,
        "{log:?}"
    );
}

#[test]
fn a_restart_parks_every_vcpu_reloads_once_and_starts_vcpu_0() {
    let world = World::new();
    let kicks = Kicks::default();
    let policy = Fixed(FaultResponse::Stop);
    // vCPU 0 turns vCPU 1 on, which restarts the VM; in the VM's
    // second life vCPU 0 (its script from the top) turns it on again,
    // and vCPU 1 (its script from after the reset) yields and turns
    // itself off; then vCPU 0 powers the VM off.
    let mut vcpus = pair(
        &world,
        &kicks,
        &policy,
        std::vec![CPU_ON_1, YIELD, YIELD, YIELD, OFF],
        std::vec![RESET, YIELD, CPU_OFF],
    );
    // Its first start (CPU_ON) from the top, its second after RESET.
    vcpus[1].arch.restart_at = [0, 1].into();
    assert_eq!(
        Kernel.run(&mut vcpus, &world, &no_slices(), 100),
        RunOutcome::AllStopped
    );
    let log = world.log.borrow();
    let count = |what: &str| log.iter().filter(|line| *line == what).count();
    assert_eq!(count("load x"), 1, "the RAM reloads once: {log:?}");
    assert_eq!((count("reset a"), count("reset b")), (1, 2), "{log:?}");
    // vCPU 0 started over from its boot state after the reload.
    let load = log.iter().position(|line| line == "load x").unwrap();
    let reset = log.iter().position(|line| line == "reset a").unwrap();
    assert!(load < reset, "{log:?}");
    assert_eq!(vcpus[0].counters.restarts, 1);
    assert_eq!(vcpus[1].counters.restarts, 1);
    assert_eq!(vcpus[0].vm.restarts(), 1);
    assert_eq!(
        (vcpus[0].state, vcpus[1].state),
        (VcpuState::Stopped, VcpuState::Stopped)
    );
}

#[test]
fn system_off_from_one_vcpu_stops_the_others_and_cpu_on_checks_its_arguments() {
    let world = World::new();
    let kicks = Kicks::default();
    let policy = Fixed(FaultResponse::Stop);
    let mut vcpus = pair(
        &world,
        &kicks,
        &policy,
        std::vec![CPU_ON_1, YIELD, YIELD],
        std::vec![OFF],
    );
    let vm = vcpus[0].vm;
    assert_eq!(
        vm.cpu_on(2, 0x4000_1000, 0),
        crate::psci::INVALID_PARAMETERS
    );
    assert_eq!(vm.cpu_on(1, 0x8000_0000, 0), crate::psci::INVALID_ADDRESS);
    assert_eq!(vm.cpu_on(0, 0x4000_1000, 0), crate::psci::ALREADY_ON);
    assert_eq!(
        Kernel.run(&mut vcpus, &world, &no_slices(), 100),
        RunOutcome::AllStopped
    );
    assert_eq!(
        (vcpus[0].state, vcpus[1].state),
        (VcpuState::Stopped, VcpuState::Stopped)
    );
    let mut line = String::new();
    vm.describe(&mut line).unwrap();
    assert!(line.starts_with("powered off; "), "{line}");
    assert!(line.ends_with("; vCPUs on 0 of 2"), "{line}");
}
