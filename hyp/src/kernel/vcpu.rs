// SPDX-License-Identifier: MIT OR Apache-2.0
//! One vCPU as the physical CPU it is pinned to runs it: its state
//! machine (ready, waiting, off, stopped, faulted), how it handles an exit
//! and follows what the VM's other vCPUs did to it.

use super::counters::{write_counters, VcpuCounters};
use super::lock::{AnyLock, Guarded, VmLock};
use super::platform::{ArchVcpu, ExitStatus, GuestMemory, Platform};
use super::vm::{Vm, LIFE_FAULTED, LIFE_RESTARTING, LIFE_STOPPED, POWER_ON};
use super::Outcome;
use crate::dispatch::{dispatch, Action, HypercallDriver, MmioDevice, Routes, RoutesError};
use crate::fault_policy::{FaultLoopDetector, FaultResponse, VmFaultPolicy};
use crate::interrupts::{InterruptBackend, NoInterrupts};
use crate::sync::Ordering;
use crate::trap::{GuestExit, Trap};

/// Where a vCPU is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Can run.
    Ready,
    /// Waiting for an interrupt (WFI/WFE).
    Waiting,
    /// Turned off (PSCI CPU_OFF, or not yet turned on by CPU_ON); its VM
    /// runs on.
    Off,
    /// Its VM powered itself off (PSCI SYSTEM_OFF, or CPU_OFF of its last
    /// vCPU).
    Stopped,
    /// Its VM was stopped by its fault policy.
    Faulted,
}

/// What one vCPU reaches of its VM's capsules: its routes to the devices
/// and services (views onto its VM's), its interrupt backend, and the
/// VM's RAM loader, fault policy and reported status. Plain
/// single-threaded objects: a vCPU holds them under its VM's lock
/// ([`Guarded`]).
#[derive(Clone)]
pub struct VcpuObjects<'a> {
    /// Its virtual devices and hypercall services, with the tables that
    /// route exits to them.
    pub routes: Routes<'a>,
    /// Its interrupt backend: its view of the VM's virtual interrupt
    /// controller, and its timer.
    pub interrupts: &'a dyn InterruptBackend,
    /// The VM's RAM (reloaded on a restart).
    pub memory: &'a dyn GuestMemory,
    /// What happens when one of the VM's vCPUs cannot take its own faults.
    pub fault_policy: &'a dyn VmFaultPolicy,
    /// Where the guest reports its exit status, if it can.
    pub status: Option<&'a dyn ExitStatus>,
}

impl<'a> VcpuObjects<'a> {
    /// A vCPU's routes to `devices` and `services` (at most
    /// [`crate::dispatch::MAX_ROUTES`] each, no function id claimed twice),
    /// with its VM's RAM and fault policy; no interrupt backend yet.
    pub fn new(
        devices: &'a [&'a dyn MmioDevice],
        services: &'a [&'a dyn HypercallDriver],
        memory: &'a dyn GuestMemory,
        fault_policy: &'a dyn VmFaultPolicy,
    ) -> Result<Self, RoutesError> {
        Ok(VcpuObjects {
            routes: Routes::new(devices, services)?,
            interrupts: &NoInterrupts,
            memory,
            fault_policy,
            status: None,
        })
    }

    /// With its interrupt backend.
    pub fn with_interrupts(mut self, interrupts: &'a dyn InterruptBackend) -> Self {
        self.interrupts = interrupts;
        self
    }

    /// With where its guest reports its exit status.
    pub fn with_status(mut self, status: &'a dyn ExitStatus) -> Self {
        self.status = Some(status);
        self
    }
}

impl core::fmt::Debug for VcpuObjects<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VcpuObjects")
            .field("routes", &self.routes)
            .finish()
    }
}

/// One vCPU of a VM, as the CPU it is pinned to runs it. `L` is its VM's
/// lock ([`super::lock`]): a CPU that runs vCPUs of VMs only it reaches
/// and of shared ones has [`AnyLock`]; another CPU [`super::SpinLock`].
pub struct VirtualCpu<'a, V: ArchVcpu, L: VmLock = AnyLock<'a>> {
    /// Its VM.
    pub vm: &'a Vm<'a>,
    /// Its number in the VM (its MPIDR affinity level 0).
    pub index: usize,
    /// Current state.
    pub state: VcpuState,
    /// The architectural vCPU.
    pub arch: V,
    /// Its devices, services and interrupt backend, under its VM's lock.
    pub objects: Guarded<VcpuObjects<'a>, L>,
    /// Exit counters.
    pub counters: VcpuCounters,
    pub(super) loop_detector: FaultLoopDetector,
    /// Whether something that can change the vCPU's IRQ input happened
    /// since it was last computed (device MMIO, a physical interrupt, the
    /// timer, a new slice).
    pub(super) interrupts_changed: bool,
    /// Whether the backend looks before every entry, or only after a change
    /// ([`InterruptBackend::polls_every_entry`]).
    pub(super) poll_every_entry: bool,
    /// Whether the guest's timer was armed at the last entry (a polling
    /// backend is called while it is, and once after, to lower its line).
    pub(super) timer_was_armed: bool,
    /// The VM restarts this vCPU has taken part in.
    pub(super) generation: u32,
    /// The VM's [`Vm::epoch`] this vCPU last followed (`u32::MAX` before
    /// the first time).
    pub(super) seen_epoch: u32,
    /// Where it starts when next switched in (after a power-on or a
    /// restart): `(entry, context)`, [`BOOT_ENTRY`] for the boot state.
    pub(super) start: Option<(u32, u32)>,
    /// When it last published its counters at a slice's end.
    pub(super) published_at: u64,
}

