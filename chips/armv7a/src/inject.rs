// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reflecting a fault into a guest: the exception entry the CPU would make.
//!
//! Design rule 2 (`docs/architecture.md`): a guest's fault is the guest's
//! business. When an abort no
//! virtual device claims, or an instruction Capvisor does not emulate,
//! comes back to Hyp, the hypervisor makes the guest take the exception it
//! would have taken on real hardware: at its own vector, in its abort or
//! undefined mode, with the architectural return address in that mode's LR,
//! the interrupted CPSR in its SPSR, and (for aborts) a fault status and
//! address in DFSR/DFAR or IFSR/IFAR in the format the guest's translation
//! regime uses (short descriptors, or LPAE when TTBCR.EAE is set).
//!
//! Everything here is arithmetic on register values, following the ARMv7-A
//! rules for exception entry (no Security Extensions, as on Integrator/CP's
//! Cortex-A15): the world switch applies the result.
//!
//! ```
//! use armv7a::inject::{enter_exception, GuestException, GuestState};
//! // An SVC-mode guest, ARM state, vectors at VBAR 0x4000_0000.
//! let state = GuestState { cpsr: 0x6000_0013, pc: 0x4000_8000, sctlr: 0x00c5_0078, vbar: 0x4000_0000 };
//! let entry = enter_exception(&state, GuestException::DataAbort);
//! assert_eq!((entry.cpsr & 0x1f, entry.pc, entry.lr), (0x17, 0x4000_0010, 0x4000_8008));
//! ```

/// CPSR mode field values.
pub mod mode {
    /// Abort mode.
    pub const ABORT: u32 = 0x17;
    /// Undefined mode.
    pub const UNDEFINED: u32 = 0x1b;
}

const MODE_MASK: u32 = 0x1f;
const CPSR_T: u32 = 1 << 5;
/// FIQ mask: unchanged by these entries (no Security Extensions).
#[cfg(test)]
const CPSR_F: u32 = 1 << 6;
const CPSR_I: u32 = 1 << 7;
const CPSR_A: u32 = 1 << 8;
const CPSR_E: u32 = 1 << 9;
/// IT[7:2] (bits 15:10) and IT[1:0] (bits 26:25).
const CPSR_IT: u32 = (0x3f << 10) | (0b11 << 25);
const CPSR_J: u32 = 1 << 24;

const SCTLR_V: u32 = 1 << 13;
const SCTLR_EE: u32 = 1 << 25;
const SCTLR_TE: u32 = 1 << 30;
const HIGH_VECTORS: u32 = 0xffff_0000;

/// The guest state an exception entry starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestState {
    /// The guest's CPSR when it trapped (SPSR_hyp).
    pub cpsr: u32,
    /// The address of the instruction that faulted or was not emulated
    /// (ELR_hyp for aborts and undefined instructions).
    pub pc: u32,
    /// The guest's SCTLR (TE, EE and V decide the entry).
    pub sctlr: u32,
    /// The guest's VBAR.
    pub vbar: u32,
}

/// The exceptions Capvisor reflects into guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestException {
    /// Undefined instruction: Undefined mode, vector 0x04.
    Undefined,
    /// Prefetch abort: Abort mode, vector 0x0c.
    PrefetchAbort,
    /// Data abort: Abort mode, vector 0x10.
    DataAbort,
}

/// What the guest's registers become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// The mode entered (write LR and SPSR of this mode).
    pub mode: u32,
    /// New CPSR (goes to SPSR_hyp before the return to the guest).
    pub cpsr: u32,
    /// New PC: the guest's vector (goes to ELR_hyp).
    pub pc: u32,
    /// Value for LR of `mode`.
    pub lr: u32,
    /// Value for SPSR of `mode`: the interrupted CPSR.
    pub spsr: u32,
}

/// The exception entry for `exception` taken from `state`.
pub const fn enter_exception(state: &GuestState, exception: GuestException) -> ExceptionEntry {
    let thumb = state.cpsr & CPSR_T != 0;
    let (mode, offset, lr, mask) = match exception {
        // LR_und = the undefined instruction + 4 (ARM) or + 2 (Thumb).
        GuestException::Undefined => (
            mode::UNDEFINED,
            0x04,
            state.pc.wrapping_add(if thumb { 2 } else { 4 }),
            CPSR_I,
        ),
        // LR_abt = the aborted instruction + 4, in either state.
        GuestException::PrefetchAbort => {
            (mode::ABORT, 0x0c, state.pc.wrapping_add(4), CPSR_I | CPSR_A)
        }
        // LR_abt = the aborting instruction + 8, in either state.
        GuestException::DataAbort => (mode::ABORT, 0x10, state.pc.wrapping_add(8), CPSR_I | CPSR_A),
    };
    let base = if state.sctlr & SCTLR_V != 0 {
        HIGH_VECTORS
    } else {
        state.vbar & !0x1f
    };
    let mut cpsr = state.cpsr & !(MODE_MASK | CPSR_IT | CPSR_J | CPSR_T | CPSR_E);
    cpsr |= mode | mask;
    if state.sctlr & SCTLR_TE != 0 {
        cpsr |= CPSR_T;
    }
    if state.sctlr & SCTLR_EE != 0 {
        cpsr |= CPSR_E;
    }
    ExceptionEntry {
        mode,
        cpsr,
        pc: base.wrapping_add(offset),
        lr,
        spsr: state.cpsr,
    }
}

