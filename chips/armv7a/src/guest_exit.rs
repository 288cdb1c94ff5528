// SPDX-License-Identifier: MIT OR Apache-2.0
//! Turning a guest's trap into Hyp (HSR and fault registers) into a `Trap`.
//!
//! This is the chip boundary (`docs/architecture.md`, layers): above it
//! nobody sees a raw HSR.
//! An exit arrives through one of three vectors: the Hyp trap vector
//! (synchronous: hypercalls, trapped instructions, stage-2 aborts), IRQ or
//! FIQ. A stage-2 data abort with a valid instruction syndrome on a
//! translation or access-flag fault becomes an MMIO access to emulate;
//! every other abort keeps its addresses and fault kind so the fault path
//! can reflect it into the guest.
//!
//! The faulting IPA comes from HPFAR, which the architecture writes only
//! for stage-2 translation and access-flag faults and for stage-2 faults
//! on a stage-1 table walk. On a stage-2 *permission* fault HPFAR is
//! UNKNOWN (ARM DDI 0406C, B4.1.62), so for a data abort the exit path
//! finds the IPA itself: it translates HDFAR with ATS1CPR (stage 1 of the
//! guest's PL1&0 regime, still live in the CPU at the exit) and sets
//! [`FaultRegisters::hpfar_translated`]
//! (`armv7a::exceptions::read_exit_registers`, as KVM does). Capvisor's
//! stage 2 maps RAM and device windows read-write, so the one read-only
//! mapping a store can hit is a firmware VM's flash, whose stores are
//! flash commands: with the IPA and a valid syndrome such a store becomes
//! an MMIO write like any other. Without the translation (it failed, or
//! the abort is an instruction fetch) the IPA stays unknown and the abort
//! takes the fault path.
//!
//! ```
//! use armv7a::exceptions::FaultRegisters;
//! use armv7a::guest_exit::{decode_guest_exit, ExitVector};
//! use hyp::trap::Trap;
//! let registers = FaultRegisters { hsr: 0x4a00_0001, ..Default::default() };
//! let exit = decode_guest_exit(ExitVector::HypTrap, registers);
//! assert_eq!(exit.trap, Trap::Hypercall { immediate: 1 });
//! ```

use crate::exceptions::FaultRegisters;
use crate::hsr::{faulting_ipa, DataAbortIss, ExceptionClass, FaultStatus, Hsr, Syndrome};
use hyp::trap::{AccessSize, FaultKind, GuestExit, SystemRegisterAccess, Trap};

/// The vector a guest exit came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitVector {
    /// HVBAR + 0x14: a synchronous trap from the guest.
    HypTrap,
    /// HVBAR + 0x18: a physical IRQ.
    Irq,
    /// HVBAR + 0x1c: a physical FIQ.
    Fiq,
}

/// Decodes one guest exit.
pub fn decode_guest_exit(vector: ExitVector, registers: FaultRegisters) -> GuestExit {
    let hsr = Hsr(registers.hsr);
    let trap = match vector {
        ExitVector::Irq => {
            return GuestExit {
                trap: Trap::Irq,
                instruction_bytes: 0,
            }
        }
        ExitVector::Fiq => {
            return GuestExit {
                trap: Trap::Fiq,
                instruction_bytes: 0,
            }
        }
        ExitVector::HypTrap => decode_synchronous(hsr, &registers),
    };
    GuestExit {
        trap,
        instruction_bytes: if hsr.il_32bit() { 4 } else { 2 },
    }
}

fn decode_synchronous(hsr: Hsr, registers: &FaultRegisters) -> Trap {
    // The hottest exits first: HVC (EC 0x12), whose ISS is the immediate,
    // and emulatable MMIO. The general decoder below gives the same Trap
    // for both (a host test compares them over every syndrome).
    if hsr.0 >> 26 == 0x12 {
        return Trap::Hypercall {
            immediate: hsr.0 as u16,
        };
    }
    if let Some(trap) = fast_mmio(hsr.0, registers) {
        return trap;
    }
    decode_general(hsr, registers)
}

