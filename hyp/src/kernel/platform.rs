// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the kernel needs from the chip and the board: the architectural
//! vCPU ([`ArchVcpu`]), one physical CPU's time and interrupts
//! ([`Platform`]), a way to interrupt another CPU ([`CpuKick`]), and a
//! VM's RAM as a restart reloads it ([`GuestMemory`]); and where a guest
//! reports its exit status ([`ExitStatus`]).

use crate::dispatch::{Action, GuestRegisters};
use crate::interrupts::VirtualTimer;
use crate::trap::GuestExit;

/// A virtual CPU, implemented by the architecture chip. Its virtual
/// timer is read by the vCPU's interrupt backend ([`VirtualTimer`]).
pub trait ArchVcpu: GuestRegisters + VirtualTimer {
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

/// Where a guest reports its exit status (Capvisor's hypervisor service):
/// the kernel reads it under the VM's lock when a vCPU publishes, so that
/// a report read on any CPU never reaches the service itself.
pub trait ExitStatus {
    /// The status the guest reported last, if it reported one.
    fn exit_status(&self) -> Option<u32>;
}