/// Fault status to report to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReflectedFault {
    /// A synchronous external abort: what an access to an address nothing
    /// decodes looks like on real hardware (used for unclaimed IPAs).
    SyncExternal,
    /// An alignment fault.
    Alignment,
}

/// DFSR or IFSR value for `fault`. `lpae` is the guest's TTBCR.EAE (the
/// long-descriptor format); `write` sets DFSR.WnR (pass false for IFSR).
pub const fn fault_status_register(fault: ReflectedFault, lpae: bool, write: bool) -> u32 {
    let status = if lpae {
        // Long-descriptor format: STATUS in bits 5:0, LPAE bit 9 set.
        let code = match fault {
            ReflectedFault::SyncExternal => 0b01_0000,
            ReflectedFault::Alignment => 0b10_0001,
        };
        code | (1 << 9)
    } else {
        // Short-descriptor format: FS[4] in bit 10, FS[3:0] in bits 3:0.
        let fs: u32 = match fault {
            ReflectedFault::SyncExternal => 0b0_1000,
            ReflectedFault::Alignment => 0b0_0001,
        };
        ((fs & 0x10) << 6) | (fs & 0xf)
    };
    if write {
        status | (1 << 11)
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SVC_ARM: u32 = 0x6000_0013; // nZCv, SVC, IRQs/FIQs/aborts enabled
    const SCTLR_LINUX: u32 = 0x10c5_387d; // MMU on, V clear, TE/EE clear

    fn state(cpsr: u32, sctlr: u32) -> GuestState {
        GuestState {
            cpsr,
            pc: 0xc010_2000,
            sctlr,
            vbar: 0xffff_1000 & !0x1f,
        }
    }

    #[test]
    fn data_abort_from_svc_in_arm_state() {
        let entry = enter_exception(&state(SVC_ARM, 0x00c5_0078), GuestException::DataAbort);
        assert_eq!(
            entry,
            ExceptionEntry {
                mode: mode::ABORT,
                cpsr: 0x6000_0197,
                pc: 0xffff_1010,
                lr: 0xc010_2008,
                spsr: SVC_ARM
            }
        );
    }

    #[test]
    fn high_vectors_when_sctlr_v_is_set() {
        let entry = enter_exception(&state(SVC_ARM, SCTLR_LINUX), GuestException::PrefetchAbort);
        assert_eq!((entry.pc, entry.lr), (0xffff_000c, 0xc010_2004));
        assert_eq!(entry.cpsr & (CPSR_I | CPSR_A | CPSR_F), CPSR_I | CPSR_A);
    }

    #[test]
    fn undefined_from_thumb_user_code() {
        // User mode, Thumb, inside an IT block, FIQ masked.
        let cpsr = 0x2000_0030 | CPSR_F | (0b10 << 25) | (0x5 << 10);
        let entry = enter_exception(&state(cpsr, 0x00c5_0078), GuestException::Undefined);
        assert_eq!(entry.mode, mode::UNDEFINED);
        assert_eq!(entry.lr, 0xc010_2002);
        assert_eq!(entry.pc, 0xffff_1004);
        // ARM state (TE clear), IT cleared, I set, A unchanged (clear), F kept.
        assert_eq!(entry.cpsr, 0x2000_0000 | mode::UNDEFINED | CPSR_I | CPSR_F);
        assert_eq!(entry.spsr, cpsr);
    }

    #[test]
    fn sctlr_te_and_ee_choose_state_and_endianness() {
        let sctlr = 0x00c5_0078 | SCTLR_TE | SCTLR_EE;
        let entry = enter_exception(&state(SVC_ARM, sctlr), GuestException::DataAbort);
        assert_eq!(entry.cpsr & (CPSR_T | CPSR_E), CPSR_T | CPSR_E);
        // LR for a data abort does not depend on the state.
        assert_eq!(entry.lr, 0xc010_2008);
    }

    #[test]
    fn fault_status_in_both_formats() {
        // Short descriptors: external abort FS 0b01000 -> 0x008 (Linux:
        // "external abort on non-linefetch (0x008)"), with WnR 0x808.
        assert_eq!(
            fault_status_register(ReflectedFault::SyncExternal, false, false),
            0x008
        );
        assert_eq!(
            fault_status_register(ReflectedFault::SyncExternal, false, true),
            0x808
        );
        assert_eq!(
            fault_status_register(ReflectedFault::Alignment, false, false),
            0x001
        );
        // Long descriptors: STATUS 0b010000 with the LPAE bit.
        assert_eq!(
            fault_status_register(ReflectedFault::SyncExternal, true, false),
            0x210
        );
        assert_eq!(
            fault_status_register(ReflectedFault::Alignment, true, true),
            0xa21
        );
    }
}