/// A guest data abort (EC 0x24) with a valid syndrome (ISV), not on a
/// stage-1 walk (S1PTW), not cache maintenance (CM), without an external
/// abort type (EA), and a stage-2 translation or access flag fault at
/// level 1-3 (DFSC 0b0001LL-0b0010LL, LL != 0): an MMIO access to emulate,
/// decoded straight from the bits.
#[inline]
fn fast_mmio(hsr: u32, registers: &FaultRegisters) -> Option<Trap> {
    const ISV: u32 = 1 << 24;
    const NOT_EMULATABLE: u32 = (1 << 9) | (1 << 8) | (1 << 7); // EA, CM, S1PTW
    let dfsc = hsr & 0x3f;
    let (kind, level) = (dfsc >> 2, dfsc & 0b11);
    if hsr >> 26 != 0x24
        || hsr & ISV == 0
        || hsr & NOT_EMULATABLE != 0
        || !(1..=2).contains(&kind)
        || level == 0
    {
        return None;
    }
    let size = AccessSize::from_bytes(1 << ((hsr >> 22) & 0b11))?;
    let register = ((hsr >> 16) & 0xf) as u8;
    let ipa = crate::hsr::faulting_ipa(registers.hpfar, registers.hdfar);
    let va = registers.hdfar;
    Some(if hsr & (1 << 6) != 0 {
        Trap::MmioWrite {
            ipa,
            va,
            size,
            register,
        }
    } else {
        Trap::MmioRead {
            ipa,
            va,
            size,
            sign_extend: hsr & (1 << 21) != 0,
            register,
        }
    })
}

#[inline(never)]
fn decode_general(hsr: Hsr, registers: &FaultRegisters) -> Trap {
    match hsr.decode() {
        Syndrome::Hvc { imm16 } => Trap::Hypercall { immediate: imm16 },
        Syndrome::Smc => Trap::SecureMonitorCall,
        Syndrome::WfiWfe { wfe: false, cond } => Trap::WaitForInterrupt { condition: cond },
        Syndrome::WfiWfe { wfe: true, cond } => Trap::WaitForEvent { condition: cond },
        Syndrome::RegisterAccess {
            coprocessor,
            read,
            opc1,
            opc2,
            crn,
            crm,
            rt,
            cond,
        } => Trap::SystemRegister {
            access: SystemRegisterAccess {
                coprocessor,
                read,
                opc1,
                crn,
                crm,
                opc2,
                register: rt,
                register2: None,
            },
            condition: cond,
        },
        Syndrome::RegisterAccess64 {
            coprocessor,
            read,
            opc1,
            crm,
            rt,
            rt2,
            cond,
        } => Trap::SystemRegister {
            access: SystemRegisterAccess {
                coprocessor,
                read,
                opc1,
                crn: 0,
                crm,
                opc2: 0,
                register: rt,
                register2: Some(rt2),
            },
            condition: cond,
        },
        Syndrome::DataAbort { iss, .. } => decode_data_abort(&iss, registers),
        Syndrome::PrefetchAbort { iss, .. } => Trap::PrefetchAbort {
            va: registers.hifar,
            ipa: stage2_ipa(
                iss.status,
                iss.stage1_walk,
                registers.hpfar,
                registers.hifar,
            ),
            kind: fault_kind(iss.status),
            stage1_walk: iss.stage1_walk,
        },
        Syndrome::Other {
            class: ExceptionClass::SimdFp,
            ..
        } => Trap::FloatingPoint,
        // Unknown (undefined instructions), SVC (only routed to Hyp with
        // HCR.TGE, which Capvisor never sets), LDC/STC to CP14 (DBGDTR by
        // block transfer) and the rest: nothing Capvisor emulates, so the
        // guest sees an undefined instruction.
        Syndrome::Unknown | Syndrome::Svc { .. } | Syndrome::Other { .. } => {
            Trap::Undefined { syndrome: hsr.0 }
        }
    }
}

