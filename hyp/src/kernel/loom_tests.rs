// SPDX-License-Identifier: MIT OR Apache-2.0
//! Model-checked tests (loom) of the restart, park, power and kick
//! protocols: the kernel's own code, two CPUs as two threads, every
//! interleaving.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p hyp --release --lib loom`
//! (`make unit-test` does). Each CPU is a thread with its own list of
//! vCPUs, running what `Kernel::run` runs around a restart: it follows its
//! vCPUs' VM when kicked ([`follow_vms`]), restarts it ([`restart`]), turns
//! a vCPU off, ends the VM. A guest that runs is a write to the VM's RAM
//! (a loom cell), and a restart's reload is a write too: loom fails a test
//! when two of them are not ordered by the protocol's atomics, and when a
//! CPU waits for ever (a lost kick, a park never counted).

extern crate std;

use super::*;
use crate::dispatch::{Action, GuestRegisters};
use crate::fault_policy::{FaultResponse, VmFaultPolicy};
use crate::interrupts::VirtualTimer;
use crate::psci::VcpuPower;
use crate::trap::GuestExit;
use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU32;
use std::boxed::Box;
use std::vec::Vec;

/// A vCPU with nothing architectural: the protocol is all the kernel's.
#[derive(Debug, Default)]
struct Bare {
    pc: u32,
    r0: u32,
    resets: u32,
}

impl GuestRegisters for Bare {
    fn register(&self, _n: u8) -> u32 {
        self.r0
    }
    fn set_register(&mut self, _n: u8, value: u32) {
        self.r0 = value;
    }
    fn pc(&self) -> u32 {
        self.pc
    }
    fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
    }
}

impl VirtualTimer for Bare {
    fn virtual_timer_control(&self) -> u32 {
        0
    }
    fn virtual_timer_deadline(&self) -> u64 {
        0
    }
}

impl ArchVcpu for Bare {
    fn switch_in(&mut self) {}
    fn switch_out(&mut self) {}
    fn run(&mut self) -> GuestExit {
        unreachable!("the protocol tests run no guest code")
    }
    fn reflect(&mut self, _action: &Action) -> bool {
        false
    }
    fn reset(&mut self) {
        self.resets += 1;
    }
    fn release(&mut self) {}
}

/// The VM's RAM: what its guests write while they run and a restart
/// reloads; loom checks every access is ordered after the last.
#[derive(Debug)]
struct Ram {
    bytes: UnsafeCell<u32>,
    loads: AtomicU32,
}

impl Ram {
    /// A guest running on it.
    fn run_guest(&self) {
        self.bytes.with_mut(write_ram);
    }
}

/// A write through loom's cell pointer (the cell's access check is the
/// point; the write itself is a plain increment).
fn write_ram(bytes: *mut u32) {
    #[allow(unsafe_code)]
    // SAFETY: `with_mut` lends the pointer for this call only, and loom
    // has checked no other access overlaps it.
    unsafe {
        *bytes += 1
    };
}

impl GuestMemory for Ram {
    fn load(&self) {
        self.bytes.with_mut(write_ram);
        self.loads.fetch_add(1, Ordering::Relaxed);
    }
}

/// A policy that restarts the VM.
#[derive(Debug)]
struct Restart;

impl VmFaultPolicy for Restart {
    fn response(&self, _restarts: u32) -> FaultResponse {
        FaultResponse::Restart
    }
}

/// How many times each CPU was kicked (a kick is a pending SGI: the CPU
/// takes it when it next looks).
#[derive(Debug, Default)]
struct Kicks([AtomicU32; 2]);

impl CpuKick for Kicks {
    fn kick(&self, cpu: usize) {
        self.0[cpu].fetch_add(1, Ordering::Release);
    }
}

impl Kicks {
    /// Whether CPU `cpu` was kicked since it last looked (`seen`: the kicks
    /// it has taken).
    fn take(&self, cpu: usize, seen: &mut u32) -> bool {
        let now = self.0[cpu].load(Ordering::Acquire);
        core::mem::replace(seen, now) != now
    }
}

type Cpu = Vec<VirtualCpu<'static, Bare, SpinLock<'static>>>;

