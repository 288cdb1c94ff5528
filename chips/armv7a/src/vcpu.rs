// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ARMv7-A virtual CPU: `hyp::kernel::ArchVcpu` on top of the world switch.
//!
//! An [`ArmVcpu`] owns everything that must follow a VM across a switch:
//! the core registers ([`GuestContext`]), the PL1 system registers
//! ([`Cp15Context`]), the VFP/NEON registers ([`FpContext`]) and the VTTBR
//! naming its stage-2 tables and VMID, and the guest's banked registers
//! (which stay in the CPU while it is switched in). The kernel calls
//! `switch_in` / `switch_out` only when the CPU changes hands, so exits that
//! return to the same VM pay for none of it.
//!
//! The performance monitors ([`PmuContext`]) are switched lazily: a VM
//! runs with them trapped (HDCR.TPM) until it first touches one; that
//! access loads its own monitors (their reset state, the first time),
//! hands them to it and retries the instruction. From then on they are
//! saved, and stopped, when it is switched out and restored when it is
//! switched in. A VM that never uses them (most) costs nothing at a
//! switch, and no VM ever reads what another left in them.

use crate::cp15_context::{Cp15Context, PmuContext};
use crate::debug_registers::{DebugContext, DebugHardware, DebugRegister};
use crate::fp_context::FpContext;
use crate::world_switch::GuestContext;
use hyp::capabilities::VcpuCreationCapability;
use hyp::dispatch::{GuestRegisters, SystemRegisterOutcome};
#[cfg(target_arch = "arm")]
use hyp::interrupts::{VirtualIrqLine, VirtualTimer};
use hyp::trap::SystemRegisterAccess;
#[cfg(target_arch = "arm")]
use hyp::{dispatch::Action, kernel::ArchVcpu, trap::GuestExit};

/// One VM's CPU state.
#[derive(Clone, Copy, Debug)]
pub struct ArmVcpu {
    /// Core registers.
    pub context: GuestContext,
    /// PL1 system registers (valid while switched out).
    pub cp15: Cp15Context,
    /// FP/SIMD registers (valid while switched out).
    pub fp: FpContext,
    /// Stage-2 tables and VMID (set once, by the privileged constructor).
    vttbr: u64,
    /// ACTLR as the guest sees it (accesses are trapped and emulated).
    pub actlr: u32,
    /// CNTVOFF: the guest's virtual counter is the physical one less this.
    pub virtual_offset: u64,
    /// VMPIDR: what the guest reads as MPIDR (its vCPU number in Aff0, set
    /// by [`ArmVcpu::set_vcpu_number`]; bit 31 set, U clear: one of a
    /// cluster of CPUs).
    pub vmpidr: u32,
    /// Whether the guest's banked registers are in the CPU (switched in)
    /// rather than in `context` (only read on the target).
    #[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
    live: bool,
    /// The state a reset returns to (read by `ArchVcpu::reset`, which only
    /// exists on the target).
    #[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
    boot: GuestContext,
    #[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
    cp15_at_reset: Cp15Context,
    /// Its performance monitors (valid while switched out, or while it
    /// has not used them).
    pub pmu: PmuContext,
    /// Whether it has used the performance monitors since its last reset
    /// (they are its own in the CPU while it runs, not trapped).
    pmu_used: bool,
    #[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
    pmu_at_reset: PmuContext,
    /// Its debug registers (always current: every guest access traps and
    /// is emulated on them, see `debug_registers`).
    pub debug: DebugContext,
}

/// MPIDR bit 31: the multiprocessing extensions' format (U, bit 30,
/// clear: part of a multiprocessor system).
const MPIDR_MULTIPROCESSOR: u32 = 1 << 31;

/// Per CPU: whether its debug registers may hold a value other than zero
/// (some VM's breakpoints): the next switch-in on it must write its own.
/// Each CPU reads and writes only its own entry.
#[cfg(target_arch = "arm")]
static DEBUG_REGISTERS_DIRTY: [core::sync::atomic::AtomicBool; crate::cpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(true) }; crate::cpu::MAX_CPUS];

