// SPDX-License-Identifier: MIT OR Apache-2.0
//! The world switch: entering a guest and coming back on its next exit.
//!
//! [`GuestContext`] holds a guest's core registers: r0-r12, the banked SP,
//! LR and SPSR of every PL0/PL1 mode (and r8-r12 of FIQ mode), the PC and
//! the CPSR. [`run_guest`] enters the guest with `eret` and returns when the
//! guest traps (HVBAR+0x14) or a physical interrupt arrives (0x18, 0x1c),
//! with the exit decoded into a [`GuestExit`]. Only the registers Hyp mode
//! shares with the guest move on every entry and exit: r0-r12, LR_usr (Hyp's
//! own LR), and the PC and CPSR (ELR_hyp, SPSR_hyp). The banked registers of
//! the guest's modes stay in the CPU while the VM is switched in, because
//! Hyp mode never touches them; [`load_banked`] and [`save_banked`] move
//! them when the CPU changes VMs, and the vCPU syncs them around the rare
//! accesses the hypervisor makes to them (a trapped access naming SP or LR,
//! a reflected exception).
//!
//! While the guest runs, SP_hyp still points at the frame `run_guest`'s
//! assembly pushed (the guest cannot touch SP_hyp), and HTPIDR holds the
//! context's address, so the exit path needs no other state. The vector
//! table in [`crate::entry`] sends IRQ and FIQ exits here only when SPSR_hyp
//! says the exception came from a guest mode; Hyp itself runs with
//! interrupts masked, so one that comes from Hyp mode is a fatal bug.

#[cfg(target_arch = "arm")]
use crate::guest_exit::{decode_guest_exit, ExitVector};
use core::mem::{offset_of, size_of};
#[cfg(target_arch = "arm")]
use hyp::trap::GuestExit;

/// A guest's core registers, in the layout the assembly expects.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestContext {
    /// r0-r12 (r8-r12 of every mode but FIQ).
    pub r: [u32; 13],
    /// SP and LR of User and System mode.
    pub sp_usr: u32,
    /// LR of User and System mode.
    pub lr_usr: u32,
    /// SP, LR, SPSR of Supervisor mode.
    pub svc: BankedRegisters,
    /// SP, LR, SPSR of Abort mode.
    pub abt: BankedRegisters,
    /// SP, LR, SPSR of Undefined mode.
    pub und: BankedRegisters,
    /// SP, LR, SPSR of IRQ mode.
    pub irq: BankedRegisters,
    /// r8-r12 of FIQ mode.
    pub r_fiq: [u32; 5],
    /// SP, LR, SPSR of FIQ mode.
    pub fiq: BankedRegisters,
    /// The guest's PC (ELR_hyp while in Hyp).
    pub pc: u32,
    /// The guest's CPSR (SPSR_hyp while in Hyp).
    pub cpsr: u32,
    /// The hypervisor's SP at entry (written by the assembly).
    pub host_sp: u32,
}

/// The banked SP, LR and SPSR of one PL1 mode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BankedRegisters {
    /// Stack pointer.
    pub sp: u32,
    /// Link register.
    pub lr: u32,
    /// Saved program status register.
    pub spsr: u32,
}

// The assembly below hard-codes these offsets.
const _: () = {
    assert!(offset_of!(GuestContext, sp_usr) == 52);
    assert!(offset_of!(GuestContext, svc) == 60);
    assert!(offset_of!(GuestContext, abt) == 72);
    assert!(offset_of!(GuestContext, und) == 84);
    assert!(offset_of!(GuestContext, irq) == 96);
    assert!(offset_of!(GuestContext, r_fiq) == 108);
    assert!(offset_of!(GuestContext, fiq) == 128);
    assert!(offset_of!(GuestContext, pc) == 140);
    assert!(offset_of!(GuestContext, cpsr) == 144);
    assert!(offset_of!(GuestContext, host_sp) == 148);
    assert!(size_of::<GuestContext>() == 152);
};