/// A VM with one vCPU per entry of `cpus` (each 0 or 1), its RAM, its
/// kicks, and each CPU's vCPU list; vCPU 0 on, the others on too when
/// `all_on`.
fn machine(
    cpus: &[u8],
    all_on: bool,
) -> (&'static Vm<'static>, &'static Ram, &'static Kicks, [Cpu; 2]) {
    let kicks: &'static Kicks = Box::leak(Box::default());
    let ram: &'static Ram = Box::leak(Box::new(Ram {
        bytes: UnsafeCell::new(0),
        loads: AtomicU32::new(0),
    }));
    let vm: &'static Vm<'static> = Box::leak(Box::new(Vm::new("loom", 0).with_vcpus(
        cpus,
        kicks,
        (0x4000_0000, 0x0100_0000),
    )));
    let mutex: &'static VmMutex = Box::leak(Box::new(VmMutex::new()));
    let objects = VcpuObjects::new(&[], &[], ram, &Restart).unwrap();
    let mut lists: [Cpu; 2] = [Vec::new(), Vec::new()];
    for (index, &cpu) in cpus.iter().enumerate() {
        // SAFETY: the VM's objects (its RAM, policy) are reached only
        // through guards on `mutex` (and the RAM's own checked cell).
        #[allow(unsafe_code)]
        let guarded = unsafe { mutex.guard(objects.clone()) };
        let mut vcpu = VirtualCpu::new(vm, index, Bare::default(), guarded);
        if index > 0 && all_on {
            vm.power[index].state.store(vm::POWER_ON, Ordering::Relaxed);
            vcpu.state = VcpuState::Ready;
        }
        lists[cpu as usize].push(vcpu);
    }
    // Each CPU has seen the VM as it is now.
    for list in lists.iter_mut() {
        follow_vms(list, None);
    }
    (vm, ram, kicks, lists)
}

/// One CPU's life until `done`: its running vCPUs' guests touch the RAM;
/// a kick makes it follow the VM (as an exit or a wake-up would).
fn run_cpu(cpu: usize, vcpus: &mut Cpu, ram: &Ram, kicks: &Kicks, done: impl Fn(&Cpu) -> bool) {
    let mut seen = 0;
    loop {
        if kicks.take(cpu, &mut seen) {
            follow_vms(vcpus, Some(0));
        }
        for vcpu in vcpus.iter() {
            if vcpu.state == VcpuState::Ready {
                ram.run_guest();
            }
        }
        if done(vcpus) {
            return;
        }
        loom::thread::yield_now();
    }
}

/// Whether every vCPU of the list took part in restart 1.
fn parked(vcpus: &Cpu) -> bool {
    vcpus.iter().all(|vcpu| vcpu.generation == 1)
}

/// Runs `other` (CPU 1's part) beside CPU 0 restarting from its vCPU 0,
/// then checks what every restart must leave: one reload, vCPU 0 started
/// from its boot state, the others off, the VM running.
fn restart_beside(cpus: &'static [u8], all_on: bool) {
    loom::model(move || {
        let (vm, ram, kicks, [mut zero, mut one]) = machine(cpus, all_on);
        let other = loom::thread::spawn(move || {
            run_cpu(1, &mut one, ram, kicks, parked);
            one
        });
        restart(&mut zero, Some(0), 0);
        // vCPU 0's guest starts over on the RAM just loaded.
        assert_eq!(zero[0].state, VcpuState::Ready);
        ram.run_guest();
        let one = other.join().unwrap();
        assert_eq!(ram.loads.load(Ordering::Relaxed), 1);
        assert_eq!(zero[0].start, Some((vm::BOOT_ENTRY, 0)));
        assert!(one.iter().all(|vcpu| vcpu.state == VcpuState::Off));
        assert!(vm.is_running());
        assert_eq!(vm.restarts(), 1);
        assert_eq!(vm.parked.load(Ordering::Relaxed), cpus.len() as u32);
    });
}

#[test]
fn loom_restart_while_the_other_vcpu_runs() {
    restart_beside(&[0, 1], true);
}

#[test]
fn loom_restart_while_the_other_vcpu_is_off() {
    restart_beside(&[0, 1], false);
}