impl ArmVcpu {
    /// A vCPU that boots from `boot` with the system registers and the
    /// performance monitors the CPU had out of reset (`cp15_at_reset`,
    /// `pmu_at_reset`, saved before any guest ran), running on the stage-2
    /// tables and VMID in `vttbr`.
    ///
    /// # Safety
    /// `vttbr` must name stage-2 tables that map only what this VM may
    /// reach (its own RAM and devices), that stay in place as long as the
    /// vCPU exists, with a VMID no other vCPU uses.
    pub unsafe fn new(
        _capability: &dyn VcpuCreationCapability,
        boot: GuestContext,
        cp15_at_reset: Cp15Context,
        pmu_at_reset: PmuContext,
        vttbr: u64,
    ) -> ArmVcpu {
        ArmVcpu {
            debug: DebugContext::default(),
            pmu: pmu_at_reset,
            pmu_used: false,
            pmu_at_reset,
            context: boot,
            cp15: cp15_at_reset,
            fp: FpContext::default(),
            vttbr,
            actlr: ACTLR_AT_RESET,
            virtual_offset: 0,
            vmpidr: MPIDR_MULTIPROCESSOR,
            live: false,
            boot,
            cp15_at_reset,
        }
    }

    /// Makes this vCPU number `vcpu` of its VM: the guest reads it as
    /// MPIDR affinity level 0.
    pub fn set_vcpu_number(&mut self, vcpu: usize) {
        self.vmpidr = MPIDR_MULTIPROCESSOR | (vcpu as u32 & 0xff);
    }

    /// The stage-2 tables and VMID it runs on.
    pub fn vttbr(&self) -> u64 {
        self.vttbr
    }
}

/// The ACTLR a guest starts with: SMP (bit 6) set, as on a Cortex-A15
/// whose firmware has joined the core to coherency.
pub const ACTLR_AT_RESET: u32 = 1 << 6;

impl ArmVcpu {
    /// Runs `f` on the context with the banked registers in it: while the
    /// VM is switched in they live in the CPU, so they are saved first and
    /// loaded back afterwards. The world switch does not move them on every
    /// exit; only these rare accesses pay for them.
    fn with_banked<R>(&mut self, f: impl FnOnce(&mut GuestContext) -> R) -> R {
        #[cfg(target_arch = "arm")]
        if self.live {
            crate::world_switch::save_banked(&mut self.context);
        }
        let result = f(&mut self.context);
        #[cfg(target_arch = "arm")]
        if self.live {
            // SAFETY: this VM is the one switched in; its banked registers
            // go back where they were, with the change `f` made.
            unsafe { crate::world_switch::load_banked(&self.context) };
        }
        result
    }
}

impl GuestRegisters for ArmVcpu {
    #[inline]
    fn register(&self, n: u8) -> u32 {
        // r0-r7 are never banked: the common case, answered at once.
        if n < 8 {
            return self.context.r[n as usize];
        }
        #[cfg(target_arch = "arm")]
        if self.live && self.context.is_banked(n) {
            let mut context = self.context;
            crate::world_switch::save_banked(&mut context);
            return context.register(n);
        }
        self.context.register(n)
    }
    #[inline]
    fn set_register(&mut self, n: u8, value: u32) {
        if n < 8 {
            self.context.r[n as usize] = value;
        } else if self.context.is_banked(n) {
            self.with_banked(|context| context.set_register(n, value));
        } else {
            self.context.set_register(n, value);
        }
    }
    #[inline]
    fn call_registers(&self) -> [u32; 8] {
        let r = &self.context.r;
        [r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]
    }
    #[inline]
    fn pc(&self) -> u32 {
        self.context.pc
    }
    #[inline]
    fn set_pc(&mut self, pc: u32) {
        self.context.pc = pc;
    }

