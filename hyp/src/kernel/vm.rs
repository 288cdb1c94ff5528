// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a VM's vCPUs share across CPUs: its name, its life (running,
//! stopped, restarting), its vCPUs' power states (PSCI), the restart
//! protocol's counters and the epoch that tells a vCPU's CPU to look
//! again, and what its vCPUs last published for status reports.
//!
//! All of it is atomics and a mutex: a `Vm` is `Sync` with no claim of
//! ours. Its capsules (devices, services, interrupt controller, fault
//! policy, RAM loader) are not here: they are reached through the VM's
//! lock ([`super::lock`]).

use super::counters::{write_counters, VcpuCounters};
use super::platform::{CpuKick, NoKick};
use super::vcpu::VcpuState;
use crate::config::MAX_VCPUS;
use crate::psci::VcpuPower;
use crate::sync::{AtomicU32, AtomicU8, Mutex, Ordering};

/// A VM's life as a whole.
pub(super) const LIFE_RUNNING: u8 = 0;
pub(super) const LIFE_STOPPED: u8 = 1;
pub(super) const LIFE_FAULTED: u8 = 2;
pub(super) const LIFE_RESTARTING: u8 = 3;

/// A vCPU's power state (PSCI).
pub(super) const POWER_OFF: u8 = 0;
pub(super) const POWER_ON_PENDING: u8 = 1;
pub(super) const POWER_ON: u8 = 2;

/// A CPU_ON entry that means "the boot state" (vCPU 0 after a restart).
pub(super) const BOOT_ENTRY: u32 = u32::MAX;

/// One vCPU's power state and, while it is turned on, where it starts.
#[derive(Debug)]
pub(super) struct Power {
    pub(super) state: AtomicU8,
    pub(super) entry: AtomicU32,
    pub(super) context: AtomicU32,
}

impl Power {
    fn new(state: u8) -> Power {
        Power {
            state: AtomicU8::new(state),
            entry: AtomicU32::new(BOOT_ENTRY),
            context: AtomicU32::new(0),
        }
    }
}

/// What one vCPU last published of itself, for status reports.
#[derive(Clone, Copy, Debug)]
struct Published {
    counters: VcpuCounters,
    state: VcpuState,
}

/// What the VM's vCPUs last published, for status reports.
#[derive(Clone, Copy, Debug)]
struct Reports {
    vcpus: [Published; MAX_VCPUS],
    /// The exit status the guest reported, as its vCPUs last read it.
    status: Option<u32>,
}

/// One VM: what its vCPUs share (see the module documentation).
pub struct Vm<'a> {
    /// Name, for messages.
    pub name: &'static str,
    /// Its number in the system (0 for the first VM of the table).
    pub id: usize,
    pub(super) vcpus: usize,
    /// The physical CPU of each vCPU.
    pub(super) cpus: [u8; MAX_VCPUS],
    /// Its RAM in its own address space (IPA, bytes): where CPU_ON may
    /// start a vCPU.
    pub(super) ram: (u32, u32),
    pub(super) kicker: &'a dyn CpuKick,
    pub(super) life: AtomicU8,
    /// Restarts so far; a vCPU that has seen fewer takes part in the one
    /// in progress.
    pub(super) generation: AtomicU32,
    /// vCPUs parked for the restart in progress.
    pub(super) parked: AtomicU32,
    pub(super) power: [Power; MAX_VCPUS],
    /// Bumped after every change of `life`, `generation` or a power state
    /// that a vCPU's CPU must act on: a vCPU that has seen the current
    /// value has nothing to follow (one load on the common path).
    pub(super) epoch: AtomicU32,
    published: Mutex<Reports>,
}

