// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VM objects and the core's exit loop, run on every physical CPU.
//!
//! A [`Vm`] is to Capvisor what a process is to Tock: a name, its RAM, its
//! fault policy, its life (running, stopped, restarting), and its vCPUs'
//! power states. Each of its vCPUs is a [`VirtualCpu`] pinned to one
//! physical CPU: its architectural state, the virtual devices and
//! hypercall services it reaches (views onto the VM's shared ones), its
//! interrupt backend, its state and its counters. [`Kernel::run`] is the
//! loop of one physical CPU over the vCPUs pinned to it
//! (`docs/architecture.md`, boot flow step 4): the scheduler picks a vCPU and its time slice
//! ([`crate::scheduler`]), the kernel enters it, takes its exit,
//! dispatches it ([`crate::dispatch`]), and carries out what the exit asks:
//! resume, block on WFI until an interrupt is pending, turn the vCPU off,
//! stop or restart the VM, or reflect a fault (asking the VM's fault
//! policy when the guest cannot take its own faults); physical interrupts
//! go to the board ([`Platform`]), whose alarm ends time slices. It
//! returns when every vCPU it runs has stopped. The architecture hides
//! behind [`ArchVcpu`] and the board behind [`Platform`] and [`CpuKick`], so
//! the loop is tested on the host with scripted fakes.
//!
//! # Several CPUs
//!
//! A VM's vCPUs run on different physical CPUs at once, and share the
//! VM's devices, services and interrupt controller. Those capsules are
//! plain single-threaded objects, reachable only through the VM's lock
//! ([`lock`]): a vCPU's [`VcpuObjects`] and what a board keeps of a VM
//! (console input) are [`Guarded`], lent out while the lock is held. A VM
//! only one CPU reaches has the lock [`OneCpu`], which costs nothing and
//! which the compiler keeps on that CPU; a shared VM a spin lock
//! ([`VmMutex`]). The shared state itself ([`Vm`]) is atomics and a mutex.
//! The lock order is: a VM's lock, then the console multiplexer's, then
//! the console UART's; never two VMs' locks at once.
//!
//! What one vCPU does that another must see goes through the VM's atomics
//! and a kick ([`CpuKick`]: a physical SGI to the other vCPU's CPU, which
//! takes it as an exit or a wake-up and looks again): an interrupt it
//! made pending for another vCPU ([`InterruptBackend::take_kicks`]), PSCI
//! CPU_ON, the VM stopping, a restart. A restart parks every other vCPU
//! first (each one's CPU acknowledges once the vCPU is out of the guest),
//! then reloads the RAM and starts vCPU 0 from its boot state.

mod counters;
pub mod lock;
#[cfg(all(test, loom))]
mod loom_tests;
mod platform;
#[cfg(all(test, not(loom)))]
mod tests;
mod vcpu;
mod vm;

pub use counters::VcpuCounters;
pub use lock::{AnyLock, Guarded, OneCpu, SpinLock, VmLock, VmMutex};
pub use platform::{ArchVcpu, CpuKick, ExitStatus, GuestMemory, NoKick, Platform};
pub use vcpu::{VcpuObjects, VcpuState, VirtualCpu};
pub use vm::Vm;

use crate::scheduler::{Scheduler, SchedulingDecision, StopReason};
use crate::sync::Ordering;
use crate::trap::Trap;
use vm::{BOOT_ENTRY, LIFE_RESTARTING, LIFE_RUNNING, POWER_OFF, POWER_ON_PENDING};

/// What an exit that did not simply resume leaves the loop to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The vCPU keeps the CPU.
    Keep,
    /// The vCPU gives up the CPU (it yields, waits, is off, or its VM
    /// stopped).
    Yield,
    /// The vCPU ended its VM; true when the policy stops the hypervisor.
    Ended(bool),
    /// The vCPU's VM restarts (SYSTEM_RESET or its fault policy).
    Restart,
    /// The VM's policy stops the hypervisor (the VM had already ended).
    Panic,
}

/// How a [`Kernel::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every vCPU this CPU ran stopped (its VM powered off or was stopped
    /// by its policy).
    AllStopped,
    /// A VM's policy asked to stop the hypervisor; its id.
    Panicked { vm: usize },
    /// The exit budget ran out with vCPUs still live.
    BudgetExhausted,
}