impl GuestContext {
    /// A context that starts at `pc` in Supervisor mode with IRQ, FIQ and
    /// asynchronous aborts masked (CPSR 0x1d3), every register zero: the
    /// state the Linux boot protocol asks for, before r0-r2 are set.
    pub const fn boot(pc: u32) -> GuestContext {
        GuestContext {
            r: [0; 13],
            sp_usr: 0,
            lr_usr: 0,
            svc: BankedRegisters {
                sp: 0,
                lr: 0,
                spsr: 0,
            },
            abt: BankedRegisters {
                sp: 0,
                lr: 0,
                spsr: 0,
            },
            und: BankedRegisters {
                sp: 0,
                lr: 0,
                spsr: 0,
            },
            irq: BankedRegisters {
                sp: 0,
                lr: 0,
                spsr: 0,
            },
            r_fiq: [0; 5],
            fiq: BankedRegisters {
                sp: 0,
                lr: 0,
                spsr: 0,
            },
            pc,
            cpsr: 0x1d3,
            host_sp: 0,
        }
    }
}

#[cfg(target_arch = "arm")]
extern "C" {
    /// Enters the guest described by `context`; returns the exit vector
    /// number (5 trap, 6 IRQ, 7 FIQ) with the guest's registers saved back.
    fn armv7a_world_switch(context: *mut GuestContext) -> u32;
}

/// Runs the guest until its next exit and decodes it. Stage 2 (VTTBR, VTCR)
/// and HCR must be set up for this guest.
///
/// # Safety
/// The guest's stage-2 tables must map only memory that belongs to it, and
/// HCR must trap everything the hypervisor needs to keep (design rule 2,
/// `docs/architecture.md`, depends on
/// it). The Hyp vectors must be installed.
#[cfg(target_arch = "arm")]
pub unsafe fn run_guest(context: &mut GuestContext) -> GuestExit {
    // SAFETY: the context is a valid, exclusively borrowed GuestContext; the
    // assembly returns only after saving the guest's registers into it.
    let vector = unsafe { armv7a_world_switch(context) };
    let vector = match vector {
        6 => ExitVector::Irq,
        7 => ExitVector::Fiq,
        _ => ExitVector::HypTrap,
    };
    if vector != ExitVector::HypTrap {
        return decode_guest_exit(vector, crate::exceptions::FaultRegisters::default());
    }
    use aarch32_cpu::register::{Hsr, SysRegRead};
    let hsr = <Hsr as SysRegRead>::read_raw();
    // The hottest exit, HVC (EC 0x12), decodes from HSR alone: its ISS is
    // the immediate, and HVC is always a 32-bit instruction.
    if hsr >> 26 == 0x12 {
        return GuestExit {
            trap: hyp::trap::Trap::Hypercall {
                immediate: hsr as u16,
            },
            instruction_bytes: 4,
        };
    }
    let mut exit = decode_guest_exit(vector, crate::exceptions::read_exit_registers(hsr));
    // A data abort without a valid syndrome (EC 0x24, ISV clear): ARMv7
    // leaves HSR.IL UNKNOWN for it (QEMU's Cortex-A15 clears it), so the
    // instruction's length comes from the guest's state: 4 bytes in ARM
    // state; in Thumb state it could be 2 or 4 and is not known (0: the
    // dispatcher then skips nothing).
    if hsr >> 26 == 0x24 && hsr & (1 << 24) == 0 {
        exit.instruction_bytes = length_without_syndrome(context.cpsr);
    }
    exit
}

/// The length of a guest instruction whose syndrome gives none: 4 in ARM
/// state, 0 (unknown) in Thumb state (CPSR.T, bit 5).
pub const fn length_without_syndrome(cpsr: u32) -> u32 {
    if cpsr & (1 << 5) == 0 {
        4
    } else {
        0
    }
}