impl core::fmt::Debug for Vm<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vm")
            .field("name", &self.name)
            .field("vcpus", &self.vcpus)
            .field("life", &self.life.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a> Vm<'a> {
    /// A VM with one vCPU on CPU 0 and no other CPU to kick: the VM table
    /// entry `id`. [`Vm::with_vcpus`] gives it more.
    pub fn new(name: &'static str, id: usize) -> Self {
        Vm {
            name,
            id,
            vcpus: 1,
            cpus: [0; MAX_VCPUS],
            ram: (0, u32::MAX),
            kicker: &NoKick,
            life: AtomicU8::new(LIFE_RUNNING),
            generation: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            power: core::array::from_fn(|_| Power::new(POWER_OFF)),
            epoch: AtomicU32::new(0),
            published: Mutex::new(Reports {
                vcpus: [Published {
                    counters: VcpuCounters::default(),
                    state: VcpuState::Off,
                }; MAX_VCPUS],
                status: None,
            }),
        }
        .powered_on(0)
    }

    pub(super) fn powered_on(self, vcpu: usize) -> Self {
        self.power[vcpu].state.store(POWER_ON, Ordering::Relaxed);
        self.published.lock().vcpus[vcpu].state = VcpuState::Ready;
        self
    }

    /// The VM with one vCPU per entry of `cpus` (vCPU i runs on physical
    /// CPU `cpus[i]`; at most [`MAX_VCPUS`]), whose CPUs `kicker` reaches,
    /// and whose RAM is `ram` (IPA and bytes). vCPU 0 starts on; the
    /// others wait for PSCI CPU_ON.
    pub fn with_vcpus(mut self, cpus: &[u8], kicker: &'a dyn CpuKick, ram: (u32, u32)) -> Self {
        self.vcpus = cpus.len().clamp(1, MAX_VCPUS);
        for (slot, &cpu) in self.cpus.iter_mut().zip(cpus) {
            *slot = cpu;
        }
        self.kicker = kicker;
        self.ram = ram;
        self
    }

    /// How many vCPUs it has.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus
    }

    /// The physical CPU vCPU `vcpu` runs on.
    pub fn cpu_of(&self, vcpu: usize) -> usize {
        self.cpus[vcpu.min(MAX_VCPUS - 1)] as usize
    }

    /// Whether CPU `cpu` is the only one that runs its vCPUs: it has one
    /// vCPU, on that CPU. A VM whose objects no other CPU reaches (console
    /// input comes on `cpu`) needs no lock ([`super::OneCpu`]).
    pub fn runs_only_on(&self, cpu: usize) -> bool {
        self.vcpus == 1 && self.cpu_of(0) == cpu
    }

    /// Whether it still runs (it may be restarting).
    pub fn is_running(&self) -> bool {
        matches!(
            self.life.load(Ordering::Acquire),
            LIFE_RUNNING | LIFE_RESTARTING
        )
    }

    /// Whether its fault policy stopped it.
    pub fn is_faulted(&self) -> bool {
        self.life.load(Ordering::Acquire) == LIFE_FAULTED
    }

    /// How many times it restarted.
    pub fn restarts(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Kicks the CPUs of the vCPUs in `mask` (bit n: vCPU n) but `except`.
    pub fn kick(&self, mask: u32, except: usize) {
        for vcpu in 0..self.vcpus {
            if vcpu != except && mask & (1 << vcpu) != 0 {
                self.kicker.kick(self.cpu_of(vcpu));
            }
        }
    }

    /// Marks a change the vCPUs must follow ([`VirtualCpu::follow_vm`]).
    pub(super) fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Kicks every vCPU's CPU but `except`'s.
    pub(super) fn kick_all(&self, except: usize) {
        self.kick(u32::MAX, except);
    }

    /// Ends the VM (`faulted`: by its fault policy) unless it has already
    /// ended; returns whether this call ended it. Every other vCPU's CPU is
    /// kicked to stop it.
    pub(super) fn end(&self, faulted: bool, by: usize) -> bool {
        let life = if faulted { LIFE_FAULTED } else { LIFE_STOPPED };
        let ended = self
            .life
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                matches!(now, LIFE_RUNNING | LIFE_RESTARTING).then_some(life)
            })
            .is_ok();
        if ended {
            self.changed();
            self.kick_all(by);
        }
        ended
    }

    /// Records what vCPU `vcpu` is and has done, and the exit status its
    /// guest reported (read under the VM's lock), for reports.
    pub(super) fn publish(
        &self,
        vcpu: usize,
        counters: VcpuCounters,
        state: VcpuState,
        status: Option<u32>,
    ) {
        let mut reports = self.published.lock();
        if let Some(slot) = reports.vcpus.get_mut(vcpu) {
            *slot = Published { counters, state };
        }
        reports.status = status;
    }

    /// The exit status its guest reported (Capvisor's service), as its
    /// vCPUs last published it: every time one stops, and at most once a
    /// slice while one runs.
    pub fn exit_status(&self) -> Option<u32> {
        self.published.lock().status
    }

    /// Its vCPUs' counters as last published, summed.
    pub fn counters(&self) -> VcpuCounters {
        let published = self.published.lock();
        published.vcpus[..self.vcpus]
            .iter()
            .fold(VcpuCounters::default(), |sum, vcpu| {
                sum.plus(&vcpu.counters)
            })
    }

    /// Writes the VM's state and counters (summed over its vCPUs, as they
    /// last published them) on one line, for status reports.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let states: [VcpuState; MAX_VCPUS] = {
            let published = self.published.lock();
            core::array::from_fn(|vcpu| published.vcpus[vcpu].state)
        };
        let state = match self.life.load(Ordering::Acquire) {
            LIFE_STOPPED => "powered off",
            LIFE_FAULTED => "stopped by its fault policy",
            LIFE_RESTARTING => "restarting",
            _ if states[..self.vcpus].contains(&VcpuState::Ready) => "ready",
            _ => "waiting",
        };
        let mut counters = self.counters();
        counters.restarts = self.restarts();
        write_counters(out, state, &counters)?;
        if self.vcpus > 1 {
            let on = states[..self.vcpus]
                .iter()
                .filter(|state| matches!(state, VcpuState::Ready | VcpuState::Waiting))
                .count();
            write!(out, "; vCPUs on {} of {}", on, self.vcpus)?;
        }
        Ok(())
    }

    /// Turns vCPU `vcpu` off (PSCI CPU_OFF); true when it was the VM's
    /// last vCPU on (the VM then stops). Called holding the VM's lock.
    pub(super) fn power_off(&self, vcpu: usize) -> bool {
        self.power[vcpu].state.store(POWER_OFF, Ordering::Release);
        self.changed();
        !self.power[..self.vcpus]
            .iter()
            .any(|power| power.state.load(Ordering::Acquire) != POWER_OFF)
    }

    /// A power-on request for vCPU `vcpu` that its CPU has not acted on:
    /// the entry ([`BOOT_ENTRY`] for the boot state) and context.
    pub(super) fn power_on_request(&self, vcpu: usize) -> Option<(u32, u32)> {
        let power = &self.power[vcpu];
        (power.state.load(Ordering::Acquire) == POWER_ON_PENDING).then(|| {
            (
                power.entry.load(Ordering::Relaxed),
                power.context.load(Ordering::Relaxed),
            )
        })
    }
}