/// The exit loop of one physical CPU.
#[derive(Debug, Default)]
pub struct Kernel;

/// Publishes every vCPU's counters, then asks the platform to print every
/// VM's state and counters.
fn report_status<V: ArchVcpu, L: VmLock>(vcpus: &[VirtualCpu<'_, V, L>], platform: &dyn Platform) {
    for vcpu in vcpus {
        vcpu.publish();
    }
    platform.report_status();
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

/// Switches vCPU `next` in (the one in `loaded` out first), and starts it
/// where a power-on or restart said.
fn load<V: ArchVcpu, L: VmLock>(
    vcpus: &mut [VirtualCpu<'_, V, L>],
    loaded: &mut Option<usize>,
    next: usize,
) {
    if *loaded != Some(next) {
        if let Some(previous) = *loaded {
            let previous = &mut vcpus[previous];
            previous
                .objects
                .with(|objects| objects.interrupts.switch_out());
            previous.arch.switch_out();
        }
        let next_vcpu = &mut vcpus[next];
        next_vcpu.arch.switch_in();
        next_vcpu
            .objects
            .with(|objects| objects.interrupts.switch_in());
        *loaded = Some(next);
    }
    let vcpu = &mut vcpus[next];
    if let Some((entry, context)) = vcpu.start.take() {
        vcpu.arch.reset();
        if entry != BOOT_ENTRY {
            vcpu.arch.set_pc(entry);
            vcpu.arch.set_register(0, context);
        }
        vcpu.loop_detector.progressed();
        vcpu.interrupts_changed = true;
    }
}

/// Follows every vCPU's VM (see [`VirtualCpu::follow_vm`]); true when one
/// was turned on.
fn follow_vms<V: ArchVcpu, L: VmLock>(
    vcpus: &mut [VirtualCpu<'_, V, L>],
    loaded: Option<usize>,
) -> bool {
    let mut woken = false;
    for (index, vcpu) in vcpus.iter_mut().enumerate() {
        woken |= vcpu.follow_vm(loaded == Some(index));
    }
    woken
}

/// Restarts vCPU `current`'s VM: every other vCPU parks (this CPU parks
/// its own at once, the others' CPUs are kicked and park theirs), then the
/// RAM is reloaded, the devices reset, and vCPU 0 starts from its boot
/// state. Waits for the others with interrupts masked, parking vCPUs of
/// other VMs restarting at the same time, so two restarts cannot wait for
/// each other. When another vCPU of the VM is already restarting it, or
/// the VM has ended, this vCPU only parks.
fn restart<V: ArchVcpu, L: VmLock>(
    vcpus: &mut [VirtualCpu<'_, V, L>],
    loaded: Option<usize>,
    current: usize,
) {
    let vm = vcpus[current].vm;
    let began = vm
        .life
        .compare_exchange(
            LIFE_RUNNING,
            LIFE_RESTARTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok();
    if !began {
        // Someone else's restart (or the VM ended): follow it.
        follow_vms(vcpus, loaded);
        return;
    }
    vm.parked.store(0, Ordering::Release);
    vm.generation.fetch_add(1, Ordering::AcqRel);
    vm.changed();
    vm.kick_all(vcpus[current].index);
    // This vCPU takes part as the one that restarts: it counts as parked.
    {
        let me = &mut vcpus[current];
        me.generation = vm.generation.load(Ordering::Acquire);
        me.counters.restarts += 1;
        me.loop_detector.progressed();
    }
    vm.parked.fetch_add(1, Ordering::AcqRel);
    while vm.parked.load(Ordering::Acquire) < vm.vcpus as u32 {
        if vm.life.load(Ordering::Acquire) != LIFE_RESTARTING {
            // Another vCPU ended the VM meanwhile (SYSTEM_OFF, its last
            // CPU_OFF, its fault policy): it will not park, and there is
            // nothing to restart. This vCPU follows and stops.
            follow_vms(vcpus, loaded);
            return;
        }
        follow_vms(vcpus, loaded);
        crate::sync::spin_loop();
    }
    let me = &mut vcpus[current];
    me.objects.with(|objects| {
        objects.memory.load();
        // Every device and service back to its reset state; the board
        // checked when it built the VM that each of a VM with a restart
        // policy can be (a VM that restarts itself by PSCI SYSTEM_RESET
        // gets what its devices can do).
        let _ = objects.routes.reset_all();
        objects.interrupts.reset();
        for (vcpu, power) in vm.power[..vm.vcpus].iter().enumerate() {
            let state = if vcpu == 0 {
                POWER_ON_PENDING
            } else {
                POWER_OFF
            };
            power.entry.store(BOOT_ENTRY, Ordering::Relaxed);
            power.state.store(state, Ordering::Release);
        }
    });
    me.state = VcpuState::Off;
    me.start = None;
    vm.life.store(LIFE_RUNNING, Ordering::Release);
    vm.changed();
    // vCPU 0 starts (here, if it is this one or shares this CPU).
    vm.kick(1, usize::MAX);
    follow_vms(vcpus, loaded);
}

impl Kernel {
    /// Runs the vCPUs pinned to this CPU until they all stop, at most
    /// `budget` exits.
    ///
    /// `scheduler` picks the vCPU and its time slice. The running vCPU
    /// keeps the CPU across its exits until its slice ends (the
    /// hypervisor's alarm interrupts it), it waits for an interrupt with
    /// none pending, turns off, or its VM stops. Before every entry the
    /// vCPU's interrupt backend presents its pending interrupts (told
    /// whether something changed them since the last entry); the alarm is
    /// set for the earliest of the slice's end, the vCPU's own timer and
    /// the timers of waiting vCPUs. A waiting vCPU is ready again once an
    /// interrupt is pending for it; an off one once CPU_ON turns it on.
    /// When no vCPU is ready, the hypervisor sleeps
    /// (`Platform::wait_for_interrupt`) until the next interrupt (a kick
    /// from another CPU is one).
    pub fn run<V: ArchVcpu, L: VmLock>(
        &self,
        vcpus: &mut [VirtualCpu<'_, V, L>],
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
        for vcpu in vcpus.iter() {
            vcpu.publish();
        }
        loop {
            follow_vms(vcpus, loaded);
            let now = platform.now();
            // Waiting vCPUs with an interrupt pending are ready again; the
            // others' timers say when to look again.
            let mut wake_at = None;
            for vcpu in vcpus
                .iter_mut()
                .filter(|vcpu| vcpu.state == VcpuState::Waiting)
            {
                let poll = vcpu.poll_interrupts(platform);
                if poll.pending {
                    vcpu.state = VcpuState::Ready;
                } else {
                    wake_at = earliest(wake_at, poll.wake_at);
                }
            }
            let decision =
                scheduler.next(vcpus.len(), &|index| vcpus[index].state == VcpuState::Ready);
            let SchedulingDecision::Run {
                vcpu: current,
                slice,
            } = decision
            else {
                if !vcpus.iter().any(VirtualCpu::is_live) {
                    return RunOutcome::AllStopped;
                }
                if wake_at.unwrap_or(NEVER) != armed {
                    platform.set_alarm(wake_at);
                }
                armed = NEVER;
                platform.wait_for_interrupt();
                if platform.service_interrupts() {
                    report_status(vcpus, platform);
                }
                continue;
            };
            load(vcpus, &mut loaded, current);
            vcpus[current].counters.slices += 1;
            vcpus[current].interrupts_changed = true;
            let mut slice_end = slice.map(|slice| now + slice);
            // The alarm but for the running vCPU's own timer: the slice's
            // end or a waiting vCPU's timer (they change only at a tick).
            let mut alarm_without_timer = earliest(slice_end, wake_at).unwrap_or(NEVER);
            let reason = loop {
                if remaining == 0 {
                    return if vcpus.iter().any(VirtualCpu::is_live) {
                        RunOutcome::BudgetExhausted
                    } else {
                        RunOutcome::AllStopped
                    };
                }
                remaining -= 1;
                let vcpu = &mut vcpus[current];
                // Before the entry, the backend presents the vCPU's
                // interrupts when something can have changed them (and a
                // polling backend looks at the guest's timer while it is
                // armed). Only then can the alarm need moving: the slice's
                // end and the waiting vCPUs' timers change only along with
                // a change. The common exit pays for one flag (and, with a
                // polling backend, one CNTV_CTL read).
                if vcpu.interrupts_need_a_look() {
                    let changed = core::mem::replace(&mut vcpu.interrupts_changed, false);
                    let arch = &vcpu.arch;
                    let timer = vcpu.objects.with(|objects| {
                        objects
                            .interrupts
                            .before_entry(arch, &|| platform.now(), changed)
                    });
                    let alarm = match timer {
                        None => alarm_without_timer,
                        Some(timer) => timer.min(alarm_without_timer),
                    };
                    if alarm != armed {
                        platform.set_alarm((alarm != NEVER).then_some(alarm));
                        armed = alarm;
                    }
                }
                let exit = vcpu.arch.run();
                if matches!(exit.trap, Trap::Irq | Trap::Fiq) {
                    vcpu.counters.irqs += 1;
                    vcpu.interrupts_changed = true;
                    if platform.service_interrupts() {
                        report_status(vcpus, platform);
                    }
                    // The alarm is one-shot: whatever fired, program it
                    // afresh before the next entry.
                    armed = NEVER;
                    // A kick: another vCPU of a VM here may have turned
                    // one on, stopped or restarted the VM.
                    let turned_on = platform.take_kick() && follow_vms(vcpus, loaded);
                    if vcpus[current].state != VcpuState::Ready {
                        break StopReason::Stopped;
                    }
                    let now = platform.now();
                    let slice_over = slice_end.is_some_and(|end| now >= end);
                    let woken = turned_on
                        || wake_at.is_some_and(|at| now >= at)
                        || vcpus.iter().any(|other| {
                            other.state == VcpuState::Waiting
                                && other.poll_interrupts(platform).pending
                        });
                    let others_ready = vcpus
                        .iter()
                        .enumerate()
                        .any(|(index, other)| index != current && other.state == VcpuState::Ready);
                    if (slice_over && others_ready) || woken {
                        vcpus[current].counters.preemptions += 1;
                        break StopReason::Preempted;
                    }
                    if slice_over {
                        // The scheduling tick with nobody else ready: the
                        // vCPU carries on with a fresh slice (the alarm
                        // must not be left at a time already past).
                        slice_end = slice.map(|slice| now + slice);
                        alarm_without_timer = earliest(slice_end, wake_at).unwrap_or(NEVER);
                        vcpus[current].counters.ticks += 1;
                        vcpus[current].publish();
                    }
                    continue;
                }
                // The lean path: an exit its device or service handled
                // that leaves the vCPU running goes straight back in.
                let Some(outcome) = vcpu.handle(&exit) else {
                    continue;
                };
                match outcome {
                    Outcome::Keep => continue,
                    Outcome::Ended(panic) => {
                        platform.vm_stopped(vcpus[current].vm.id);
                        if panic {
                            return RunOutcome::Panicked {
                                vm: vcpus[current].vm.id,
                            };
                        }
                        break StopReason::Stopped;
                    }
                    Outcome::Panic => {
                        return RunOutcome::Panicked {
                            vm: vcpus[current].vm.id,
                        }
                    }
                    Outcome::Restart => {
                        restart(vcpus, loaded, current);
                        // A VM whose vCPU 0 is this one starts over at
                        // once; otherwise vCPU 0 starts on its own CPU.
                        if vcpus[current].state == VcpuState::Ready {
                            load(vcpus, &mut loaded, current);
                            continue;
                        }
                        break StopReason::Preempted;
                    }
                    Outcome::Yield => {}
                }
                let vcpu = &mut vcpus[current];
                if vcpu.state == VcpuState::Waiting {
                    // WFI completes at once when an interrupt is pending;
                    // the backend looked at its state and must present it.
                    if vcpu.poll_interrupts(platform).pending {
                        vcpu.state = VcpuState::Ready;
                        vcpu.interrupts_changed = true;
                        continue;
                    }
                    break StopReason::Waiting;
                }
                break if vcpu.state == VcpuState::Ready {
                    StopReason::Preempted
                } else {
                    StopReason::Stopped
                };
            };
            // Published for reports at most once a slice while it runs on
            // or waits (a switch pays for no lock), and whenever it stops.
            let vcpu = &mut vcpus[current];
            let interval = slice.unwrap_or(0);
            if reason == StopReason::Stopped || now.wrapping_sub(vcpu.published_at) >= interval {
                vcpu.published_at = now;
                vcpu.publish();
            }
            scheduler.stopped(current, reason);
        }
    }
}