    /// ACTLR (`MRC/MCR p15, 0, Rt, c1, c0, 1`) is emulated: reads see the
    /// vCPU's value, writes change it. The first access to a performance
    /// monitor hands the VM its own and is retried. CP14 debug registers
    /// (trapped by HDCR.TDA, TDOSA, TDRA) are emulated on the vCPU's own
    /// (`debug_registers`). Everything else trapped is undefined.
    fn emulate_system_register(&mut self, access: &SystemRegisterAccess) -> SystemRegisterOutcome {
        if access.coprocessor == 14 {
            return self.emulate_debug_register(access);
        }
        if PmuContext::is_pmu_register(access) && !self.pmu_used {
            self.pmu_used = true;
            #[cfg(target_arch = "arm")]
            {
                // SAFETY: the VM is switched in; these are its own
                // monitors (their reset state, or what it left at its last
                // switch-out).
                unsafe { self.pmu.restore() };
                crate::world_switch::set_pmu_trap(false);
            }
            return SystemRegisterOutcome::Retry;
        }
        let actlr = (
            access.coprocessor,
            access.opc1,
            access.crn,
            access.crm,
            access.opc2,
        ) == (15, 0, 1, 0, 1)
            && access.register2.is_none();
        if !actlr {
            return SystemRegisterOutcome::Undefined;
        }
        // Through `GuestRegisters`: a banked Rt (SP, LR) is in the CPU
        // while the VM runs.
        if access.read {
            GuestRegisters::set_register(self, access.register, self.actlr);
        } else {
            self.actlr = GuestRegisters::register(self, access.register);
        }
        SystemRegisterOutcome::Emulated
    }
}

impl ArmVcpu {
    /// A trapped CP14 access (see [`DebugRegister::of`]).
    fn emulate_debug_register(&mut self, access: &SystemRegisterAccess) -> SystemRegisterOutcome {
        let Some(register) = DebugRegister::of(access) else {
            return SystemRegisterOutcome::Undefined;
        };
        let hardware = if self.live {
            DebugHardware::Live
        } else {
            DebugHardware::Absent
        };
        if !access.read {
            let value = GuestRegisters::register(self, access.register);
            self.debug.emulate(register, Some(value), hardware);
            return SystemRegisterOutcome::Emulated;
        }
        let Some(value) = self.debug.emulate(register, None, hardware) else {
            return SystemRegisterOutcome::Undefined;
        };
        if access.register == 15 {
            // `MRC p14, 0, APSR_nzcv, ...` (DBGDSCRint in DCC polling
            // loops): the value's top four bits become the flags.
            self.context.cpsr = (self.context.cpsr & 0x0fff_ffff) | (value & 0xf000_0000);
        } else {
            GuestRegisters::set_register(self, access.register, value);
        }
        if let Some(high) = access.register2 {
            // MRRC of a 64-bit register (DBGDRAR, DBGDSAR): the high word.
            GuestRegisters::set_register(self, high, 0);
        }
        SystemRegisterOutcome::Emulated
    }
}

#[cfg(target_arch = "arm")]
impl ArchVcpu for ArmVcpu {
    fn switch_in(&mut self) {
        // SAFETY: this VM's own saved state, installed before it runs; its
        // stage-2 tables map only its memory (the board built them).
        unsafe {
            crate::world_switch::load_banked(&self.context);
            self.cp15.restore();
            self.fp.restore();
            crate::world_switch::install_guest_translation(self.vttbr);
            // VMPIDR: the MPIDR this guest reads.
            core::arch::asm!("mcr p15, 4, {}, c0, c0, 5", in(reg) self.vmpidr, options(nomem, nostack, preserves_flags));
            if self.pmu_used {
                self.pmu.restore();
            }
            // Another VM's breakpoints must not stay armed in this one.
            use core::sync::atomic::Ordering::Relaxed;
            if DEBUG_REGISTERS_DIRTY[crate::cpu::current()].load(Relaxed) || !self.debug.is_clear()
            {
                self.debug.restore();
                DEBUG_REGISTERS_DIRTY[crate::cpu::current()].store(!self.debug.is_clear(), Relaxed);
            }
        }
        crate::world_switch::set_pmu_trap(!self.pmu_used);
        crate::generic_timer::set_virtual_offset(self.virtual_offset);
        self.live = true;
    }

    fn switch_out(&mut self) {
        crate::world_switch::save_banked(&mut self.context);
        self.cp15.save_into();
        self.fp.save_into();
        if self.pmu_used {
            self.pmu = PmuContext::save();
            PmuContext::stop_counting();
        }
        // The debug registers need no saving: every guest access to them
        // traps, so `self.debug` is already what the guest left.
        if !self.debug.is_clear() {
            DEBUG_REGISTERS_DIRTY[crate::cpu::current()]
                .store(true, core::sync::atomic::Ordering::Relaxed);
        }
        self.live = false;
    }