impl VcpuPower for Vm<'_> {
    fn vcpus(&self) -> usize {
        self.vcpus
    }

    fn cpu_on(&self, target: usize, entry: u32, context: u32) -> u32 {
        if target >= self.vcpus {
            return crate::psci::INVALID_PARAMETERS;
        }
        let (base, size) = self.ram;
        if entry.wrapping_sub(base) >= size || entry == BOOT_ENTRY {
            return crate::psci::INVALID_ADDRESS;
        }
        let power = &self.power[target];
        match power.state.load(Ordering::Acquire) {
            POWER_ON => return crate::psci::ALREADY_ON,
            POWER_ON_PENDING => return crate::psci::ON_PENDING,
            _ => {}
        }
        // The caller (PSCI, one of the VM's services) holds the VM's lock,
        // or the VM has this one vCPU: no other CPU_ON races this one.
        power.entry.store(entry, Ordering::Relaxed);
        power.context.store(context, Ordering::Relaxed);
        power.state.store(POWER_ON_PENDING, Ordering::Release);
        self.changed();
        self.kicker.kick(self.cpu_of(target));
        crate::psci::SUCCESS
    }

    fn affinity_info(&self, target: usize) -> u32 {
        match self.power[target.min(MAX_VCPUS - 1)]
            .state
            .load(Ordering::Acquire)
        {
            POWER_ON => crate::psci::AFFINITY_ON,
            POWER_ON_PENDING => crate::psci::AFFINITY_ON_PENDING,
            _ => crate::psci::AFFINITY_OFF,
        }
    }
}