#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm
    .section .text.world_switch, "ax"

    @ u32 armv7a_world_switch(GuestContext *r0)
    @ In: r0 = context. Out: r0 = exit vector (5, 6 or 7).
    @ Only what Hyp mode shares with the guest travels here: r0-r12, LR
    @ (Hyp's LR is LR_usr), and the PC and CPSR through ELR_hyp/SPSR_hyp.
    @ The banked SP/LR/SPSR of the guest's modes stay in the CPU between
    @ exits (Hyp never uses them): armv7a_load_banked/armv7a_save_banked
    @ move them when the CPU changes VMs.
    .global armv7a_world_switch
    .type armv7a_world_switch, %function
armv7a_world_switch:
    @ Save the host's callee-saved registers and return address; r12 keeps
    @ the stack 8-byte aligned. SP_hyp then stays here while the guest runs.
    push    {{r4-r12, lr}}
    str     sp, [r0, #148]              @ context.host_sp := SP_hyp
    mcr     p15, 4, r0, c13, c0, 2      @ HTPIDR := context (for the exit path)
    @ ELR_hyp := guest PC; SPSR_hyp := guest CPSR (plain form: the banked
    @ SPSR_hyp form is UNDEFINED in Hyp mode).
    ldr     r1, [r0, #140]
    msr     elr_hyp, r1
    ldr     r1, [r0, #144]
    msr     spsr_cxsf, r1
    ldr     lr, [r0, #56]               @ lr := guest LR_usr
    @ r0-r12 last: r0 is the base and is loaded last by LDM.
    ldm     r0, {{r0-r12}}
    eret
    .size armv7a_world_switch, . - armv7a_world_switch

    @ Guest exits arrive here from the vector table with the guest's r0 and
    @ r1 pushed on the Hyp stack (just below the frame armv7a_world_switch
    @ pushed) and r1 = the exit vector number. Saves the shared registers
    @ into the context and returns from armv7a_world_switch with r0 = vector.
    .global armv7a_guest_exit
    .type armv7a_guest_exit, %function
armv7a_guest_exit:
    mrc     p15, 4, r0, c13, c0, 2      @ r0 := context (HTPIDR)
    add     r0, r0, #8
    stmia   r0, {{r2-r12}}              @ context.r[2..13] := guest r2-r12
    sub     r0, r0, #8
    mov     r2, r1                      @ r2 := vector number
    pop     {{r3, r4}}                  @ r3, r4 := guest r0, r1
    stmia   r0, {{r3, r4}}              @ context.r[0..2]
    str     lr, [r0, #56]               @ lr is the guest's LR_usr (see entry)
    mrs     r1, elr_hyp                 @ the guest's PC and CPSR
    str     r1, [r0, #140]
    mrs     r1, spsr
    str     r1, [r0, #144]
    @ SP_hyp is back at the host frame: restore it and return the vector.
    mov     r0, r2
    pop     {{r4-r12, pc}}
    .size armv7a_guest_exit, . - armv7a_guest_exit

    @ void armv7a_load_banked(const GuestContext *r0)
    @ The guest's banked registers from the context into the CPU: SP_usr,
    @ SP/LR/SPSR of svc, abt, und, irq and fiq, and r8-r12 of fiq.
    .global armv7a_load_banked
    .type armv7a_load_banked, %function
armv7a_load_banked:
    ldr     r1, [r0, #52]
    msr     sp_usr, r1
    ldr     r1, [r0, #60]
    msr     sp_svc, r1
    ldr     r1, [r0, #64]
    msr     lr_svc, r1
    ldr     r1, [r0, #68]
    msr     spsr_svc, r1
    ldr     r1, [r0, #72]
    msr     sp_abt, r1
    ldr     r1, [r0, #76]
    msr     lr_abt, r1
    ldr     r1, [r0, #80]
    msr     spsr_abt, r1
    ldr     r1, [r0, #84]
    msr     sp_und, r1
    ldr     r1, [r0, #88]
    msr     lr_und, r1
    ldr     r1, [r0, #92]
    msr     spsr_und, r1
    ldr     r1, [r0, #96]
    msr     sp_irq, r1
    ldr     r1, [r0, #100]
    msr     lr_irq, r1
    ldr     r1, [r0, #104]
    msr     spsr_irq, r1
    ldr     r1, [r0, #108]
    msr     r8_fiq, r1
    ldr     r1, [r0, #112]
    msr     r9_fiq, r1
    ldr     r1, [r0, #116]
    msr     r10_fiq, r1
    ldr     r1, [r0, #120]
    msr     r11_fiq, r1
    ldr     r1, [r0, #124]
    msr     r12_fiq, r1
    ldr     r1, [r0, #128]
    msr     sp_fiq, r1
    ldr     r1, [r0, #132]
    msr     lr_fiq, r1
    ldr     r1, [r0, #136]
    msr     spsr_fiq, r1
    bx      lr
    .size armv7a_load_banked, . - armv7a_load_banked

    @ void armv7a_save_banked(GuestContext *r0)
    @ The reverse: the CPU's banked registers into the context.
    .global armv7a_save_banked
    .type armv7a_save_banked, %function
armv7a_save_banked:
    mrs     r1, sp_usr
    str     r1, [r0, #52]
    mrs     r1, sp_svc
    str     r1, [r0, #60]
    mrs     r1, lr_svc
    str     r1, [r0, #64]
    mrs     r1, spsr_svc
    str     r1, [r0, #68]
    mrs     r1, sp_abt
    str     r1, [r0, #72]
    mrs     r1, lr_abt
    str     r1, [r0, #76]
    mrs     r1, spsr_abt
    str     r1, [r0, #80]
    mrs     r1, sp_und
    str     r1, [r0, #84]
    mrs     r1, lr_und
    str     r1, [r0, #88]
    mrs     r1, spsr_und
    str     r1, [r0, #92]
    mrs     r1, sp_irq
    str     r1, [r0, #96]
    mrs     r1, lr_irq
    str     r1, [r0, #100]
    mrs     r1, spsr_irq
    str     r1, [r0, #104]
    mrs     r1, r8_fiq
    str     r1, [r0, #108]
    mrs     r1, r9_fiq
    str     r1, [r0, #112]
    mrs     r1, r10_fiq
    str     r1, [r0, #116]
    mrs     r1, r11_fiq
    str     r1, [r0, #120]
    mrs     r1, r12_fiq
    str     r1, [r0, #124]
    mrs     r1, sp_fiq
    str     r1, [r0, #128]
    mrs     r1, lr_fiq
    str     r1, [r0, #132]
    mrs     r1, spsr_fiq
    str     r1, [r0, #136]
    bx      lr
    .size armv7a_save_banked, . - armv7a_save_banked
"#
);

/// Loads the guest's banked registers (SP_usr; SP, LR, SPSR of every PL1
/// mode; r8-r12 of FIQ mode) from `context` into the CPU. They stay there
/// across exits, since Hyp mode never uses them.
///
/// # Safety
/// Only between guests: the banked registers belong to the guest about to
/// run (Hyp mode itself does not use them).
#[cfg(target_arch = "arm")]
pub unsafe fn load_banked(context: &GuestContext) {
    extern "C" {
        fn armv7a_load_banked(context: *const GuestContext);
    }
    // SAFETY: the assembly only reads the context and writes banked
    // registers Hyp mode does not use.
    unsafe { armv7a_load_banked(context) }
}

/// Saves the CPU's banked registers into `context` (see [`load_banked`]).
#[cfg(target_arch = "arm")]
pub fn save_banked(context: &mut GuestContext) {
    extern "C" {
        fn armv7a_save_banked(context: *mut GuestContext);
    }
    // SAFETY: the assembly reads banked registers and writes the context.
    unsafe { armv7a_save_banked(context) }
}

/// HCR bits Capvisor sets for every guest: VM (bit 0, stage 2 on), SWIO
/// (bit 1: a guest's data cache invalidate by set/way cleans too, so it
/// cannot discard dirty lines of the hypervisor or another VM), FMO, IMO,
/// AMO (bits 3-5: FIQ, IRQ and asynchronous aborts go to Hyp), TWI (bit
/// 13, trap WFI), TSC (bit 19, trap SMC) and TAC (bit 21, trap ACTLR
/// accesses, which the vCPU emulates).
pub const HCR_GUEST: u32 =
    (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 13) | (1 << 19) | (1 << 21);
/// HSTR bits: T15 traps the implementation-defined CP15 c15 registers,
/// which no guest may reach (they become undefined instructions).
pub const HSTR_GUEST: u32 = 1 << 15;

/// Prepares the CPU for guests, once, at boot: VTCR (the stage-2 format
/// every VM's tables share), HDCR (see [`set_pmu_trap`]), the CPU's OS
/// lock cleared, HCPTR with no FP traps (Hyp mode saves and
/// restores guests' VFP/NEON registers, which must not fault in Hyp: its
/// reset value is UNKNOWN on hardware), and an invalidation of any guest
/// TLB entries left by firmware. After this, a VM switch only changes VTTBR:
/// VMIDs keep the VMs' TLB entries apart, and stage-2 tables never change
/// while their VM exists.
///
/// # Safety
/// Call once, in Hyp mode, before any guest runs.
#[cfg(target_arch = "arm")]
pub unsafe fn init_virtualization() {
    use crate::registers::{TlbiAllNsNh, Vtcr};
    // SAFETY: no guest runs yet; VTCR only describes stage-2 tables.
    unsafe { Vtcr::write(Vtcr(crate::stage2::VTCR)) };
    set_pmu_trap(true);
    // VPIDR and VMPIDR: what guests read as MIDR and MPIDR: this CPU's own
    // (their reset values are UNKNOWN on hardware) until a vCPU is switched
    // in, which writes its own VMPIDR (its vCPU number).
    // SAFETY: these registers only change what guests read.
    unsafe {
        core::arch::asm!(
            "mrc p15, 0, {t}, c0, c0, 0", // MIDR
            "mcr p15, 4, {t}, c0, c0, 0", // VPIDR
            "mrc p15, 0, {t}, c0, c0, 5", // MPIDR
            "mcr p15, 4, {t}, c0, c0, 5", // VMPIDR
            t = out(reg) _,
            options(nomem, nostack, preserves_flags)
        )
    };
    // CNTHCTL: guests may read the physical counter (PL1PCTEN; the time
    // of day, nothing of another VM), but not use the physical timer
    // (PL1PCEN clear: CNTP_CTL, CNTP_CVAL and CNTP_TVAL trap and become
    // undefined instructions): it is not switched per VM. No event stream
    // (EVNTEN clear). Guests have the virtual timer, switched per VM.
    // SAFETY: CNTHCTL only controls PL1 access to the physical timer.
    unsafe {
        core::arch::asm!("mcr p15, 4, {}, c14, c1, 0", in(reg) 1u32, options(nomem, nostack, preserves_flags))
    };
    crate::fp_context::enable_hyp_fp_access();
    // The CPU's OS lock (DBGOSLAR with anything but the key): set at a
    // cold reset on v7.1 debug, it would keep every guest's breakpoints
    // and watchpoints from firing. Guests see an OS lock of their own
    // (`debug_registers`), never this one.
    // SAFETY: the OS lock only gates debug events and external debugger
    // access; no guest runs yet.
    unsafe {
        core::arch::asm!("mcr p14, 0, {}, c1, c0, 4", in(reg) 0u32, options(nomem, nostack, preserves_flags))
    };
    aarch32_cpu::asm::isb();
    crate::debug_registers::check_hardware();
    TlbiAllNsNh::write();
    aarch32_cpu::asm::dsb();
    aarch32_cpu::asm::isb();
}

/// HDCR.TPMCR and HDCR.TPM: the guest's accesses to PMCR, and to every
/// performance-monitor register, trap to Hyp.
#[cfg(target_arch = "arm")]
const HDCR_TRAP_PMU: u32 = (1 << 5) | (1 << 6);

/// HDCR.TDA (bit 9), TDOSA (10) and TDRA (11): every guest access to a
/// CP14 debug register traps to Hyp, where the vCPU emulates it
/// (`debug_registers`).
pub const HDCR_TRAP_DEBUG: u32 = (1 << 9) | (1 << 10) | (1 << 11);

/// Sets HDCR: guests get the event counters Capvisor switches per VM
/// (HPMN), the counters reserved for Hyp (none when HPMN = PMCR.N) stay
/// disabled (HPME clear), debug exceptions are not routed to Hyp (TDE
/// clear), every debug register access traps (TDA, TDOSA, TDRA), and the
/// performance monitors trap (TPM, TPMCR) when `trap`: until a VM first
/// touches them (see `vcpu`).
#[cfg(target_arch = "arm")]
pub fn set_pmu_trap(trap: bool) {
    let hdcr = crate::cp15_context::guest_event_counters() as u32
        | HDCR_TRAP_DEBUG
        | if trap { HDCR_TRAP_PMU } else { 0 };
    // SAFETY: HDCR only configures traps and counter partitioning for
    // PL0/PL1; the VM switched in is the one the choice is made for.
    unsafe {
        core::arch::asm!("mcr p15, 4, {}, c1, c1, 1", in(reg) hdcr, options(nomem, nostack, preserves_flags))
    };
}

/// HCR.VI: a virtual IRQ is pending for the guest.
pub const HCR_VI: u32 = 1 << 7;

/// Sets HCR for the running guest: the trap bits, and VI when a virtual
/// IRQ is pending for it.
///
/// # Safety
/// A guest's translation must be installed ([`install_guest_translation`]).
#[cfg(target_arch = "arm")]
pub unsafe fn set_guest_hcr(virtual_irq: bool) {
    use aarch32_cpu::register::{Hcr, SysRegWrite};
    let hcr = if virtual_irq {
        HCR_GUEST | HCR_VI
    } else {
        HCR_GUEST
    };
    // SAFETY: forwarded to the caller; HCR_GUEST keeps every trap.
    unsafe { <Hcr as SysRegWrite>::write_raw(hcr) };
}

/// Installs a guest's stage-2 translation and traps: VTTBR (VMID and
/// tables) and the per-VM trap configuration (HCR, HSTR). Requires
/// [`init_virtualization`] at boot.
///
/// # Safety
/// `vttbr` must name stage-2 tables that map only the guest's own memory;
/// the guest entered next must be the one they belong to.
#[cfg(target_arch = "arm")]
pub unsafe fn install_guest_translation(vttbr: u64) {
    use crate::registers::Vttbr;
    use aarch32_cpu::register::{Hcr, Hstr, SysRegWrite};
    // SAFETY: forwarded to the caller; HCR_GUEST keeps interrupts, aborts,
    // WFI and SMC with the hypervisor.
    unsafe {
        Vttbr::write(Vttbr(vttbr));
        <Hcr as SysRegWrite>::write_raw(HCR_GUEST);
        <Hstr as SysRegWrite>::write_raw(HSTR_GUEST);
    }
    aarch32_cpu::asm::isb();
}

/// Where register `n` of the guest's current mode lives in the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// `r[i]`.
    Shared(usize),
    /// `r_fiq[i]` (r8-r12 in FIQ mode).
    Fiq(usize),
    /// SP or LR (`lr` true) of User/System mode.
    User { lr: bool },
    /// SP or LR of the banked mode with this CPSR mode value.
    Banked { mode: u32, lr: bool },
    /// Not a register of this mode (the PC, or a reserved mode's SP/LR).
    Nowhere,
}

impl GuestContext {
    /// Finds register `n` (0-14) as the guest's current mode sees it.
    fn locate(&self, n: u8) -> Slot {
        let mode = self.cpsr & 0x1f;
        match (n, mode) {
            (0..=7, _) => Slot::Shared(n as usize),
            (8..=12, 0x11) => Slot::Fiq(n as usize - 8),
            (8..=12, _) => Slot::Shared(n as usize),
            (13 | 14, 0x10 | 0x1f) => Slot::User { lr: n == 14 },
            (13 | 14, 0x11 | 0x12 | 0x13 | 0x17 | 0x1b) => Slot::Banked { mode, lr: n == 14 },
            _ => Slot::Nowhere,
        }
    }

    /// Whether register `n` (0-14) of the current mode is one the CPU keeps
    /// banked away from Hyp mode (SP_usr, SP/LR of a PL1 mode, r8-r12 of
    /// FIQ mode): such a register is live in the CPU, not in the context,
    /// while the VM is switched in.
    pub fn is_banked(&self, n: u8) -> bool {
        !matches!(
            self.locate(n),
            Slot::Shared(_) | Slot::User { lr: true } | Slot::Nowhere
        )
    }

    /// The banked SP/LR/SPSR set of PL1 `mode`.
    fn bank(&mut self, mode: u32) -> &mut BankedRegisters {
        match mode {
            0x11 => &mut self.fiq,
            0x12 => &mut self.irq,
            0x17 => &mut self.abt,
            0x1b => &mut self.und,
            _ => &mut self.svc,
        }
    }
}

impl hyp::dispatch::GuestRegisters for GuestContext {
    fn register(&self, n: u8) -> u32 {
        let bank = |mode| match mode {
            0x11 => &self.fiq,
            0x12 => &self.irq,
            0x17 => &self.abt,
            0x1b => &self.und,
            _ => &self.svc,
        };
        match self.locate(n) {
            Slot::Shared(i) => self.r[i],
            Slot::Fiq(i) => self.r_fiq[i],
            Slot::User { lr: false } => self.sp_usr,
            Slot::User { lr: true } => self.lr_usr,
            Slot::Banked { mode, lr: false } => bank(mode).sp,
            Slot::Banked { mode, lr: true } => bank(mode).lr,
            Slot::Nowhere => 0,
        }
    }

    fn set_register(&mut self, n: u8, value: u32) {
        match self.locate(n) {
            Slot::Shared(i) => self.r[i] = value,
            Slot::Fiq(i) => self.r_fiq[i] = value,
            Slot::User { lr: false } => self.sp_usr = value,
            Slot::User { lr: true } => self.lr_usr = value,
            Slot::Banked { mode, lr: false } => self.bank(mode).sp = value,
            Slot::Banked { mode, lr: true } => self.bank(mode).lr = value,
            Slot::Nowhere => {}
        }
    }

    fn pc(&self) -> u32 {
        self.pc
    }

    fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
    }
}

impl GuestContext {
    /// Applies an exception entry computed by [`crate::inject`]: LR and
    /// SPSR of the target mode, then the new CPSR and PC.
    pub fn enter(&mut self, entry: &crate::inject::ExceptionEntry) {
        let bank = match entry.mode {
            crate::inject::mode::ABORT => &mut self.abt,
            _ => &mut self.und,
        };
        bank.lr = entry.lr;
        bank.spsr = entry.spsr;
        self.cpsr = entry.cpsr;
        self.pc = entry.pc;
    }
}

/// Writes the LR and SPSR of the guest mode an exception entry enters
/// (Abort or Undefined) straight into the CPU's banked registers, where a
/// switched-in guest's live: two `msr`s rather than moving every banked
/// register out and back.
///
/// # Safety
/// The guest whose exception this is must be the one switched in.
#[cfg(target_arch = "arm")]
pub unsafe fn write_exception_bank(entry: &crate::inject::ExceptionEntry) {
    /// `msr` of LR and SPSR of one mode (`abt` or `und`).
    macro_rules! write_bank {
        ($mode:literal) => {
            core::arch::asm!(
                ".arch_extension virt",
                concat!("msr lr_", $mode, ", {lr}"),
                concat!("msr spsr_", $mode, ", {spsr}"),
                lr = in(reg) entry.lr,
                spsr = in(reg) entry.spsr,
                options(nomem, nostack, preserves_flags)
            )
        };
    }
    // SAFETY: Hyp mode never uses the Abort and Undefined
    // banks; they hold the switched-in guest's registers.
    unsafe {
        if entry.mode == crate::inject::mode::ABORT {
            write_bank!("abt");
        } else {
            write_bank!("und");
        }
    }
}

/// Reflects a fault into the running guest (design rule 2,
/// `docs/architecture.md`): sets the fault
/// status and address registers the guest's handler will read, and returns
/// the entry to the guest's own abort or undefined vector (its new PC and
/// CPSR, and the LR and SPSR of the mode it enters), or `None` for an
/// action that is not a reflection.
///
/// The guest's CP15 registers are live in the CPU while it is the only VM;
/// they are read and written here directly.
///
/// # Safety
/// `context` must be the guest that just exited, with its CP15 state loaded.
#[cfg(target_arch = "arm")]
pub unsafe fn reflect_fault(
    context: &GuestContext,
    action: &hyp::dispatch::Action,
) -> Option<crate::inject::ExceptionEntry> {
    use crate::inject::{
        enter_exception, fault_status_register, GuestException, GuestState, ReflectedFault,
    };
    use aarch32_cpu::register::{Dfar, Dfsr, Ifar, Ifsr, Sctlr, SysRegRead, SysRegWrite, Vbar};
    use hyp::dispatch::{AbortCause, Action};
    let ttbcr: u32;
    // SAFETY: reading TTBCR has no side effects.
    unsafe {
        core::arch::asm!("mrc p15, 0, {}, c2, c0, 2", out(reg) ttbcr, options(nomem, nostack))
    };
    let lpae = ttbcr & (1 << 31) != 0;
    let exception = match *action {
        Action::InjectDataAbort { va, write, cause } => {
            let fault = match cause {
                AbortCause::External => ReflectedFault::SyncExternal,
                AbortCause::Alignment => ReflectedFault::Alignment,
            };
            let status = fault_status_register(fault, lpae, write);
            // SAFETY: DFSR/DFAR belong to the guest, which is about to take
            // the abort that reports them.
            unsafe {
                <Dfsr as SysRegWrite>::write_raw(status);
                <Dfar as SysRegWrite>::write_raw(va);
            }
            GuestException::DataAbort
        }
        Action::InjectPrefetchAbort { va } => {
            let status = fault_status_register(ReflectedFault::SyncExternal, lpae, false);
            // SAFETY: as above, for IFSR/IFAR.
            unsafe {
                <Ifsr as SysRegWrite>::write_raw(status);
                <Ifar as SysRegWrite>::write_raw(va);
            }
            GuestException::PrefetchAbort
        }
        Action::InjectUndefined => GuestException::Undefined,
        _ => return None,
    };
    let state = GuestState {
        cpsr: context.cpsr,
        pc: context.pc,
        sctlr: <Sctlr as SysRegRead>::read_raw(),
        vbar: <Vbar as SysRegRead>::read_raw(),
    };
    Some(enter_exception(&state, exception))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyp::dispatch::GuestRegisters;

    #[test]
    fn a_store_without_syndrome_is_4_bytes_in_arm_state_and_unknown_in_thumb() {
        assert_eq!(length_without_syndrome(0x6000_01d3), 4);
        assert_eq!(length_without_syndrome(0x6000_01f3), 0);
    }

    #[test]
    fn registers_follow_the_current_mode() {
        let mut context = GuestContext::boot(0x4000_0000); // SVC mode
        context.set_register(13, 0x100);
        context.set_register(14, 0x200);
        context.set_register(9, 0x999);
        assert_eq!(
            (context.svc.sp, context.svc.lr, context.r[9]),
            (0x100, 0x200, 0x999)
        );
        context.cpsr = 0x11; // FIQ: r8-r14 banked
        context.set_register(9, 0xf9);
        context.set_register(13, 0xf13);
        assert_eq!(
            (context.r_fiq[1], context.fiq.sp, context.r[9]),
            (0xf9, 0xf13, 0x999)
        );
        assert_eq!(context.register(9), 0xf9);
        context.cpsr = 0x10; // User
        context.set_register(14, 0x114);
        assert_eq!((context.lr_usr, context.register(14)), (0x114, 0x114));
        context.cpsr = 0x1f; // System shares User's registers
        assert_eq!(context.register(14), 0x114);
        assert_eq!(
            context.register(15),
            0,
            "the PC is not a general register here"
        );
    }
}