    fn run(&mut self) -> GuestExit {
        // Entering a vCPU whose state is not in the CPU would run it with
        // another VM's translation and registers.
        assert!(self.live, "ArchVcpu::run on a vCPU that is not switched in");
        // SAFETY: switch_in installed this VM's stage 2, HCR, CP15 and FP
        // (checked above).
        unsafe { crate::world_switch::run_guest(&mut self.context) }
    }

    fn reflect(&mut self, action: &Action) -> bool {
        // The kernel reflects a fault only into the vCPU whose exit it is
        // handling, which is switched in.
        assert!(
            self.live,
            "ArchVcpu::reflect on a vCPU that is not switched in"
        );
        // SAFETY: this vCPU is switched in (checked above): its CP15 state
        // (VBAR, SCTLR, the fault registers) is the CPU's.
        let Some(entry) = (unsafe { crate::world_switch::reflect_fault(&self.context, action) })
        else {
            return false;
        };
        // SAFETY: this vCPU is the one switched in (checked above): its
        // banked registers are the CPU's.
        unsafe { crate::world_switch::write_exception_bank(&entry) };
        self.context.cpsr = entry.cpsr;
        self.context.pc = entry.pc;
        true
    }

    fn reset(&mut self) {
        if self.pmu_used {
            // The last life's counters stop; the next life starts with the
            // monitors trapped and, at its first use, in their reset state.
            PmuContext::stop_counting();
        }
        self.pmu = self.pmu_at_reset;
        self.pmu_used = false;
        // The last life's breakpoints are in the CPU: clear them below.
        self.debug = DebugContext::default();
        DEBUG_REGISTERS_DIRTY[crate::cpu::current()]
            .store(true, core::sync::atomic::Ordering::Relaxed);
        self.context = self.boot;
        self.cp15 = self.cp15_at_reset;
        self.fp = FpContext::default();
        self.actlr = ACTLR_AT_RESET;
        // Reset happens while the VM is switched in: load the reset state,
        // then forget what the previous life left in the TLBs (its VMID's
        // entries) and in the instruction cache (its RAM was reloaded).
        self.switch_in();
        forget_guest_translations();
        aarch32_cpu::register::Iciallu::write();
        aarch32_cpu::register::BpIAll::write();
        aarch32_cpu::asm::dsb();
        aarch32_cpu::asm::isb();
    }

    fn release(&mut self) {
        forget_guest_translations();
    }
}

#[cfg(target_arch = "arm")]
impl VirtualTimer for ArmVcpu {
    fn virtual_timer_control(&self) -> u32 {
        if self.live {
            crate::generic_timer::virtual_timer_control()
        } else {
            self.cp15.cntv_ctl
        }
    }

    fn virtual_timer_deadline(&self) -> u64 {
        let compare = if self.live {
            crate::generic_timer::virtual_timer_compare()
        } else {
            self.cp15.cntv_cval
        };
        compare.wrapping_add(self.virtual_offset)
    }
}

/// The vCPU's IRQ input without a GIC virtualization interface: HCR.VI,
/// for the software interrupt backend. The backend sets it only while its
/// VM is switched in (and when switching it in).
#[derive(Clone, Copy, Debug, Default)]
pub struct HcrVirtualIrq;

#[cfg(target_arch = "arm")]
impl VirtualIrqLine for HcrVirtualIrq {
    fn set(&self, asserted: bool) {
        // SAFETY: the backend calls this only for the VM switched in, whose
        // translation is installed; HCR keeps every trap bit.
        unsafe { crate::world_switch::set_guest_hcr(asserted) };
    }
}