fn decode_data_abort(iss: &DataAbortIss, registers: &FaultRegisters) -> Trap {
    let ipa = stage2_ipa(
        iss.status,
        iss.stage1_walk,
        registers.hpfar,
        registers.hdfar,
    )
    .or_else(|| {
        let permission = matches!(iss.status, FaultStatus::Permission { .. });
        (registers.hpfar_translated && permission && !iss.stage1_walk)
            .then(|| faulting_ipa(registers.hpfar, registers.hdfar))
    });
    let emulatable =
        iss.isv && !iss.stage1_walk && !iss.cache_maintenance && !iss.external_abort_type;
    if let (true, Some(ipa), Some(size), Some(register)) = (
        emulatable,
        ipa,
        iss.access_size.and_then(AccessSize::from_bytes),
        iss.register,
    ) {
        return if iss.write {
            Trap::MmioWrite {
                ipa,
                va: registers.hdfar,
                size,
                register,
            }
        } else {
            Trap::MmioRead {
                ipa,
                va: registers.hdfar,
                size,
                sign_extend: iss.sign_extend,
                register,
            }
        };
    }
    Trap::DataAbort {
        va: registers.hdfar,
        ipa,
        write: iss.write,
        kind: fault_kind(iss.status),
        stage1_walk: iss.stage1_walk,
    }
}

/// The faulting IPA when HPFAR holds it: stage-2 translation and
/// access-flag faults, and any fault on a stage-1 table walk (for which
/// the page offset is not recorded: the IPA is the walk's page). Never on
/// a permission fault, where HPFAR is UNKNOWN.
fn stage2_ipa(status: FaultStatus, stage1_walk: bool, hpfar: u32, far: u32) -> Option<u64> {
    if stage1_walk {
        return Some(faulting_ipa(hpfar, 0));
    }
    matches!(
        status,
        FaultStatus::Translation { .. } | FaultStatus::AccessFlag { .. }
    )
    .then(|| faulting_ipa(hpfar, far))
}

