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
//! (`docs/architecture.md`, boot flow step 4): the scheduler picks a
//! vCPU and its time slice
//! ([`crate::scheduler`]), the kernel enters it, takes its exit,
//! dispatches it ([`crate::dispatch`]), and carries out what the exit asks:
//! resume, block on WFI until an interrupt is pending, turn the vCPU off,
//! stop or restart the VM, or reflect a fault (asking the VM's fault
//! policy when the guest cannot take its own faults); physical interrupts
//! go to the board ([`Platform`]), whose alarm ends time slices. It
//! returns when every vCPU it runs has stopped. The architecture hides
//! behind [`Vcpu`] and the board behind [`Platform`] and [`CpuKick`], so
//! the loop is tested on the host with scripted fakes.
//!
//! # Several CPUs
//!
//! A VM's vCPUs run on different physical CPUs at once, and share the
//! VM's devices, services and interrupt controller. Those capsules are
//! plain single-threaded objects; the VM's lock ([`Vm::lock`]) makes them
//! safe: the kernel holds it around every call into a vCPU's routes and
//! interrupt backend, and a board holds it when it delivers console input
//! to the VM. The lock order is: a VM's lock, then the console
//! multiplexer's, then the console UART's; never two VMs' locks at once.
//!
//! What one vCPU does that another must see goes through the VM's atomics
//! and a kick ([`CpuKick`]: a physical SGI to the other vCPU's CPU, which
//! takes it as an exit or a wake-up and looks again): an interrupt it
//! made pending for another vCPU ([`InterruptBackend::take_kicks`]), PSCI
//! CPU_ON, the VM stopping, a restart. A restart parks every other vCPU
//! first (each one's CPU acknowledges once the vCPU is out of the guest),
//! then reloads the RAM and starts vCPU 0 from its boot state.

use crate::config::MAX_VCPUS;
use crate::dispatch::{dispatch, Action, GuestRegisters, HypercallDriver, MmioDevice, Routes};
use crate::fault_policy::{FaultLoopDetector, FaultResponse, VmFaultPolicy};
use crate::interrupts::{InterruptBackend, NoInterrupts, VirtualTimer};
use crate::psci::VcpuPower;
use crate::scheduler::{Scheduler, SchedulingDecision, StopReason};
use crate::trap::{GuestExit, Trap};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// A virtual CPU, implemented by the architecture chip. Its virtual
/// timer is read by the vCPU's interrupt backend ([`VirtualTimer`]).
pub trait Vcpu: GuestRegisters + VirtualTimer {
    /// Makes this vCPU's state (stage 2, system registers, FP) the CPU's,
    /// after another vCPU ran. Not called between exits of the same vCPU.
    fn switch_in(&mut self);
    /// Saves the state `switch_in` loaded, before another vCPU runs.
    fn switch_out(&mut self);
    /// Runs the guest until its next exit.
    fn run(&mut self) -> GuestExit;
    /// Makes the guest take the exception `action` asks for (an
    /// `Inject...` action); false if it cannot (its vectors are unusable).
    fn reflect(&mut self, action: &Action) -> bool;
    /// Puts the vCPU back in its boot state (for a restart or a power-on),
    /// forgetting every translation the guest's previous life cached (TLB
    /// entries of its VMID). Called while the vCPU is switched in.
    fn reset(&mut self);
    /// The VM has stopped for good: drop what the CPU still caches for it
    /// (TLB entries of its VMID). Called while the vCPU is switched in.
    fn release(&mut self);
}