/// TLBIALL from Hyp mode: invalidates the stage-1 and stage-2 entries of
/// the VMID in VTTBR, that is, of the VM switched in.
#[cfg(target_arch = "arm")]
fn forget_guest_translations() {
    aarch32_cpu::asm::dsb();
    aarch32_cpu::register::TlbIAll::write();
    aarch32_cpu::asm::dsb();
    aarch32_cpu::asm::isb();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actlr_access(read: bool, register: u8) -> SystemRegisterAccess {
        SystemRegisterAccess {
            coprocessor: 15,
            read,
            opc1: 0,
            crn: 1,
            crm: 0,
            opc2: 1,
            register,
            register2: None,
        }
    }

    /// A vCPU for the tests (no stage 2: these never run it).
    fn test_vcpu() -> ArmVcpu {
        let capability = hyp::create_capability!(VcpuCreationCapability);
        // SAFETY: the vCPU is never entered; its VTTBR names nothing.
        unsafe {
            ArmVcpu::new(
                &capability,
                GuestContext::boot(0x4000_0000),
                Cp15Context::default(),
                PmuContext::default(),
                0,
            )
        }
    }

    #[test]
    fn actlr_is_emulated_per_vcpu() {
        let mut vcpu = test_vcpu();
        assert_eq!(
            vcpu.emulate_system_register(&actlr_access(true, 2)),
            SystemRegisterOutcome::Emulated
        );
        assert_eq!(vcpu.context.r[2], ACTLR_AT_RESET);
        vcpu.context.r[3] = 0x41;
        assert_eq!(
            vcpu.emulate_system_register(&actlr_access(false, 3)),
            SystemRegisterOutcome::Emulated
        );
        assert_eq!(vcpu.actlr, 0x41);
        let mut sctlr = actlr_access(true, 2);
        sctlr.opc2 = 0;
        assert_eq!(
            vcpu.emulate_system_register(&sctlr),
            SystemRegisterOutcome::Undefined,
            "SCTLR is not trapped"
        );
    }

    #[test]
    fn debug_registers_are_emulated_per_vcpu() {
        let debug = |read, crn, crm, opc2, register| SystemRegisterAccess {
            coprocessor: 14,
            read,
            opc1: 0,
            crn,
            crm,
            opc2,
            register,
            register2: None,
        };
        let (mut a, mut b) = (test_vcpu(), test_vcpu());
        // MCR p14, 0, r4, c0, c2, 4 (DBGBVR2) in one vCPU only.
        a.context.r[4] = 0x4000_2000;
        assert_eq!(
            a.emulate_system_register(&debug(false, 0, 2, 4, 4)),
            SystemRegisterOutcome::Emulated
        );
        for (vcpu, expected) in [(&mut a, 0x4000_2000), (&mut b, 0)] {
            assert_eq!(
                vcpu.emulate_system_register(&debug(true, 0, 2, 4, 5)),
                SystemRegisterOutcome::Emulated
            );
            assert_eq!(vcpu.context.r[5], expected);
        }
        // MRC p14, 0, APSR_nzcv, c0, c1, 0 (DBGDSCRint): the flags take
        // its top bits (TXfull, RXfull: never set, no one is on the other
        // end of the channel).
        a.context.cpsr = 0xf000_01d3;
        assert_eq!(
            a.emulate_system_register(&debug(true, 0, 1, 0, 15)),
            SystemRegisterOutcome::Emulated
        );
        assert_eq!(a.context.cpsr, 0x0000_01d3);
        // DBGCLAIMSET: not emulated.
        assert_eq!(
            a.emulate_system_register(&debug(true, 7, 8, 6, 0)),
            SystemRegisterOutcome::Undefined
        );
    }

    #[test]
    fn the_first_performance_monitor_access_hands_them_over_and_retries() {
        let mut vcpu = test_vcpu();
        // MRC p15, 0, r2, c9, c13, 0: PMCCNTR.
        let pmccntr = SystemRegisterAccess {
            coprocessor: 15,
            read: true,
            opc1: 0,
            crn: 9,
            crm: 13,
            opc2: 0,
            register: 2,
            register2: None,
        };
        assert_eq!(
            vcpu.emulate_system_register(&pmccntr),
            SystemRegisterOutcome::Retry
        );
        assert!(vcpu.pmu_used);
        // Trapped again (it cannot be, once handed over): not emulated.
        assert_eq!(
            vcpu.emulate_system_register(&pmccntr),
            SystemRegisterOutcome::Undefined
        );
        let mut cache = pmccntr;
        cache.crn = 7;
        assert!(!PmuContext::is_pmu_register(&cache));
    }
}