fn fault_kind(status: FaultStatus) -> FaultKind {
    match status {
        FaultStatus::Translation { level } => FaultKind::Translation { level },
        FaultStatus::AccessFlag { level } => FaultKind::AccessFlag { level },
        FaultStatus::Permission { level } => FaultKind::Permission { level },
        FaultStatus::Alignment => FaultKind::Alignment,
        FaultStatus::SyncExternal
        | FaultStatus::SyncExternalOnWalk { .. }
        | FaultStatus::SyncParity
        | FaultStatus::SyncParityOnWalk { .. }
        | FaultStatus::AsyncExternal
        | FaultStatus::AsyncParity
        | FaultStatus::TlbConflict => FaultKind::External,
        _ => FaultKind::Other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_paths_agree_with_the_general_decoder() {
        let registers = FaultRegisters {
            hsr: 0,
            hdfar: 0x0900_0abc,
            hifar: 0,
            hpfar: 0x0090_0000,
            hpfar_translated: false,
        };
        let mut fast = 0;
        // Every data-abort syndrome shape: ISV, SAS, SSE, SRT, EA, CM,
        // S1PTW, WnR and DFSC.
        for isv in [0u32, 1] {
            for sas in 0..4u32 {
                for sse in [0u32, 1] {
                    for srt in [0u32, 7, 14, 15] {
                        for flags in 0..16u32 {
                            for dfsc in 0..64u32 {
                                let hsr = (0x24 << 26)
                                    | (1 << 25)
                                    | (isv << 24)
                                    | (sas << 22)
                                    | (sse << 21)
                                    | (srt << 16)
                                    | ((flags & 0b1110) << 6)
                                    | ((flags & 1) << 6)
                                    | dfsc;
                                let registers = FaultRegisters { hsr, ..registers };
                                if let Some(trap) = fast_mmio(hsr, &registers) {
                                    fast += 1;
                                    assert_eq!(
                                        trap,
                                        decode_general(Hsr(hsr), &registers),
                                        "{hsr:#x}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(fast > 0);
        for immediate in [0u32, 1, 0xffff] {
            let hsr = (0x12 << 26) | (1 << 25) | immediate;
            assert_eq!(
                decode_synchronous(Hsr(hsr), &registers),
                decode_general(Hsr(hsr), &registers)
            );
        }
    }

    use super::*;

    fn trap(hsr: u32, hdfar: u32, hifar: u32, hpfar: u32) -> GuestExit {
        decode_guest_exit(
            ExitVector::HypTrap,
            FaultRegisters {
                hsr,
                hdfar,
                hifar,
                hpfar,
                hpfar_translated: false,
            },
        )
    }

    #[test]
    fn hypercall_from_a_guest() {
        assert_eq!(
            trap(0x4a00_0001, 0, 0, 0),
            GuestExit {
                trap: Trap::Hypercall { immediate: 1 },
                instruction_bytes: 4
            }
        );
    }

    #[test]
    fn wfi_with_its_condition() {
        // HSR seen with HCR.TWI: EC 1, IL, CV, COND 0xe (always).
        assert_eq!(
            trap(0x07e0_0000, 0, 0, 0).trap,
            Trap::WaitForInterrupt {
                condition: Some(0xe)
            }
        );
        assert_eq!(
            trap(0x05e0_0001, 0, 0, 0),
            GuestExit {
                trap: Trap::WaitForEvent {
                    condition: Some(0xe)
                },
                instruction_bytes: 2
            }
        );
    }

    #[test]
    fn load_from_an_unmapped_ipa_is_an_mmio_read() {
        // ldr r1, [r0] with r0 = 0x0900_0018: word, SRT 1, level-2
        // translation fault; HPFAR holds IPA bits 39:12 in bits 31:4.
        let exit = trap(0x9381_0006, 0x0900_0018, 0, 0x0009_0000);
        assert_eq!(
            exit.trap,
            Trap::MmioRead {
                ipa: 0x0900_0018,
                va: 0x0900_0018,
                size: AccessSize::Word,
                sign_extend: false,
                register: 1
            }
        );
    }

    #[test]
    fn sign_extending_halfword_load_and_byte_store() {
        // ldrsh r2: ISV, SAS 01, SSE, SRT 2, read, translation level 3.
        let hsr = 0x9200_0000 | (1 << 24) | (0b01 << 22) | (1 << 21) | (2 << 16) | 0b000111;
        assert_eq!(
            trap(hsr, 0x0900_0002, 0, 0x0009_0000).trap,
            Trap::MmioRead {
                ipa: 0x0900_0002,
                va: 0x0900_0002,
                size: AccessSize::Halfword,
                sign_extend: true,
                register: 2
            }
        );
        // strb r3: ISV, SAS 00, SRT 3, WnR.
        let hsr = 0x9200_0000 | (1 << 24) | (3 << 16) | (1 << 6) | 0b000110;
        assert_eq!(
            trap(hsr, 0x0900_0000, 0, 0x0009_0000).trap,
            Trap::MmioWrite {
                ipa: 0x0900_0000,
                va: 0x0900_0000,
                size: AccessSize::Byte,
                register: 3
            }
        );
    }

    #[test]
    fn a_permission_fault_has_no_ipa_whatever_hpfar_holds() {
        // str r1, [r0] to a page stage 2 maps read-only: ISV, SAS word,
        // SRT 1, WnR, DFSC 0b001111 (permission, level 3). HPFAR is UNKNOWN
        // on a permission fault: here it holds a stale IPA of the UART.
        let hsr =
            (0x24 << 26) | (1 << 25) | (1 << 24) | (0b10 << 22) | (1 << 16) | (1 << 6) | 0b00_1111;
        let exit = trap(hsr, 0x4010_0020, 0, 0x0009_0000);
        assert_eq!(
            exit.trap,
            Trap::DataAbort {
                va: 0x4010_0020,
                ipa: None,
                write: true,
                kind: FaultKind::Permission { level: 3 },
                stage1_walk: false
            },
            "not an MMIO write to the stale IPA"
        );
        // An instruction fetch from a device window mapped execute-never
        // (EC 0x20, IFSC 0b001111).
        let hsr = (0x20 << 26) | (1 << 25) | 0b00_1111;
        assert_eq!(
            trap(hsr, 0, 0x0804_0000, 0x0009_0000).trap,
            Trap::PrefetchAbort {
                va: 0x0804_0000,
                ipa: None,
                kind: FaultKind::Permission { level: 3 },
                stage1_walk: false
            }
        );
        // A permission fault on a stage-1 walk (S1PTW) does record the
        // walk's page in HPFAR.
        let hsr = (0x24 << 26) | (1 << 25) | (1 << 7) | 0b00_1110;
        assert_eq!(
            trap(hsr, 0x0000_1234, 0, 0x0040_0100).trap,
            Trap::DataAbort {
                va: 0x0000_1234,
                ipa: Some(0x4001_0000),
                write: false,
                kind: FaultKind::Permission { level: 2 },
                stage1_walk: true
            }
        );
    }

    #[test]
    fn a_translated_permission_fault_is_an_mmio_write() {
        // str r1, [r0] to the read-only flash bank at 0x0400_0080, whose IPA
        // the exit path found with ATS1CPR (HPFAR format, page 0x04000).
        let hsr =
            (0x24 << 26) | (1 << 25) | (1 << 24) | (0b10 << 22) | (1 << 16) | (1 << 6) | 0b00_1110;
        let registers = FaultRegisters {
            hsr,
            hdfar: 0xc000_0080,
            hifar: 0,
            hpfar: 0x0004_0000,
            hpfar_translated: true,
        };
        assert_eq!(
            decode_guest_exit(ExitVector::HypTrap, registers).trap,
            Trap::MmioWrite {
                ipa: 0x0400_0080,
                va: 0xc000_0080,
                size: AccessSize::Word,
                register: 1
            }
        );
        // A translation fault keeps HPFAR's own meaning; without ISV
        // (an stm) the permission fault keeps its found IPA on the fault
        // path.
        let stm = (0x24 << 26) | (1 << 25) | (1 << 6) | 0b00_1110;
        assert_eq!(
            decode_guest_exit(
                ExitVector::HypTrap,
                FaultRegisters {
                    hsr: stm,
                    ..registers
                }
            )
            .trap,
            Trap::DataAbort {
                va: 0xc000_0080,
                ipa: Some(0x0400_0080),
                write: true,
                kind: FaultKind::Permission { level: 2 },
                stage1_walk: false
            }
        );
    }

    #[test]
    fn abort_without_syndrome_goes_to_the_fault_path() {
        // An LDM from an unmapped IPA: ISV clear, level-2 translation fault.
        let exit = trap(0x9200_0006, 0x4800_0010, 0, 0x0048_0000);
        assert_eq!(
            exit.trap,
            Trap::DataAbort {
                va: 0x4800_0010,
                ipa: Some(0x4800_0010),
                write: false,
                kind: FaultKind::Translation { level: 2 },
                stage1_walk: false
            }
        );
    }

    #[test]
    fn cache_maintenance_at_a_device_goes_to_the_fault_path() {
        // DCIMVAC on the UART's IPA (on hardware; QEMU makes it a no-op):
        // ISV clear, CM and WnR set, level-2 translation fault. Never MMIO,
        // so the guest gets an abort.
        let hsr = 0x9200_0006 | (1 << 8) | (1 << 6);
        let exit = trap(hsr, 0x0900_0000, 0, 0x0009_0000);
        assert_eq!(
            exit.trap,
            Trap::DataAbort {
                va: 0x0900_0000,
                ipa: Some(0x0900_0000),
                write: true,
                kind: FaultKind::Translation { level: 2 },
                stage1_walk: false
            }
        );
    }

    #[test]
    fn fault_on_the_guests_own_table_walk_is_not_mmio() {
        // ISV set but S1PTW: the guest's page tables point at unmapped IPA.
        let hsr = 0x9381_0006 | (1 << 7);
        let exit = trap(hsr, 0xc000_0000, 0, 0x0050_0000);
        assert!(matches!(
            exit.trap,
            Trap::DataAbort {
                stage1_walk: true,
                ipa: Some(0x5000_0000),
                ..
            }
        ));
    }

    #[test]
    fn external_abort_has_no_ipa() {
        let hsr = 0x9200_0000 | 0b010000;
        assert_eq!(
            trap(hsr, 0x1234, 0, 0xdead_0000).trap,
            Trap::DataAbort {
                va: 0x1234,
                ipa: None,
                write: false,
                kind: FaultKind::External,
                stage1_walk: false
            }
        );
    }

    #[test]
    fn prefetch_abort_from_an_unmapped_ipa() {
        // EC 0x20, IL, level-1 translation fault.
        let exit = trap(0x8200_0005, 0, 0x6000_0004, 0x0060_0000);
        assert_eq!(
            exit.trap,
            Trap::PrefetchAbort {
                va: 0x6000_0004,
                ipa: Some(0x6000_0004),
                kind: FaultKind::Translation { level: 1 },
                stage1_walk: false
            }
        );
    }

    #[test]
    fn trapped_cp15_accesses() {
        // MRC p15, 0, r4, c1, c0, 0 (SCTLR read), CV with COND 0xe.
        let iss = (1 << 24) | (0xe << 20) | (1 << 10) | (4 << 5) | 1;
        let exit = trap(0x0e00_0000 | iss, 0, 0, 0);
        assert_eq!(
            exit.trap,
            Trap::SystemRegister {
                access: SystemRegisterAccess {
                    coprocessor: 15,
                    read: true,
                    opc1: 0,
                    crn: 1,
                    crm: 0,
                    opc2: 0,
                    register: 4,
                    register2: None
                },
                condition: Some(0xe)
            }
        );
        // MCRR p15, 0, r2, r3, c2 (TTBR0 write).
        let iss = (3 << 10) | (2 << 5) | (2 << 1);
        let exit = trap(0x1200_0000 | iss, 0, 0, 0);
        assert!(matches!(
            exit.trap,
            Trap::SystemRegister {
                access: SystemRegisterAccess {
                    read: false,
                    crm: 2,
                    register: 2,
                    register2: Some(3),
                    ..
                },
                condition: None
            }
        ));
    }

    #[test]
    fn smc_floating_point_and_undefined() {
        assert_eq!(trap(0x4e00_0000, 0, 0, 0).trap, Trap::SecureMonitorCall);
        assert_eq!(trap(0x1e00_000a, 0, 0, 0).trap, Trap::FloatingPoint);
        assert_eq!(
            trap(0x0200_0000, 0, 0, 0).trap,
            Trap::Undefined {
                syndrome: 0x0200_0000
            }
        );
        // LDC/STC to CP14 (EC 0x06): not emulated.
        assert_eq!(
            trap(0x1a00_0000, 0, 0, 0).trap,
            Trap::Undefined {
                syndrome: 0x1a00_0000
            }
        );
        // MRC p14, 0, r2, c0, c0, 0 (DBGDIDR, EC 0x05): a register access
        // for the vCPU to emulate.
        assert_eq!(
            trap(0x17e0_0041, 0, 0, 0).trap,
            Trap::SystemRegister {
                access: SystemRegisterAccess {
                    coprocessor: 14,
                    read: true,
                    opc1: 0,
                    crn: 0,
                    crm: 0,
                    opc2: 0,
                    register: 2,
                    register2: None,
                },
                condition: Some(0xe),
            }
        );
    }

    #[test]
    fn interrupts_ignore_the_syndrome() {
        let registers = FaultRegisters {
            hsr: 0x4a00_0001,
            ..Default::default()
        };
        assert_eq!(
            decode_guest_exit(ExitVector::Irq, registers).trap,
            Trap::Irq
        );
        assert_eq!(
            decode_guest_exit(ExitVector::Fiq, registers),
            GuestExit {
                trap: Trap::Fiq,
                instruction_bytes: 0
            }
        );
    }
}