/// What the kernel needs from the board on one physical CPU: time, the
/// alarm and the physical interrupts the hypervisor owns.
pub trait Platform {
    /// The monotonic clock, in ticks (the same clock as
    /// [`crate::interrupts::VirtualTimerState::deadline`]).
    fn now(&self) -> u64;
    /// Programs this CPU's alarm for `deadline`, or disarms it.
    fn set_alarm(&self, deadline: Option<u64>);
    /// Services every pending physical interrupt (console input, the
    /// alarm, a kick, ...), raising virtual interrupts in the VMs they
    /// concern. Returns true when the user asked for the VMs' status (the
    /// kernel then publishes its vCPUs' counters and calls
    /// [`Platform::report_status`]).
    fn service_interrupts(&self) -> bool;
    /// Prints one status line per VM, from what the VMs' vCPUs published
    /// ([`Vm::describe`]).
    fn report_status(&self);
    /// Waits until a physical interrupt is pending (WFI in Hyp mode, with
    /// interrupts masked: it returns, and `service_interrupts` handles it).
    fn wait_for_interrupt(&self);
    /// Whether another CPU kicked this one since the last call ([`CpuKick`];
    /// the kernel then follows its vCPUs' VMs before it re-enters the
    /// interrupted vCPU). A platform that cannot tell says yes.
    fn take_kick(&self) -> bool {
        true
    }
    /// VM `vm` (its [`Vm::id`]) has stopped for good (powered off or
    /// stopped by its fault policy): nothing it owned should wait for it
    /// any more (console input, for one). Called once, on the CPU that
    /// stopped it.
    fn vm_stopped(&self, vm: usize) {
        let _ = vm;
    }
}

/// A way to make another physical CPU look at its vCPUs again (the board:
/// a physical SGI, taken as an exit or a wake-up).
pub trait CpuKick: Sync {
    /// Interrupts CPU `cpu` soon; nothing when it is the calling CPU (which
    /// looks again anyway).
    fn kick(&self, cpu: usize);
}

/// No other CPU to kick (a one-CPU board, the host tests).
#[derive(Debug)]
pub struct NoKick;

impl CpuKick for NoKick {
    fn kick(&self, _cpu: usize) {}
}

/// A VM's RAM as the board set it up: what a restart reloads.
pub trait GuestMemory {
    /// Makes the RAM what it must be at boot: zeroed, the images copied in,
    /// and visible to a guest that starts with its MMU and caches off.
    fn load(&self);
}

/// Where a vCPU is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
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

/// Exit counts of one vCPU, by what the exit was. Each exit is counted
/// once, in its kind's counter; [`VmCounters::exits`] is their sum.
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
    /// Restarts of its VM it took part in.
    pub restarts: u32,
    /// Physical interrupts that took the CPU from it.
    pub irqs: u32,
    /// Times it was given the CPU.
    pub slices: u32,
    /// Times its slice ran out while another vCPU was ready.
    pub preemptions: u32,
    /// Times its slice ran out with no other vCPU ready (it went on).
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
    /// faults: the vCPU's progress, for the fault loop detector.
    const fn progress(&self) -> u32 {
        self.exits()
            .wrapping_sub(self.irqs)
            .wrapping_sub(self.injected_faults)
    }

    /// The sum of two vCPUs' counts (restarts: the larger).
    pub const fn plus(&self, other: &VmCounters) -> VmCounters {
        VmCounters {
            hypercalls: self.hypercalls.wrapping_add(other.hypercalls),
            mmio: self.mmio.wrapping_add(other.mmio),
            waits: self.waits.wrapping_add(other.waits),
            other: self.other.wrapping_add(other.other),
            injected_faults: self.injected_faults.wrapping_add(other.injected_faults),
            restarts: if self.restarts > other.restarts {
                self.restarts
            } else {
                other.restarts
            },
            irqs: self.irqs.wrapping_add(other.irqs),
            slices: self.slices.wrapping_add(other.slices),
            preemptions: self.preemptions.wrapping_add(other.preemptions),
            ticks: self.ticks.wrapping_add(other.ticks),
        }
    }
}

/// A VM's life as a whole.
const LIFE_RUNNING: u8 = 0;
const LIFE_STOPPED: u8 = 1;
const LIFE_FAULTED: u8 = 2;
const LIFE_RESTARTING: u8 = 3;

/// A vCPU's power state (PSCI).
const POWER_OFF: u8 = 0;
const POWER_ON_PENDING: u8 = 1;
const POWER_ON: u8 = 2;

/// A CPU_ON entry that means "the boot state" (vCPU 0 after a restart).
const BOOT_ENTRY: u32 = u32::MAX;