/// CPU 1 restarts the VM from its vCPU 1 while vCPU 0 (CPU 0) waits: CPU 0
/// parks it when kicked, and starts it from its boot state when kicked
/// again; its guest must find the RAM reloaded.
#[test]
fn loom_restart_from_another_cpu_starts_vcpu_0_there() {
    loom::model(|| {
        let (vm, ram, kicks, [mut zero, mut one]) = machine(&[0, 1], true);
        zero[0].state = VcpuState::Waiting;
        let restarter = loom::thread::spawn(move || {
            restart(&mut one, Some(0), 0);
            one
        });
        run_cpu(0, &mut zero, ram, kicks, |vcpus| {
            vcpus[0].generation == 1 && vcpus[0].state == VcpuState::Ready
        });
        let one = restarter.join().unwrap();
        assert_eq!(ram.loads.load(Ordering::Relaxed), 1);
        assert_eq!(zero[0].start, Some((vm::BOOT_ENTRY, 0)));
        assert_eq!(one[0].state, VcpuState::Off);
        assert!(vm.is_running());
    });
}

/// vCPU 1 turns itself off (PSCI CPU_OFF) while vCPU 0 restarts the VM:
/// the VM restarts and runs on, whichever comes first.
#[test]
fn loom_cpu_off_racing_a_restart() {
    loom::model(|| {
        let (vm, ram, kicks, [mut zero, mut one]) = machine(&[0, 1], true);
        let other = loom::thread::spawn(move || {
            ram.run_guest();
            let outcome = one[0].carry_out(Action::CpuOff);
            assert_eq!(outcome, Outcome::Yield);
            run_cpu(1, &mut one, ram, kicks, parked);
            one
        });
        restart(&mut zero, Some(0), 0);
        let one = other.join().unwrap();
        assert_eq!(ram.loads.load(Ordering::Relaxed), 1);
        assert_eq!(zero[0].state, VcpuState::Ready);
        assert_eq!(one[0].state, VcpuState::Off);
        assert!(vm.is_running());
        assert_eq!(vm.affinity_info(1), crate::psci::AFFINITY_OFF);
    });
}

/// vCPU 1 (CPU 1) turns vCPU 2 (CPU 0) on with PSCI CPU_ON while vCPU 0
/// (CPU 0) restarts the VM: after the restart vCPU 2 is off and never
/// started in between, whichever came first.
#[test]
fn loom_cpu_on_racing_a_restart() {
    loom::model(|| {
        let (vm, ram, kicks, [mut zero, mut one]) = machine(&[0, 1, 0], false);
        one[0].state = VcpuState::Ready;
        vm.power[1].state.store(vm::POWER_ON, Ordering::Relaxed);
        let other = loom::thread::spawn(move || {
            let result = one[0].objects.with(|_| vm.cpu_on(2, 0x4000_1000, 7));
            assert_eq!(result, crate::psci::SUCCESS);
            run_cpu(1, &mut one, ram, kicks, parked);
            one
        });
        restart(&mut zero, Some(0), 0);
        let one = other.join().unwrap();
        assert_eq!(ram.loads.load(Ordering::Relaxed), 1);
        assert_eq!(zero[0].state, VcpuState::Ready);
        assert_eq!(zero[1].state, VcpuState::Off);
        assert_eq!(zero[1].arch.resets, 0, "vCPU 2 never started");
        assert_eq!(one[0].state, VcpuState::Off);
        assert_eq!(vm.affinity_info(2), crate::psci::AFFINITY_OFF);
    });
}

/// vCPU 1 powers the VM off (PSCI SYSTEM_OFF) while vCPU 0 takes a fault
/// its policy answers with a restart: the VM ends powered off, both vCPUs
/// stop, and neither CPU waits for ever (the restart gives up once the VM
/// has ended).
#[test]
fn loom_system_off_racing_a_fault() {
    loom::model(|| {
        let (vm, ram, kicks, [mut zero, mut one]) = machine(&[0, 1], true);
        let other = loom::thread::spawn(move || {
            ram.run_guest();
            one[0].carry_out(Action::StopVm);
            assert_eq!(one[0].state, VcpuState::Stopped);
            one
        });
        let outcome = zero[0].fatal_fault();
        assert_eq!(outcome, Outcome::Restart);
        restart(&mut zero, Some(0), 0);
        run_cpu(0, &mut zero, ram, kicks, |vcpus| {
            matches!(vcpus[0].state, VcpuState::Stopped)
                || (vcpus[0].generation == 1 && vcpus[0].state == VcpuState::Ready)
        });
        let one = other.join().unwrap();
        assert_eq!(one[0].state, VcpuState::Stopped);
        assert!(!vm.is_running(), "SYSTEM_OFF ends the VM, restarted or not");
        // Whatever ran last, the VM is over: CPU 0's vCPU follows it.
        follow_vms(&mut zero, Some(0));
        assert_eq!(zero[0].state, VcpuState::Stopped);
    });
}