impl<V: ArchVcpu, L: VmLock> core::fmt::Debug for VirtualCpu<'_, V, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtualCpu")
            .field("vm", &self.vm.name)
            .field("index", &self.index)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<'a, V: ArchVcpu, L: VmLock> VirtualCpu<'a, V, L> {
    /// vCPU `index` of `vm`, in its boot state (on for vCPU 0, off for the
    /// others until CPU_ON), reaching `objects` under its VM's lock.
    pub fn new(
        vm: &'a Vm<'a>,
        index: usize,
        arch: V,
        objects: Guarded<VcpuObjects<'a>, L>,
    ) -> Self {
        let poll_every_entry = objects.with(|objects| objects.interrupts.polls_every_entry());
        VirtualCpu {
            vm,
            index,
            state: if index == 0 {
                VcpuState::Ready
            } else {
                VcpuState::Off
            },
            arch,
            objects,
            counters: VcpuCounters::default(),
            loop_detector: FaultLoopDetector::new(),
            interrupts_changed: true,
            poll_every_entry,
            timer_was_armed: false,
            generation: 0,
            seen_epoch: u32::MAX,
            start: None,
            published_at: 0,
        }
    }

    /// Its VM's name.
    pub fn name(&self) -> &'static str {
        self.vm.name
    }

    /// Writes the vCPU's state and counters on one line.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let state = match self.state {
            VcpuState::Ready => "ready",
            VcpuState::Waiting => "waiting",
            VcpuState::Off => "off",
            VcpuState::Stopped => "powered off",
            VcpuState::Faulted => "stopped by its fault policy",
        };
        write_counters(out, state, &self.counters)
    }

    /// Records its counters and state in its VM, and the exit status its
    /// guest reported, for reports.
    pub(super) fn publish(&self) {
        let status = self
            .objects
            .with(|objects| objects.status.and_then(|status| status.exit_status()));
        self.vm
            .publish(self.index, self.counters, self.state, status);
    }

    /// Whether an interrupt is pending for the vCPU now (a WFI completes),
    /// and if not, when to look again.
    pub(super) fn poll_interrupts(&self, platform: &dyn Platform) -> crate::interrupts::Poll {
        self.objects
            .with(|objects| objects.interrupts.poll(&self.arch, platform.now()))
    }

    /// Whether the backend must run before the next entry: after
    /// a change, and for a backend that polls the guest's timer while the
    /// timer is armed and once after it was (to lower the line). After a
    /// change the backend may have raised the line: it looks once more at
    /// the entry after.
    #[inline(always)]
    pub(super) fn interrupts_need_a_look(&mut self) -> bool {
        if self.interrupts_changed {
            self.timer_was_armed = true;
            return true;
        }
        self.poll_every_entry && {
            let armed = crate::interrupts::VirtualTimerState::control_armed(
                self.arch.virtual_timer_control(),
            );
            let was_armed = core::mem::replace(&mut self.timer_was_armed, armed);
            armed || was_armed
        }
    }

    /// Whether the CPU must still run this vCPU or wait for it: it can run,
    /// waits, or is off in a VM that runs on.
    pub(super) fn is_live(&self) -> bool {
        match self.state {
            VcpuState::Ready | VcpuState::Waiting => true,
            VcpuState::Off => self.vm.is_running(),
            VcpuState::Stopped | VcpuState::Faulted => false,
        }
    }

    /// Follows what the VM's other vCPUs did to it: the VM ended (the vCPU
    /// stops), a restart began (it parks), or it was turned on (it starts
    /// at its next switch-in). `loaded`: whether it is the vCPU switched
    /// in. Returns true when it became ready.
    pub(super) fn follow_vm(&mut self, loaded: bool) -> bool {
        let epoch = self.vm.epoch.load(Ordering::Acquire);
        if epoch == self.seen_epoch {
            return false;
        }
        self.seen_epoch = epoch;
        match self.vm.life.load(Ordering::Acquire) {
            LIFE_STOPPED | LIFE_FAULTED => {
                if matches!(self.state, VcpuState::Stopped | VcpuState::Faulted) {
                    return false;
                }
                self.state = if self.vm.is_faulted() {
                    VcpuState::Faulted
                } else {
                    VcpuState::Stopped
                };
                if loaded {
                    self.arch.release();
                }
                self.publish();
                false
            }
            LIFE_RESTARTING => {
                if self.generation != self.vm.generation.load(Ordering::Acquire) {
                    self.park();
                }
                false
            }
            _ => {
                if self.generation != self.vm.generation.load(Ordering::Acquire) {
                    // A restart this vCPU slept through (it was parked by
                    // its own CPU's wait): it is off now, like the rest.
                    self.park();
                }
                if self.state != VcpuState::Off {
                    return false;
                }
                let Some(start) = self.vm.power_on_request(self.index) else {
                    return false;
                };
                self.vm.power[self.index]
                    .state
                    .store(POWER_ON, Ordering::Release);
                self.start = Some(start);
                self.state = VcpuState::Ready;
                self.interrupts_changed = true;
                true
            }
        }
    }

    /// Leaves the guest for the restart in progress: off, its interrupt
    /// state reset, counted as parked.
    pub(super) fn park(&mut self) {
        self.objects.with(|objects| objects.interrupts.reset());
        self.state = VcpuState::Off;
        self.start = None;
        self.counters.restarts += 1;
        self.loop_detector.progressed();
        self.generation = self.vm.generation.load(Ordering::Acquire);
        self.vm.parked.fetch_add(1, Ordering::AcqRel);
    }

    /// Applies the fault policy to a vCPU that cannot take its fault.
    pub(super) fn fatal_fault(&mut self) -> Outcome {
        let restarts = self.vm.restarts();
        let response = self
            .objects
            .with(|objects| objects.fault_policy.response(restarts));
        match response {
            FaultResponse::Restart => Outcome::Restart,
            FaultResponse::Stop => self.end_vm(true, Outcome::Yield),
            FaultResponse::Panic => self.end_vm(true, Outcome::Panic),
        }
    }

    /// Ends the VM from this vCPU (`faulted`: by its policy).
    pub(super) fn end_vm(&mut self, faulted: bool, outcome: Outcome) -> Outcome {
        let ended = self.vm.end(faulted, self.index);
        self.state = if self.vm.is_faulted() {
            VcpuState::Faulted
        } else {
            VcpuState::Stopped
        };
        self.arch.release();
        self.publish();
        if ended {
            Outcome::Ended(outcome == Outcome::Panic)
        } else {
            outcome
        }
    }

    /// Counts and dispatches one exit of this vCPU (not a physical
    /// interrupt). `None`: the guest resumes at once, the common case,
    /// decided here in a few instructions; otherwise what
    /// [`Self::carry_out`] made of the action.
    #[inline(always)]
    pub(super) fn handle(&mut self, exit: &GuestExit) -> Option<Outcome> {
        match exit.trap {
            Trap::Hypercall { .. } | Trap::SecureMonitorCall => self.counters.hypercalls += 1,
            Trap::MmioRead { .. } | Trap::MmioWrite { .. } => self.counters.mmio += 1,
            Trap::WaitForInterrupt { .. } | Trap::WaitForEvent { .. } => self.counters.waits += 1,
            _ => self.counters.other += 1,
        }
        let arch = &mut self.arch;
        let action = self
            .objects
            .with(|objects| dispatch(exit, arch, &objects.routes));
        match action {
            Action::Resume => None,
            Action::ResumeInterruptsChanged => {
                self.interrupts_changed = true;
                // Only a VM with other vCPUs can have changed theirs.
                if self.vm.vcpus > 1 {
                    self.kick_others();
                }
                None
            }
            action => Some(self.carry_out(action)),
        }
    }

    /// Kicks the other vCPUs whose interrupts this vCPU's last access
    /// changed.
    #[inline(never)]
    pub(super) fn kick_others(&self) {
        let kicks = self.objects.with(|objects| objects.interrupts.take_kicks());
        if kicks != 0 {
            self.vm.kick(kicks, self.index);
        }
    }

    /// Carries out an action other than resuming at once.
    #[inline(never)]
    pub(super) fn carry_out(&mut self, action: Action) -> Outcome {
        match action {
            Action::Resume | Action::ResumeInterruptsChanged => Outcome::Keep,
            Action::Wait => {
                self.state = VcpuState::Waiting;
                Outcome::Yield
            }
            Action::StopVm => self.end_vm(false, Outcome::Yield),
            Action::CpuOff => {
                // Under the VM's lock: no CPU_ON of this vCPU races it.
                let last = self.objects.with(|_| self.vm.power_off(self.index));
                if last {
                    return self.end_vm(false, Outcome::Yield);
                }
                self.state = VcpuState::Off;
                self.publish();
                Outcome::Yield
            }
            Action::ResetVm => Outcome::Restart,
            Action::Yield => Outcome::Yield,
            Action::InjectDataAbort { .. }
            | Action::InjectPrefetchAbort { .. }
            | Action::InjectUndefined => {
                let pc = self.arch.pc();
                if self.loop_detector.faulted_at(pc, self.counters.progress())
                    || !self.arch.reflect(&action)
                {
                    return self.fatal_fault();
                }
                self.loop_detector.entered(self.arch.pc());
                self.counters.injected_faults += 1;
                Outcome::Keep
            }
        }
    }
}