/// One vCPU's power state and, while it is turned on, where it starts.
#[derive(Debug)]
struct Power {
    state: AtomicU8,
    entry: AtomicU32,
    context: AtomicU32,
}

impl Power {
    const fn new(state: u8) -> Power {
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
    counters: VmCounters,
    state: VmState,
}

/// One VM: what its vCPUs share (see the module documentation).
pub struct Vm<'a> {
    /// Name, for messages.
    pub name: &'static str,
    /// Its number in the system (0 for the first VM of the table).
    pub id: usize,
    /// Its RAM (reloaded on a restart).
    pub memory: &'a dyn GuestMemory,
    /// What happens when one of its vCPUs cannot take its own faults.
    pub fault_policy: &'a dyn VmFaultPolicy,
    vcpus: usize,
    /// The physical CPU of each vCPU.
    cpus: [u8; MAX_VCPUS],
    /// Its RAM in its own address space (IPA, bytes): where CPU_ON may
    /// start a vCPU.
    ram: (u32, u32),
    kicker: &'a dyn CpuKick,
    lock: spin::Mutex<()>,
    /// Whether another CPU than its one vCPU's can reach its devices and
    /// services (it has several vCPUs, or console input for it arrives on
    /// another CPU): only then is `lock` taken.
    shared: bool,
    life: AtomicU8,
    /// Restarts so far; a vCPU that has seen fewer takes part in the one
    /// in progress.
    generation: AtomicU32,
    /// vCPUs parked for the restart in progress.
    parked: AtomicU32,
    power: [Power; MAX_VCPUS],
    /// Bumped after every change of `life`, `generation` or a power state
    /// that a vCPU's CPU must act on: a vCPU that has seen the current
    /// value has nothing to follow (one load on the common path).
    epoch: AtomicU32,
    published: spin::Mutex<[Published; MAX_VCPUS]>,
}

#[allow(unsafe_code)] // the one Sync claim of the kernel, argued below
                      // SAFETY: a `Vm` is shared by its vCPUs' CPUs. Its own state is atomics
                      // and spin mutexes. `memory` is used only by the vCPU that restarts the VM,
                      // after every other vCPU of the VM has parked out of the guest (the
                      // restart protocol in `Kernel`), and while it holds `lock`; `fault_policy`
                      // is asked only while holding `lock`; `kicker` is `Sync`. No field is
                      // reached from two CPUs at once without one of these.
