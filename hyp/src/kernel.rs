//! The VM objects and the core's exit loop.
//!
//! A [`Vm`] is to Capvisor what a process is to Tock: a name, a state, its
//! virtual CPU, the virtual devices and hypercall services it owns, its fault
//! policy and counters. [`Kernel::run`] is the loop of DESIGN.md's boot flow
//! step 4: pick a VM (round robin), enter it, take its exit, dispatch it
//! ([`crate::dispatch`]), and carry out what the exit asks: resume, yield on
//! WFI, stop, restart, or reflect a fault (asking the VM's fault policy when
//! the guest cannot take its own faults). It returns when every VM has
//! stopped. The architecture hides behind [`Vcpu`], so the loop is tested on
//! the host with a scripted fake.

use crate::dispatch::{dispatch, Action, GuestRegisters, HypercallDriver, MmioDevice};
use crate::fault_policy::{FaultLoopDetector, FaultResponse, VmFaultPolicy};
use crate::trap::{GuestExit, Trap};

/// A virtual CPU, implemented by the architecture chip.
pub trait Vcpu: GuestRegisters {
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

/// Exit counts of one VM, by what the exit was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmCounters {
    /// Every exit.
    pub exits: u32,
    /// Hypercalls and SMCs.
    pub hypercalls: u32,
    /// Emulated MMIO accesses.
    pub mmio: u32,
    /// WFI/WFE.
    pub waits: u32,
    /// Faults reflected into the guest.
    pub injected_faults: u32,
    /// Restarts by SYSTEM_RESET or by the fault policy.
    pub restarts: u32,
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
    /// Its virtual devices.
    pub devices: &'a [&'a dyn MmioDevice],
    /// Its hypercall services.
    pub services: &'a [&'a dyn HypercallDriver],
    /// What happens when it cannot take its own faults.
    pub fault_policy: &'a dyn VmFaultPolicy,
    /// Exit counters.
    pub counters: VmCounters,
    loop_detector: FaultLoopDetector,
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
            devices,
            services,
            fault_policy,
            counters: VmCounters::default(),
            loop_detector: FaultLoopDetector::new(),
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.state, VmState::Ready | VmState::Waiting)
    }

    fn restart(&mut self) {
        self.memory.load();
        self.vcpu.reset();
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

    /// Handles one exit of this VM. Returns whether the VM keeps the CPU
    /// (true) or yields it, and whether the hypervisor must stop.
    #[inline]
    fn handle(&mut self, exit: &GuestExit) -> (bool, bool) {
        self.counters.exits += 1;
        match exit.trap {
            Trap::Hypercall { .. } | Trap::SecureMonitorCall => self.counters.hypercalls += 1,
            Trap::MmioRead { .. } | Trap::MmioWrite { .. } => self.counters.mmio += 1,
            _ => {}
        }
        let action = dispatch(exit, &mut self.vcpu, self.devices, self.services);
        match action {
            Action::Resume => {
                self.loop_detector.progressed();
                (true, false)
            }
            Action::Wait => {
                self.loop_detector.progressed();
                self.counters.waits += 1;
                self.state = VmState::Waiting;
                (false, false)
            }
            Action::StopVm => {
                self.state = VmState::Stopped;
                self.vcpu.release();
                (false, false)
            }
            Action::ResetVm => {
                self.restart();
                (true, false)
            }
            Action::InjectDataAbort { .. }
            | Action::InjectPrefetchAbort { .. }
            | Action::InjectUndefined => {
                let pc = self.vcpu.pc();
                if self.loop_detector.faulted_at(pc) || !self.vcpu.reflect(&action) {
                    let panic = self.fatal_fault();
                    return (false, panic);
                }
                self.loop_detector.entered(self.vcpu.pc());
                self.counters.injected_faults += 1;
                (true, false)
            }
        }
    }
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

impl Kernel {
    /// Runs the VMs round robin until they all stop, at most `budget` exits.
    /// A VM keeps the CPU until it waits, stops or faults fatally. Waiting
    /// VMs are made ready again at the next turn (there are no interrupts
    /// yet, so a WFI is a yield).
    pub fn run<V: Vcpu>(&self, vms: &mut [Vm<'_, V>], budget: u32) -> RunOutcome {
        let mut loaded: Option<usize> = None;
        let mut current = 0;
        let mut remaining = budget;
        loop {
            let Some(next) = next_live(vms, current) else {
                return RunOutcome::AllStopped;
            };
            current = next;
            if loaded != Some(current) {
                if let Some(previous) = loaded {
                    vms[previous].vcpu.switch_out();
                }
                vms[current].vcpu.switch_in();
                loaded = Some(current);
            }
            let vm = &mut vms[current];
            vm.state = VmState::Ready;
            // The hot loop: exits that resume the same VM.
            loop {
                if remaining == 0 {
                    return if vms.iter().any(Vm::is_live) {
                        RunOutcome::BudgetExhausted
                    } else {
                        RunOutcome::AllStopped
                    };
                }
                remaining -= 1;
                let exit = vm.vcpu.run();
                let (keep, panic) = vm.handle(&exit);
                if panic {
                    return RunOutcome::Panicked { vm: current };
                }
                if !keep {
                    break;
                }
            }
            current = if current + 1 == vms.len() {
                0
            } else {
                current + 1
            };
        }
    }
}

/// The first live VM at or after `from` (wrapping).
fn next_live<V: Vcpu>(vms: &[Vm<'_, V>], from: usize) -> Option<usize> {
    (from..vms.len())
        .chain(0..from)
        .find(|&index| vms[index].is_live())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::dispatch::{HypercallOutcome, NOT_SUPPORTED};
    use crate::trap::AccessSize;
    use core::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// A vCPU that plays a script of exits and logs what the kernel does.
    struct ScriptedVcpu {
        name: char,
        script: Vec<(Trap, u32)>,
        next: usize,
        r: [u32; 15],
        pc: u32,
        reflectable: bool,
        /// r0 as each run found it (the previous exit's result).
        r0_seen: Vec<u32>,
        log: Rc<RefCell<Vec<std::string::String>>>,
    }

    impl ScriptedVcpu {
        fn new(
            name: char,
            script: Vec<(Trap, u32)>,
            log: &Rc<RefCell<Vec<std::string::String>>>,
        ) -> Self {
            ScriptedVcpu {
                name,
                script,
                next: 0,
                r: [0; 15],
                pc: 0x4000_0000,
                reflectable: true,
                r0_seen: Vec::new(),
                log: log.clone(),
            }
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
            self.log.borrow_mut().push(std::format!("in {}", self.name));
        }
        fn switch_out(&mut self) {
            self.log
                .borrow_mut()
                .push(std::format!("out {}", self.name));
        }
        fn run(&mut self) -> GuestExit {
            let (trap, r0) = self.script[self.next % self.script.len()];
            self.next += 1;
            self.r0_seen.push(self.r[0]);
            self.r[0] = r0;
            GuestExit {
                trap,
                instruction_bytes: 4,
            }
        }
        fn reflect(&mut self, _action: &Action) -> bool {
            self.log
                .borrow_mut()
                .push(std::format!("reflect {}", self.name));
            self.reflectable
        }
        fn reset(&mut self) {
            self.log
                .borrow_mut()
                .push(std::format!("reset {}", self.name));
            self.next = 0;
        }
        fn release(&mut self) {
            self.log
                .borrow_mut()
                .push(std::format!("release {}", self.name));
        }
    }

    /// RAM that logs its reloads.
    struct LoggedMemory(char, Rc<RefCell<Vec<std::string::String>>>);

    /// A leaked [`LoggedMemory`] (tests only), so a VM table can borrow it.
    fn memory(name: char, log: &Rc<RefCell<Vec<std::string::String>>>) -> &'static LoggedMemory {
        std::boxed::Box::leak(std::boxed::Box::new(LoggedMemory(name, log.clone())))
    }

    impl GuestMemory for LoggedMemory {
        fn load(&self) {
            self.1.borrow_mut().push(std::format!("load {}", self.0));
        }
    }

    struct PowerOff;

    impl HypercallDriver for PowerOff {
        fn owns(&self, function: u32) -> bool {
            function == 0x8400_0008 || function == 0x8400_0009
        }
        fn call(&self, function: u32, _arguments: [u32; 7]) -> HypercallOutcome {
            if function == 0x8400_0008 {
                HypercallOutcome::StopVm
            } else {
                HypercallOutcome::ResetVm
            }
        }
    }

    const HVC: Trap = Trap::Hypercall { immediate: 0 };
    const WFI: Trap = Trap::WaitForInterrupt { condition: None };
    const OFF: (Trap, u32) = (HVC, 0x8400_0008);
    const UNCLAIMED: Trap = Trap::MmioRead {
        ipa: 0x0a00_0000,
        va: 0x0a00_0000,
        size: AccessSize::Word,
        sign_extend: false,
        register: 1,
    };

    struct Fixed(FaultResponse);
    impl VmFaultPolicy for Fixed {
        fn response(&self, _restarts: u32) -> FaultResponse {
            self.0
        }
    }

    #[test]
    fn round_robin_on_wfi_until_all_stop() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let services: [&dyn HypercallDriver; 1] = [&PowerOff];
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(HVC, 0x1), (WFI, 0), (WFI, 0), OFF], &log);
        let b = ScriptedVcpu::new('b', std::vec![(WFI, 0), OFF], &log);
        let mut vms = [
            Vm::new("a", a, memory('a', &log), &[], &services, &policy),
            Vm::new("b", b, memory('b', &log), &[], &services, &policy),
        ];
        assert_eq!(Kernel.run(&mut vms, 100), RunOutcome::AllStopped);
        assert_eq!(
            *log.borrow(),
            [
                "in a",
                "out a",
                "in b",
                "out b",
                "in a",
                "out a",
                "in b",
                "release b",
                "out b",
                "in a",
                "release a"
            ]
        );
        assert_eq!(vms[0].vcpu.r0_seen[1], NOT_SUPPORTED, "unowned id 0x1");
        assert_eq!(
            vms[0].counters,
            VmCounters {
                exits: 4,
                hypercalls: 2,
                mmio: 0,
                waits: 2,
                injected_faults: 0,
                restarts: 0
            }
        );
        assert_eq!(
            (vms[0].state, vms[1].state),
            (VmState::Stopped, VmState::Stopped)
        );
    }

    #[test]
    fn faults_are_reflected_and_counted() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let services: [&dyn HypercallDriver; 1] = [&PowerOff];
        let policy = Fixed(FaultResponse::Panic);
        let a = ScriptedVcpu::new('a', std::vec![(UNCLAIMED, 0), OFF], &log);
        let mut vms = [Vm::new("a", a, memory('a', &log), &[], &services, &policy)];
        assert_eq!(Kernel.run(&mut vms, 100), RunOutcome::AllStopped);
        assert_eq!(vms[0].counters.injected_faults, 1);
        assert_eq!(vms[0].counters.mmio, 1);
        assert!(log.borrow().contains(&"reflect a".into()));
    }

    #[test]
    fn a_fault_loop_goes_to_the_policy_and_others_carry_on() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let services: [&dyn HypercallDriver; 1] = [&PowerOff];
        let stop = Fixed(FaultResponse::Stop);
        let looping = ScriptedVcpu::new('a', std::vec![(UNCLAIMED, 0)], &log);
        let healthy = ScriptedVcpu::new('b', std::vec![(WFI, 0), (WFI, 0), OFF], &log);
        let mut vms = [
            Vm::new("looping", looping, memory('l', &log), &[], &services, &stop),
            Vm::new("healthy", healthy, memory('h', &log), &[], &services, &stop),
        ];
        assert_eq!(Kernel.run(&mut vms, 1000), RunOutcome::AllStopped);
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
        let log = Rc::new(RefCell::new(Vec::new()));
        let services: [&dyn HypercallDriver; 1] = [&PowerOff];
        let mut broken = ScriptedVcpu::new('a', std::vec![(UNCLAIMED, 0)], &log);
        broken.reflectable = false;
        let mut vms = [Vm::new(
            "broken",
            broken,
            memory('a', &log),
            &[],
            &services,
            &RestartOnce,
        )];
        assert_eq!(Kernel.run(&mut vms, 100), RunOutcome::Panicked { vm: 0 });
        assert_eq!(vms[0].counters.restarts, 1);
        let log = log.borrow();
        let load = log.iter().position(|line| line == "load a");
        let reset = log.iter().position(|line| line == "reset a");
        assert!(
            load.is_some() && load < reset,
            "a restart reloads RAM, then resets the vCPU: {log:?}"
        );
        assert_eq!(
            log.last().map(std::string::String::as_str),
            Some("release a")
        );
    }

    #[test]
    fn system_reset_restarts_and_budget_is_reported() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let services: [&dyn HypercallDriver; 1] = [&PowerOff];
        let policy = Fixed(FaultResponse::Stop);
        let a = ScriptedVcpu::new('a', std::vec![(HVC, 0x8400_0009)], &log);
        let mut vms = [Vm::new("a", a, memory('a', &log), &[], &services, &policy)];
        assert_eq!(Kernel.run(&mut vms, 5), RunOutcome::BudgetExhausted);
        assert_eq!(vms[0].counters.restarts, 5);
    }
}