unsafe impl Sync for Vm<'_> {}

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
    pub fn new(
        name: &'static str,
        id: usize,
        memory: &'a dyn GuestMemory,
        fault_policy: &'a dyn VmFaultPolicy,
    ) -> Self {
        Vm {
            name,
            id,
            memory,
            fault_policy,
            vcpus: 1,
            cpus: [0; MAX_VCPUS],
            ram: (0, u32::MAX),
            kicker: &NoKick,
            lock: spin::Mutex::new(()),
            shared: false,
            life: AtomicU8::new(LIFE_RUNNING),
            generation: AtomicU32::new(0),
            parked: AtomicU32::new(0),
            power: [const { Power::new(POWER_OFF) }; MAX_VCPUS],
            epoch: AtomicU32::new(0),
            published: spin::Mutex::new(
                [Published {
                    counters: VmCounters::default(),
                    state: VmState::Off,
                }; MAX_VCPUS],
            ),
        }
        .powered_on(0)
    }

    fn powered_on(self, vcpu: usize) -> Self {
        self.power[vcpu].state.store(POWER_ON, Ordering::Relaxed);
        self.published.lock()[vcpu].state = VmState::Ready;
        self
    }

    /// The VM with one vCPU per entry of `cpus` (vCPU i runs on physical
    /// CPU `cpus[i]`; at most [`MAX_VCPUS`]), whose CPUs `kicker` reaches,
    /// and whose RAM is `ram` (IPA and bytes); console input reaches its
    /// devices on CPU `console_cpu`. vCPU 0 starts on; the others wait for
    /// PSCI CPU_ON.
    pub fn with_vcpus(
        mut self,
        cpus: &[u8],
        kicker: &'a dyn CpuKick,
        ram: (u32, u32),
        console_cpu: usize,
    ) -> Self {
        self.vcpus = cpus.len().clamp(1, MAX_VCPUS);
        for (slot, &cpu) in self.cpus.iter_mut().zip(cpus) {
            *slot = cpu;
        }
        self.kicker = kicker;
        self.ram = ram;
        self.shared = self.vcpus > 1 || self.cpu_of(0) != console_cpu;
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

    /// Takes the VM's lock: held around every call into its vCPUs'
    /// devices, services and interrupt backends (module documentation).
    /// A VM whose objects only one CPU ever reaches (one vCPU, on the CPU
    /// that takes console input) has nothing to lock: `None`.
    #[inline]
    pub fn lock(&self) -> Option<spin::MutexGuard<'_, ()>> {
        self.shared.then(|| self.lock.lock())
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
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Kicks every vCPU's CPU but `except`'s.
    fn kick_all(&self, except: usize) {
        self.kick(u32::MAX, except);
    }

    /// Ends the VM (`faulted`: by its fault policy) unless it has already
    /// ended; returns whether this call ended it. Every other vCPU's CPU is
    /// kicked to stop it.
    fn end(&self, faulted: bool, by: usize) -> bool {
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

    /// Records what vCPU `vcpu` is and has done, for reports.
    fn publish(&self, vcpu: usize, counters: VmCounters, state: VmState) {
        if let Some(slot) = self.published.lock().get_mut(vcpu) {
            *slot = Published { counters, state };
        }
    }

    /// Its vCPUs' counters as last published, summed.
    pub fn counters(&self) -> VmCounters {
        let published = self.published.lock();
        published[..self.vcpus]
            .iter()
            .fold(VmCounters::default(), |sum, vcpu| sum.plus(&vcpu.counters))
    }

    /// Writes the VM's state and counters (summed over its vCPUs, as they
    /// last published them) on one line, for status reports.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let states: [VmState; MAX_VCPUS] = {
            let published = self.published.lock();
            core::array::from_fn(|vcpu| published[vcpu].state)
        };
        let state = match self.life.load(Ordering::Acquire) {
            LIFE_STOPPED => "powered off",
            LIFE_FAULTED => "stopped by its fault policy",
            LIFE_RESTARTING => "restarting",
            _ if states[..self.vcpus].contains(&VmState::Ready) => "ready",
            _ => "waiting",
        };
        let mut counters = self.counters();
        counters.restarts = self.restarts();
        write_counters(out, state, &counters)?;
        if self.vcpus > 1 {
            let on = states[..self.vcpus]
                .iter()
                .filter(|state| matches!(state, VmState::Ready | VmState::Waiting))
                .count();
            write!(out, "; vCPUs on {} of {}", on, self.vcpus)?;
        }
        Ok(())
    }

    /// Turns vCPU `vcpu` off (PSCI CPU_OFF); true when it was the VM's
    /// last vCPU on (the VM then stops). Called holding the VM's lock.
    fn power_off(&self, vcpu: usize) -> bool {
        self.power[vcpu].state.store(POWER_OFF, Ordering::Release);
        self.changed();
        !self.power[..self.vcpus]
            .iter()
            .any(|power| power.state.load(Ordering::Acquire) != POWER_OFF)
    }

    /// A power-on request for vCPU `vcpu` that its CPU has not acted on:
    /// the entry ([`BOOT_ENTRY`] for the boot state) and context.
    fn power_on_request(&self, vcpu: usize) -> Option<(u32, u32)> {
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
        // The caller holds the VM's lock: no other CPU_ON races this one.
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

/// Writes a state and counters as one status line's tail.
fn write_counters(
    out: &mut dyn core::fmt::Write,
    state: &str,
    c: &VmCounters,
) -> core::fmt::Result {
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

/// One vCPU of a VM, as the CPU it is pinned to runs it.
pub struct VirtualCpu<'a, V: Vcpu> {
    /// Its VM.
    pub vm: &'a Vm<'a>,
    /// Its number in the VM (its MPIDR affinity level 0).
    pub index: usize,
    /// Current state.
    pub state: VmState,
    /// The architectural vCPU.
    pub vcpu: V,
    /// Its virtual devices and hypercall services (views onto its VM's),
    /// with the tables that route exits to them.
    pub routes: Routes<'a>,
    /// Its interrupt backend: its view of the VM's virtual interrupt
    /// controller, and its timer.
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
    /// The VM restarts this vCPU has taken part in.
    generation: u32,
    /// The VM's [`Vm::epoch`] this vCPU last followed (`u32::MAX` before
    /// the first time).
    seen_epoch: u32,
    /// Where it starts when next switched in (after a power-on or a
    /// restart): `(entry, context)`, [`BOOT_ENTRY`] for the boot state.
    start: Option<(u32, u32)>,
    /// When it last published its counters at a slice's end.
    published_at: u64,
}

impl<V: Vcpu> core::fmt::Debug for VirtualCpu<'_, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtualCpu")
            .field("vm", &self.vm.name)
            .field("index", &self.index)
            .field("state", &self.state)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<'a, V: Vcpu> VirtualCpu<'a, V> {
    /// vCPU `index` of `vm`, in its boot state (on for vCPU 0, off for the
    /// others until CPU_ON), reaching `devices` and `services`.
    ///
    /// # Panics
    ///
    /// With more than [`crate::dispatch::MAX_ROUTES`] devices or services, or
    /// services that claim one function id twice (a board wiring
    /// error).
    pub fn new(
        vm: &'a Vm<'a>,
        index: usize,
        vcpu: V,
        devices: &'a [&'a dyn MmioDevice],
        services: &'a [&'a dyn HypercallDriver],
    ) -> Self {
        VirtualCpu {
            vm,
            index,
            state: if index == 0 {
                VmState::Ready
            } else {
                VmState::Off
            },
            vcpu,
            routes: Routes::new(devices, services)
                .unwrap_or_else(|error| panic!("VM '{}': {error}", vm.name)),
            interrupts: &NoInterrupts,
            counters: VmCounters::default(),
            loop_detector: FaultLoopDetector::new(),
            interrupts_changed: true,
            poll_every_entry: false,
            timer_was_armed: false,
            generation: 0,
            seen_epoch: u32::MAX,
            start: None,
            published_at: 0,
        }
    }

    /// Gives the vCPU its interrupt backend.
    pub fn with_interrupts(mut self, interrupts: &'a dyn InterruptBackend) -> Self {
        self.interrupts = interrupts;
        self.poll_every_entry = interrupts.polls_every_entry();
        self
    }

    /// Its VM's name.
    pub fn name(&self) -> &'static str {
        self.vm.name
    }

    /// Writes the vCPU's state and counters on one line.
    pub fn describe(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let state = match self.state {
            VmState::Ready => "ready",
            VmState::Waiting => "waiting",
            VmState::Off => "off",
            VmState::Stopped => "powered off",
            VmState::Faulted => "stopped by its fault policy",
        };
        write_counters(out, state, &self.counters)
    }

    /// Records its counters and state in its VM, for reports.
    fn publish(&self) {
        self.vm.publish(self.index, self.counters, self.state);
    }

    /// Whether an interrupt is pending for the vCPU now (a WFI completes),
    /// and if not, when to look again.
    fn poll_interrupts(&self, platform: &dyn Platform) -> crate::interrupts::Poll {
        let _vm = self.vm.lock();
        self.interrupts.poll(&self.vcpu, platform.now())
    }

    /// Whether the backend must run before the next entry: after
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

    /// Whether the CPU must still run this vCPU or wait for it: it can run,
    /// waits, or is off in a VM that runs on.
    fn is_live(&self) -> bool {
        match self.state {
            VmState::Ready | VmState::Waiting => true,
            VmState::Off => self.vm.is_running(),
            VmState::Stopped | VmState::Faulted => false,
        }
    }

    /// Follows what the VM's other vCPUs did to it: the VM ended (the vCPU
    /// stops), a restart began (it parks), or it was turned on (it starts
    /// at its next switch-in). `loaded`: whether it is the vCPU switched
    /// in. Returns true when it became ready.
    fn follow_vm(&mut self, loaded: bool) -> bool {
        let epoch = self.vm.epoch.load(Ordering::Acquire);
        if epoch == self.seen_epoch {
            return false;
        }
        self.seen_epoch = epoch;
        match self.vm.life.load(Ordering::Acquire) {
            LIFE_STOPPED | LIFE_FAULTED => {
                if matches!(self.state, VmState::Stopped | VmState::Faulted) {
                    return false;
                }
                self.state = if self.vm.is_faulted() {
                    VmState::Faulted
                } else {
                    VmState::Stopped
                };
                if loaded {
                    self.vcpu.release();
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
                if self.state != VmState::Off {
                    return false;
                }
                let Some(start) = self.vm.power_on_request(self.index) else {
                    return false;
                };
                self.vm.power[self.index]
                    .state
                    .store(POWER_ON, Ordering::Release);
                self.start = Some(start);
                self.state = VmState::Ready;
                self.interrupts_changed = true;
                true
            }
        }
    }

    /// Leaves the guest for the restart in progress: off, its interrupt
    /// state reset, counted as parked.
    fn park(&mut self) {
        {
            let _vm = self.vm.lock();
            self.interrupts.reset();
        }
        self.state = VmState::Off;
        self.start = None;
        self.counters.restarts += 1;
        self.loop_detector.progressed();
        self.generation = self.vm.generation.load(Ordering::Acquire);
        self.vm.parked.fetch_add(1, Ordering::AcqRel);
    }

    /// Applies the fault policy to a vCPU that cannot take its fault.
    fn fatal_fault(&mut self) -> Outcome {
        let response = {
            let _vm = self.vm.lock();
            self.vm.fault_policy.response(self.vm.restarts())
        };
        match response {
            FaultResponse::Restart => Outcome::Restart,
            FaultResponse::Stop => self.end_vm(true, Outcome::Yield),
            FaultResponse::Panic => self.end_vm(true, Outcome::Panic),
        }
    }

    /// Ends the VM from this vCPU (`faulted`: by its policy).
    fn end_vm(&mut self, faulted: bool, outcome: Outcome) -> Outcome {
        let ended = self.vm.end(faulted, self.index);
        self.state = if self.vm.is_faulted() {
            VmState::Faulted
        } else {
            VmState::Stopped
        };
        self.vcpu.release();
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
    fn handle(&mut self, exit: &GuestExit) -> Option<Outcome> {
        match exit.trap {
            Trap::Hypercall { .. } | Trap::SecureMonitorCall => self.counters.hypercalls += 1,
            Trap::MmioRead { .. } | Trap::MmioWrite { .. } => self.counters.mmio += 1,
            Trap::WaitForInterrupt { .. } | Trap::WaitForEvent { .. } => self.counters.waits += 1,
            _ => self.counters.other += 1,
        }
        let action = {
            let _vm = self.vm.lock();
            dispatch(exit, &mut self.vcpu, &self.routes)
        };
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
    fn kick_others(&self) {
        let kicks = {
            let _vm = self.vm.lock();
            self.interrupts.take_kicks()
        };
        if kicks != 0 {
            self.vm.kick(kicks, self.index);
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
            Action::StopVm => self.end_vm(false, Outcome::Yield),
            Action::CpuOff => {
                let last = {
                    let _vm = self.vm.lock();
                    self.vm.power_off(self.index)
                };
                if last {
                    return self.end_vm(false, Outcome::Yield);
                }
                self.state = VmState::Off;
                self.publish();
                Outcome::Yield
            }
            Action::ResetVm => Outcome::Restart,
            Action::Yield => Outcome::Yield,
            Action::InjectDataAbort { .. }
            | Action::InjectPrefetchAbort { .. }
            | Action::InjectUndefined => {
                let pc = self.vcpu.pc();
                if self.loop_detector.faulted_at(pc, self.counters.progress())
                    || !self.vcpu.reflect(&action)
                {
                    return self.fatal_fault();
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
fn report_status<V: Vcpu>(vcpus: &[VirtualCpu<'_, V>], platform: &dyn Platform) {
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
fn load<V: Vcpu>(vcpus: &mut [VirtualCpu<'_, V>], loaded: &mut Option<usize>, next: usize) {
    if *loaded != Some(next) {
        if let Some(previous) = *loaded {
            let previous = &mut vcpus[previous];
            {
                let _vm = previous.vm.lock();
                previous.interrupts.switch_out();
            }
            previous.vcpu.switch_out();
        }
        let next_vcpu = &mut vcpus[next];
        next_vcpu.vcpu.switch_in();
        {
            let _vm = next_vcpu.vm.lock();
            next_vcpu.interrupts.switch_in();
        }
        *loaded = Some(next);
    }
    let vcpu = &mut vcpus[next];
    if let Some((entry, context)) = vcpu.start.take() {
        vcpu.vcpu.reset();
        if entry != BOOT_ENTRY {
            vcpu.vcpu.set_pc(entry);
            vcpu.vcpu.set_register(0, context);
        }
        vcpu.loop_detector.progressed();
        vcpu.interrupts_changed = true;
    }
}

/// Follows every vCPU's VM (see [`VirtualCpu::follow_vm`]); true when one
/// was turned on.
fn follow_vms<V: Vcpu>(vcpus: &mut [VirtualCpu<'_, V>], loaded: Option<usize>) -> bool {
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
fn restart<V: Vcpu>(vcpus: &mut [VirtualCpu<'_, V>], loaded: Option<usize>, current: usize) {
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
        follow_vms(vcpus, loaded);
        core::hint::spin_loop();
    }
    let me = &mut vcpus[current];
    {
        let _vm = vm.lock();
        vm.memory.load();
        // Every device and service back to its reset state; the board
        // checked when it built the VM that each of a VM with a restart
        // policy can be (a VM that restarts itself by PSCI SYSTEM_RESET
        // gets what its devices can do).
        let _ = me.routes.reset_all();
        me.interrupts.reset();
        for (vcpu, power) in vm.power[..vm.vcpus].iter().enumerate() {
            let state = if vcpu == 0 {
                POWER_ON_PENDING
            } else {
                POWER_OFF
            };
            power.entry.store(BOOT_ENTRY, Ordering::Relaxed);
            power.state.store(state, Ordering::Release);
        }
    }
    me.state = VmState::Off;
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
    pub fn run<V: Vcpu>(
        &self,
        vcpus: &mut [VirtualCpu<'_, V>],
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
                .filter(|vcpu| vcpu.state == VmState::Waiting)
            {
                let poll = vcpu.poll_interrupts(platform);
                if poll.pending {
                    vcpu.state = VmState::Ready;
                } else {
                    wake_at = earliest(wake_at, poll.wake_at);
                }
            }
            let decision =
                scheduler.next(vcpus.len(), &|index| vcpus[index].state == VmState::Ready);
            let SchedulingDecision::Run { vm: current, slice } = decision else {
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
                    let timer = {
                        let _vm = vcpu.vm.lock();
                        vcpu.interrupts
                            .before_entry(&vcpu.vcpu, &|| platform.now(), changed)
                    };
                    let alarm = match timer {
                        None => alarm_without_timer,
                        Some(timer) => timer.min(alarm_without_timer),
                    };
                    if alarm != armed {
                        platform.set_alarm((alarm != NEVER).then_some(alarm));
                        armed = alarm;
                    }
                }
                let exit = vcpu.vcpu.run();
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
                    if vcpus[current].state != VmState::Ready {
                        break StopReason::Stopped;
                    }
                    let now = platform.now();
                    let slice_over = slice_end.is_some_and(|end| now >= end);
                    let woken = turned_on
                        || wake_at.is_some_and(|at| now >= at)
                        || vcpus.iter().any(|other| {
                            other.state == VmState::Waiting
                                && other.poll_interrupts(platform).pending
                        });
                    let others_ready = vcpus
                        .iter()
                        .enumerate()
                        .any(|(index, other)| index != current && other.state == VmState::Ready);
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
                        if vcpus[current].state == VmState::Ready {
                            load(vcpus, &mut loaded, current);
                            continue;
                        }
                        break StopReason::Preempted;
                    }
                    Outcome::Yield => {}
                }
                let vcpu = &mut vcpus[current];
                if vcpu.state == VmState::Waiting {
                    // WFI completes at once when an interrupt is pending;
                    // the backend looked at its state and must present it.
                    if vcpu.poll_interrupts(platform).pending {
                        vcpu.state = VmState::Ready;
                        vcpu.interrupts_changed = true;
                        continue;
                    }
                    break StopReason::Waiting;
                }
                break if vcpu.state == VmState::Ready {
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
        let letter = vcpu.name;
        VirtualCpu::new(solo(name, letter, world, policy), 0, vcpu, &[], services())
    }

    /// A leaked one-vCPU [`Vm`] (tests only) whose RAM logs as `letter`.
    fn solo<'a>(
        name: &'static str,
        letter: char,
        world: &World,
        policy: &'a dyn VmFaultPolicy,
    ) -> &'a Vm<'a> {
        let id = (letter as u8 - b'a') as usize;
        std::boxed::Box::leak(std::boxed::Box::new(Vm::new(
            name,
            id,
            memory(letter, world),
            policy,
        )))
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
            VirtualCpu::new(solo("a", 'a', &world, &policy), 0, a, devices, services())
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
            Vm::new("pair", 0, memory('x', world), policy).with_vcpus(
                &[0, 1],
                kicks,
                (0x4000_0000, 0x0100_0000),
                0,
            ),
        ));
        let services: &'a [&'a dyn HypercallDriver] =
            std::boxed::Box::leak(std::boxed::Box::new([
                &PowerOff as &dyn HypercallDriver,
                std::boxed::Box::leak(std::boxed::Box::new(PowerCalls(vm))),
            ]));
        [
            VirtualCpu::new(vm, 0, ScriptedVcpu::new('a', first, world), &[], services),
            VirtualCpu::new(vm, 1, ScriptedVcpu::new('b', second, world), &[], services),
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
        assert_eq!(vcpus[1].state, VmState::Off, "vCPU 1 waits for CPU_ON");
        assert_eq!(
            Kernel.run(&mut vcpus, &world, &no_slices(), 100),
            RunOutcome::AllStopped
        );
        // AFFINITY_INFO: off; CPU_ON: success, then already on; after it
        // ran, on.
        assert_eq!(
            vcpus[0].vcpu.r0_seen[1..5],
            [
                crate::psci::AFFINITY_OFF,
                crate::psci::SUCCESS,
                crate::psci::ON_PENDING,
                0
            ]
        );
        // vCPU 1 started from its reset state at the entry, r0 = context.
        assert_eq!(vcpus[1].vcpu.pc_seen[0], 0x4000_1000);
        assert_eq!(vcpus[1].vcpu.r0_seen[0], 7);
        assert!(world.log.borrow().contains(&"reset b".into()));
        // Its CPU was kicked to start it, and again when the VM stopped
        // (an off vCPU's CPU must learn it has nothing more to wait for).
        assert_eq!(*kicks.0.lock().unwrap(), [1, 1]);
        // vCPU 1 turned itself off first: the VM ran on; then vCPU 0 did,
        // the last one: the VM stopped, once.
        assert_eq!(vcpus[0].vcpu.r0_seen[5], crate::psci::AFFINITY_OFF);
        assert_eq!(
            (vcpus[0].state, vcpus[1].state),
            (VmState::Stopped, VmState::Stopped),
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
        vcpus[1].vcpu.restart_at = [0, 1].into();
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
            (VmState::Stopped, VmState::Stopped)
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
            (VmState::Stopped, VmState::Stopped)
        );
        let mut line = String::new();
        vm.describe(&mut line).unwrap();
        assert!(line.starts_with("powered off; "), "{line}");
        assert!(line.ends_with("; vCPUs on 0 of 2"), "{line}");
    }
}
