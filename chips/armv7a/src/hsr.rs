// SPDX-License-Identifier: MIT OR Apache-2.0
//! Decoding of the HSR (Hyp Syndrome Register) into exception syndromes.
//!
//! Every synchronous exception taken to Hyp mode leaves a syndrome in the
//! HSR: the exception class (EC, bits 31:26), whether the instruction was
//! 32 bits long (IL, bit 25) and a class-specific syndrome (ISS, bits
//! 24:0). This module turns that word into a [`Syndrome`] enum once, at the
//! chip boundary, so nothing above the chip handles a raw HSR. The layouts
//! follow the ARMv7-A/R Architecture Reference Manual (section "Use of the
//! HSR"); fault status codes are always in the long-descriptor (LPAE)
//! format, which is what Hyp mode reports whatever format the guest uses.
//!
//! The `aarch32-cpu` crate has an HSR type too, but it compiles its Hyp
//! registers only when building for an Armv7-A or Armv8-R target, so it
//! cannot be unit-tested on the host. The decoding here is ours, plain Rust,
//! and tested on the host; only the register read lives elsewhere.
//!
//! ```
//! use armv7a::hsr::{FaultStatus, Hsr, Syndrome};
//!
//! let hsr = Hsr(0x9381_0006);
//! match hsr.decode() {
//!     Syndrome::DataAbort { from_hyp: false, iss } => {
//!         assert_eq!((iss.access_size, iss.register), (Some(4), Some(1)));
//!         assert_eq!(iss.status, FaultStatus::Translation { level: 2 });
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert_eq!(
//!     format!("{hsr}"),
//!     "0x93810006 (EC 0x24 data abort from a guest; 32-bit instruction; \
//!      read, 4 bytes into r1; translation fault, level 2)"
//! );
//! ```
//!
//! Points of the encoding that are easy to get wrong:
//!
//! - ISV is 1 only for data aborts raised by a stage-2 translation. A data
//!   abort taken from Hyp mode (EC 0x25) always has ISV = 0, so SAS, SSE
//!   and SRT never describe it: a Hyp-mode load from an unmapped VA
//!   reports 0x9600_0005 (translation fault, level 1), nothing more.
//! - Besides the codes every LPAE table lists, the long-descriptor fault
//!   status can be a domain fault (0b1111LL, levels 1 and 2; Armv7 only,
//!   for a short-descriptor stage-1 fault reported in this format) or, on
//!   Armv8 cores running AArch32, an address size fault (0b0000LL, where
//!   level 0 means the translation table base register).
//! - LL = 0b00 is reserved for the translation, access flag, permission and
//!   table-walk codes (LPAE lookups start at level 1), so those codes decode
//!   as [`FaultStatus::Unknown`].
//! - SAS = 0b11 is reserved in Armv7 and means a doubleword on Armv8; it
//!   decodes as 8 bytes.
#![forbid(unsafe_code)]

use core::fmt;

/// Mask of the ISS field, bits 24:0.
const ISS_MASK: u32 = 0x01ff_ffff;
/// IL, bit 25: the trapped instruction was 32 bits long.
const IL_BIT: u32 = 1 << 25;
/// EC field position, bits 31:26.
const EC_SHIFT: u32 = 26;

/// Extracts `width` bits of `value` starting at bit `low`.
const fn bits(value: u32, low: u32, width: u32) -> u32 {
    (value >> low) & ((1 << width) - 1)
}

/// Tests bit `index` of `value`.
const fn bit(value: u32, index: u32) -> bool {
    (value >> index) & 1 == 1
}

/// The condition field of a trapped instruction, when its CV bit (24) says
/// it is valid.
const fn condition(iss: u32) -> Option<u8> {
    if bit(iss, 24) {
        Some(bits(iss, 20, 4) as u8)
    } else {
        None
    }
}

/// A raw HSR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hsr(pub u32);

impl Hsr {
    /// Builds an HSR value from its three fields (the ISS is truncated to
    /// 25 bits). Useful for tests and for describing synthetic exits.
    pub const fn from_parts(class: ExceptionClass, il_32bit: bool, iss: u32) -> Hsr {
        let il = if il_32bit { IL_BIT } else { 0 };
        Hsr(((class.code() as u32 & 0x3f) << EC_SHIFT) | il | (iss & ISS_MASK))
    }

    /// The exception class, EC (bits 31:26).
    pub const fn exception_class(self) -> ExceptionClass {
        ExceptionClass::from_ec((self.0 >> EC_SHIFT) as u8)
    }

    /// IL (bit 25): true when the trapped instruction was 32 bits long,
    /// false for a 16-bit Thumb instruction.
    pub const fn il_32bit(self) -> bool {
        self.0 & IL_BIT != 0
    }

    /// The instruction-specific syndrome, ISS (bits 24:0).
    pub const fn iss(self) -> u32 {
        self.0 & ISS_MASK
    }

    /// Decodes the ISS according to the exception class.
    pub fn decode(self) -> Syndrome {
        let iss = self.iss();
        match self.exception_class() {
            ExceptionClass::Unknown => Syndrome::Unknown,
            ExceptionClass::WfiWfe => Syndrome::WfiWfe {
                wfe: bit(iss, 0),
                cond: condition(iss),
            },
            class @ (ExceptionClass::Cp15McrMrc | ExceptionClass::Cp14McrMrc) => {
                Syndrome::RegisterAccess {
                    coprocessor: if matches!(class, ExceptionClass::Cp14McrMrc) {
                        14
                    } else {
                        15
                    },
                    read: bit(iss, 0),
                    opc1: bits(iss, 14, 3) as u8,
                    opc2: bits(iss, 17, 3) as u8,
                    crn: bits(iss, 10, 4) as u8,
                    crm: bits(iss, 1, 4) as u8,
                    rt: bits(iss, 5, 4) as u8,
                    cond: condition(iss),
                }
            }
            class @ (ExceptionClass::Cp15McrrMrrc | ExceptionClass::Cp14Mrrc) => {
                Syndrome::RegisterAccess64 {
                    coprocessor: if matches!(class, ExceptionClass::Cp14Mrrc) {
                        14
                    } else {
                        15
                    },
                    read: bit(iss, 0),
                    opc1: bits(iss, 16, 4) as u8,
                    crm: bits(iss, 1, 4) as u8,
                    rt: bits(iss, 5, 4) as u8,
                    rt2: bits(iss, 10, 4) as u8,
                    cond: condition(iss),
                }
            }
            ExceptionClass::SvcHyp => Syndrome::Svc { imm16: iss as u16 },
            ExceptionClass::Hvc => Syndrome::Hvc { imm16: iss as u16 },
            ExceptionClass::Smc => Syndrome::Smc,
            ExceptionClass::PrefetchAbortGuest => Syndrome::PrefetchAbort {
                from_hyp: false,
                iss: PrefetchAbortIss::from_iss(iss),
            },
            ExceptionClass::PrefetchAbortHyp => Syndrome::PrefetchAbort {
                from_hyp: true,
                iss: PrefetchAbortIss::from_iss(iss),
            },
            ExceptionClass::DataAbortGuest => Syndrome::DataAbort {
                from_hyp: false,
                iss: DataAbortIss::from_iss(iss),
            },
            ExceptionClass::DataAbortHyp => Syndrome::DataAbort {
                from_hyp: true,
                iss: DataAbortIss::from_iss(iss),
            },
            class => Syndrome::Other { class, iss },
        }
    }

    /// The HSR described in words, without the raw value:
    /// `EC 0x24 data abort from a guest; 32-bit instruction; ...`.
    pub const fn summary(self) -> HsrSummary {
        HsrSummary(self)
    }
}

/// One line: the raw value, then the summary in parentheses.
impl fmt::Display for Hsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x} ({})", self.0, self.summary())
    }
}

/// The words of [`Hsr::summary`]; formats without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HsrSummary(Hsr);

impl fmt::Display for HsrSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hsr = self.0;
        let class = hsr.exception_class();
        let length = if hsr.il_32bit() { 32 } else { 16 };
        write!(
            f,
            "EC 0x{:02x} {}; {}-bit instruction",
            class.code(),
            class.description(),
            length
        )?;
        let syndrome = hsr.decode();
        if syndrome.has_details() {
            write!(f, "; {syndrome}")?;
        }
        Ok(())
    }
}

/// The exception classes an Armv7-A HSR can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// 0x00: unknown reason; among others, an undefined instruction.
    Unknown,
    /// 0x01: WFI or WFE trapped by HCR.TWI/TWE.
    WfiWfe,
    /// 0x03: MCR or MRC to CP15 trapped (HSTR, HCR.TIDx, HCR.TVM...).
    Cp15McrMrc,
    /// 0x04: MCRR or MRRC to CP15 trapped.
    Cp15McrrMrrc,
    /// 0x05: MCR or MRC to CP14 trapped (HDCR).
    Cp14McrMrc,
    /// 0x06: LDC or STC to CP14 trapped.
    Cp14LdcStc,
    /// 0x07: access to CP0-CP13, Advanced SIMD or floating point trapped by
    /// HCPTR.
    SimdFp,
    /// 0x08: MRC or VMRS to CP10 trapped by HCR.TID0 (ID registers).
    Cp10Vmrs,
    /// 0x0c: MRRC to CP14 trapped.
    Cp14Mrrc,
    /// 0x11: SVC taken to Hyp mode, either executed in Hyp mode or routed
    /// there from a guest by HCR.TGE.
    SvcHyp,
    /// 0x12: HVC executed (from a guest, or in Hyp mode).
    Hvc,
    /// 0x13: SMC trapped by HCR.TSC.
    Smc,
    /// 0x20: prefetch abort routed to Hyp mode from a guest (stage 2).
    PrefetchAbortGuest,
    /// 0x21: prefetch abort taken from Hyp mode.
    PrefetchAbortHyp,
    /// 0x24: data abort routed to Hyp mode from a guest (stage 2).
    DataAbortGuest,
    /// 0x25: data abort taken from Hyp mode.
    DataAbortHyp,
    /// Any other EC value: reserved in Armv7. Holds the raw value.
    Reserved(u8),
}

impl ExceptionClass {
    /// Every class the enum names, for tests and tables.
    pub const ALL: [ExceptionClass; 16] = [
        ExceptionClass::Unknown,
        ExceptionClass::WfiWfe,
        ExceptionClass::Cp15McrMrc,
        ExceptionClass::Cp15McrrMrrc,
        ExceptionClass::Cp14McrMrc,
        ExceptionClass::Cp14LdcStc,
        ExceptionClass::SimdFp,
        ExceptionClass::Cp10Vmrs,
        ExceptionClass::Cp14Mrrc,
        ExceptionClass::SvcHyp,
        ExceptionClass::Hvc,
        ExceptionClass::Smc,
        ExceptionClass::PrefetchAbortGuest,
        ExceptionClass::PrefetchAbortHyp,
        ExceptionClass::DataAbortGuest,
        ExceptionClass::DataAbortHyp,
    ];

    /// The class for an EC value (only its low six bits can come from an
    /// HSR; anything not defined becomes [`ExceptionClass::Reserved`]).
    pub const fn from_ec(ec: u8) -> Self {
        match ec {
            0x00 => ExceptionClass::Unknown,
            0x01 => ExceptionClass::WfiWfe,
            0x03 => ExceptionClass::Cp15McrMrc,
            0x04 => ExceptionClass::Cp15McrrMrrc,
            0x05 => ExceptionClass::Cp14McrMrc,
            0x06 => ExceptionClass::Cp14LdcStc,
            0x07 => ExceptionClass::SimdFp,
            0x08 => ExceptionClass::Cp10Vmrs,
            0x0c => ExceptionClass::Cp14Mrrc,
            0x11 => ExceptionClass::SvcHyp,
            0x12 => ExceptionClass::Hvc,
            0x13 => ExceptionClass::Smc,
            0x20 => ExceptionClass::PrefetchAbortGuest,
            0x21 => ExceptionClass::PrefetchAbortHyp,
            0x24 => ExceptionClass::DataAbortGuest,
            0x25 => ExceptionClass::DataAbortHyp,
            other => ExceptionClass::Reserved(other),
        }
    }

    /// The EC value of this class.
    pub const fn code(&self) -> u8 {
        match self {
            ExceptionClass::Unknown => 0x00,
            ExceptionClass::WfiWfe => 0x01,
            ExceptionClass::Cp15McrMrc => 0x03,
            ExceptionClass::Cp15McrrMrrc => 0x04,
            ExceptionClass::Cp14McrMrc => 0x05,
            ExceptionClass::Cp14LdcStc => 0x06,
            ExceptionClass::SimdFp => 0x07,
            ExceptionClass::Cp10Vmrs => 0x08,
            ExceptionClass::Cp14Mrrc => 0x0c,
            ExceptionClass::SvcHyp => 0x11,
            ExceptionClass::Hvc => 0x12,
            ExceptionClass::Smc => 0x13,
            ExceptionClass::PrefetchAbortGuest => 0x20,
            ExceptionClass::PrefetchAbortHyp => 0x21,
            ExceptionClass::DataAbortGuest => 0x24,
            ExceptionClass::DataAbortHyp => 0x25,
            ExceptionClass::Reserved(ec) => *ec,
        }
    }

    /// A short phrase for reports.
    pub const fn description(&self) -> &'static str {
        match self {
            ExceptionClass::Unknown => "unknown reason (undefined instruction)",
            ExceptionClass::WfiWfe => "WFI/WFE trapped",
            ExceptionClass::Cp15McrMrc => "MCR/MRC access to CP15 trapped",
            ExceptionClass::Cp15McrrMrrc => "MCRR/MRRC access to CP15 trapped",
            ExceptionClass::Cp14McrMrc => "MCR/MRC access to CP14 trapped",
            ExceptionClass::Cp14LdcStc => "LDC/STC access to CP14 trapped",
            ExceptionClass::SimdFp => "coprocessor, Advanced SIMD or FP access trapped by HCPTR",
            ExceptionClass::Cp10Vmrs => "MRC/VMRS access to CP10 trapped",
            ExceptionClass::Cp14Mrrc => "MRRC access to CP14 trapped",
            ExceptionClass::SvcHyp => "SVC taken to Hyp mode",
            ExceptionClass::Hvc => "HVC executed",
            ExceptionClass::Smc => "SMC executed",
            ExceptionClass::PrefetchAbortGuest => "prefetch abort from a guest",
            ExceptionClass::PrefetchAbortHyp => "prefetch abort taken from Hyp mode",
            ExceptionClass::DataAbortGuest => "data abort from a guest",
            ExceptionClass::DataAbortHyp => "data abort taken from Hyp mode",
            ExceptionClass::Reserved(_) => "reserved exception class",
        }
    }
}

/// A long-descriptor fault status code (DFSC/IFSC, ISS bits 5:0).
///
/// Levels are lookup levels of the long-descriptor translation: 1, 2 or 3
/// (0 only for [`FaultStatus::AddressSize`], meaning the base register).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// 0b0000LL: output or table address too wide (Armv8 AArch32 only;
    /// reserved in Armv7).
    AddressSize { level: u8 },
    /// 0b0001LL: no valid descriptor at this level.
    Translation { level: u8 },
    /// 0b0010LL: descriptor with its access flag clear.
    AccessFlag { level: u8 },
    /// 0b0011LL: the access is not allowed by the descriptor.
    Permission { level: u8 },
    /// 0b010000: synchronous external abort, not on a table walk.
    SyncExternal,
    /// 0b0101LL: synchronous external abort on a translation table walk.
    SyncExternalOnWalk { level: u8 },
    /// 0b011000: synchronous parity error, not on a table walk.
    SyncParity,
    /// 0b0111LL: synchronous parity error on a translation table walk.
    SyncParityOnWalk { level: u8 },
    /// 0b100001: unaligned access that must be aligned.
    Alignment,
    /// 0b100010: debug event (breakpoint, watchpoint...).
    DebugEvent,
    /// 0b110000: more than one TLB entry matched.
    TlbConflict,
    /// 0b010001: asynchronous external abort.
    AsyncExternal,
    /// 0b011001: asynchronous parity error.
    AsyncParity,
    /// 0b110100: IMPLEMENTATION DEFINED lockdown abort.
    Lockdown,
    /// 0b111010: IMPLEMENTATION DEFINED coprocessor abort (Armv7 only).
    Coprocessor,
    /// 0b1111LL: domain fault, levels 1 and 2 (Armv7 only; from a
    /// short-descriptor stage-1 translation reported in the long format).
    Domain { level: u8 },
    /// A reserved code. Holds the raw value.
    Unknown(u8),
}

impl FaultStatus {
    /// Decodes a six-bit fault status code.
    pub const fn from_code(code: u8) -> Self {
        let level = code & 0b11;
        // The translation-related groups carry the level in bits [1:0];
        // level 0 exists only for address size faults.
        match code >> 2 {
            0b0000 => return FaultStatus::AddressSize { level },
            0b0001 if level != 0 => return FaultStatus::Translation { level },
            0b0010 if level != 0 => return FaultStatus::AccessFlag { level },
            0b0011 if level != 0 => return FaultStatus::Permission { level },
            0b0101 if level != 0 => return FaultStatus::SyncExternalOnWalk { level },
            0b0111 if level != 0 => return FaultStatus::SyncParityOnWalk { level },
            0b1111 if level == 1 || level == 2 => return FaultStatus::Domain { level },
            _ => {}
        }
        match code {
            0b01_0000 => FaultStatus::SyncExternal,
            0b01_0001 => FaultStatus::AsyncExternal,
            0b01_1000 => FaultStatus::SyncParity,
            0b01_1001 => FaultStatus::AsyncParity,
            0b10_0001 => FaultStatus::Alignment,
            0b10_0010 => FaultStatus::DebugEvent,
            0b11_0000 => FaultStatus::TlbConflict,
            0b11_0100 => FaultStatus::Lockdown,
            0b11_1010 => FaultStatus::Coprocessor,
            other => FaultStatus::Unknown(other),
        }
    }

    /// The six-bit code of this status (the inverse of [`Self::from_code`]
    /// for every value it produces).
    pub const fn code(&self) -> u8 {
        match *self {
            FaultStatus::AddressSize { level } => level & 0b11,
            FaultStatus::Translation { level } => 0b00_0100 | (level & 0b11),
            FaultStatus::AccessFlag { level } => 0b00_1000 | (level & 0b11),
            FaultStatus::Permission { level } => 0b00_1100 | (level & 0b11),
            FaultStatus::SyncExternal => 0b01_0000,
            FaultStatus::SyncExternalOnWalk { level } => 0b01_0100 | (level & 0b11),
            FaultStatus::SyncParity => 0b01_1000,
            FaultStatus::SyncParityOnWalk { level } => 0b01_1100 | (level & 0b11),
            FaultStatus::Alignment => 0b10_0001,
            FaultStatus::DebugEvent => 0b10_0010,
            FaultStatus::TlbConflict => 0b11_0000,
            FaultStatus::AsyncExternal => 0b01_0001,
            FaultStatus::AsyncParity => 0b01_1001,
            FaultStatus::Lockdown => 0b11_0100,
            FaultStatus::Coprocessor => 0b11_1010,
            FaultStatus::Domain { level } => 0b11_1100 | (level & 0b11),
            FaultStatus::Unknown(code) => code,
        }
    }

    /// The lookup level the fault happened at, for the kinds that have one.
    pub const fn level(&self) -> Option<u8> {
        match *self {
            FaultStatus::AddressSize { level }
            | FaultStatus::Translation { level }
            | FaultStatus::AccessFlag { level }
            | FaultStatus::Permission { level }
            | FaultStatus::SyncExternalOnWalk { level }
            | FaultStatus::SyncParityOnWalk { level }
            | FaultStatus::Domain { level } => Some(level),
            _ => None,
        }
    }

    /// True for the asynchronous aborts, for which the fault address
    /// registers hold nothing useful.
    pub const fn is_asynchronous(&self) -> bool {
        matches!(self, FaultStatus::AsyncExternal | FaultStatus::AsyncParity)
    }
}

impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FaultStatus::AddressSize { level: 0 } => {
                f.write_str("address size fault, translation table base")
            }
            FaultStatus::AddressSize { level } => write!(f, "address size fault, level {level}"),
            FaultStatus::Translation { level } => write!(f, "translation fault, level {level}"),
            FaultStatus::AccessFlag { level } => write!(f, "access flag fault, level {level}"),
            FaultStatus::Permission { level } => write!(f, "permission fault, level {level}"),
            FaultStatus::SyncExternal => f.write_str("synchronous external abort"),
            FaultStatus::SyncExternalOnWalk { level } => write!(
                f,
                "synchronous external abort on translation table walk, level {level}"
            ),
            FaultStatus::SyncParity => f.write_str("synchronous parity error"),
            FaultStatus::SyncParityOnWalk { level } => write!(
                f,
                "synchronous parity error on translation table walk, level {level}"
            ),
            FaultStatus::Alignment => f.write_str("alignment fault"),
            FaultStatus::DebugEvent => f.write_str("debug event"),
            FaultStatus::TlbConflict => f.write_str("TLB conflict abort"),
            FaultStatus::AsyncExternal => f.write_str("asynchronous external abort"),
            FaultStatus::AsyncParity => f.write_str("asynchronous parity error"),
            FaultStatus::Lockdown => f.write_str("lockdown abort (implementation defined)"),
            FaultStatus::Coprocessor => f.write_str("coprocessor abort (implementation defined)"),
            FaultStatus::Domain { level } => write!(f, "domain fault, level {level}"),
            FaultStatus::Unknown(code) => write!(f, "reserved fault status 0x{code:02x}"),
        }
    }
}

/// The ISS of a data abort (EC 0x24 or 0x25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbortIss {
    /// ISV (bit 24): the access size, sign extension and register fields
    /// are valid. Set only for stage-2 faults on single-register loads and
    /// stores without writeback.
    pub isv: bool,
    /// Access size in bytes, from SAS (bits 23:22), when ISV is set.
    pub access_size: Option<u8>,
    /// SSE (bit 21): the loaded value must be sign-extended. False when
    /// ISV is clear.
    pub sign_extend: bool,
    /// The transfer register Rt, from SRT (bits 19:16), when ISV is set.
    pub register: Option<u8>,
    /// EA (bit 9): IMPLEMENTATION DEFINED classification of external aborts.
    pub external_abort_type: bool,
    /// CM (bit 8): the fault came from a cache maintenance or address
    /// translation instruction.
    pub cache_maintenance: bool,
    /// S1PTW (bit 7): a stage-2 fault on an access made for a stage-1
    /// translation table walk.
    pub stage1_walk: bool,
    /// WnR (bit 6): the access was a write (always set for cache
    /// maintenance).
    pub write: bool,
    /// DFSC (bits 5:0).
    pub status: FaultStatus,
}

impl DataAbortIss {
    /// Decodes the 25-bit ISS of a data abort.
    pub const fn from_iss(iss: u32) -> Self {
        let isv = bit(iss, 24);
        // SAS, SSE and SRT are reserved when ISV is clear: ignore them.
        let (access_size, sign_extend, register) = if isv {
            let size = 1u8 << bits(iss, 22, 2);
            (Some(size), bit(iss, 21), Some(bits(iss, 16, 4) as u8))
        } else {
            (None, false, None)
        };
        DataAbortIss {
            isv,
            access_size,
            sign_extend,
            register,
            external_abort_type: bit(iss, 9),
            cache_maintenance: bit(iss, 8),
            stage1_walk: bit(iss, 7),
            write: bit(iss, 6),
            status: FaultStatus::from_code(bits(iss, 0, 6) as u8),
        }
    }
}

/// `read, 4 bytes into r1; translation fault, level 2` and any flags.
impl fmt::Display for DataAbortIss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.write { "write" } else { "read" })?;
        match (self.access_size, self.register) {
            (Some(size), Some(register)) => {
                let unit = if size == 1 { "byte" } else { "bytes" };
                let extend = if self.sign_extend {
                    " sign-extended"
                } else {
                    ""
                };
                let preposition = if self.write { "from" } else { "into" };
                write!(
                    f,
                    ", {size} {unit}{extend} {preposition} {}",
                    RegisterName(register)
                )?;
            }
            _ => f.write_str(", no instruction syndrome")?,
        }
        write!(f, "; {}", self.status)?;
        if self.stage1_walk {
            f.write_str("; on a stage-1 translation table walk")?;
        }
        if self.cache_maintenance {
            f.write_str("; by a cache maintenance or address translation instruction")?;
        }
        if self.external_abort_type {
            f.write_str("; EA set")?;
        }
        Ok(())
    }
}

/// The ISS of a prefetch abort (EC 0x20 or 0x21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefetchAbortIss {
    /// EA (bit 9): IMPLEMENTATION DEFINED classification of external aborts.
    pub external_abort_type: bool,
    /// S1PTW (bit 7): a stage-2 fault on a stage-1 translation table walk.
    pub stage1_walk: bool,
    /// IFSC (bits 5:0).
    pub status: FaultStatus,
}

impl PrefetchAbortIss {
    /// Decodes the 25-bit ISS of a prefetch abort.
    pub const fn from_iss(iss: u32) -> Self {
        PrefetchAbortIss {
            external_abort_type: bit(iss, 9),
            stage1_walk: bit(iss, 7),
            status: FaultStatus::from_code(bits(iss, 0, 6) as u8),
        }
    }
}

impl fmt::Display for PrefetchAbortIss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if self.stage1_walk {
            f.write_str("; on a stage-1 translation table walk")?;
        }
        if self.external_abort_type {
            f.write_str("; EA set")?;
        }
        Ok(())
    }
}

/// An HSR decoded according to its exception class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syndrome {
    /// EC 0x00: no syndrome; typically an undefined instruction.
    Unknown,
    /// EC 0x01: a trapped WFI (`wfe` false) or WFE (`wfe` true).
    WfiWfe {
        /// TI (bit 0).
        wfe: bool,
        /// COND (bits 23:20) when CV (bit 24) is set.
        cond: Option<u8>,
    },
    /// EC 0x03 or 0x05: a trapped 32-bit CP15 or CP14 access,
    /// `MCR`/`MRC p<coprocessor>, opc1, Rt, CRn, CRm, opc2` (the two
    /// classes share the ISS layout).
    RegisterAccess {
        /// 15 (EC 0x03) or 14 (EC 0x05).
        coprocessor: u8,
        /// Direction (bit 0): true for MRC (a read into Rt).
        read: bool,
        /// Opc1 (bits 16:14).
        opc1: u8,
        /// Opc2 (bits 19:17).
        opc2: u8,
        /// CRn (bits 13:10).
        crn: u8,
        /// CRm (bits 4:1).
        crm: u8,
        /// Rt (bits 8:5).
        rt: u8,
        /// COND (bits 23:20) when CV (bit 24) is set.
        cond: Option<u8>,
    },
    /// EC 0x04 or 0x0c: a trapped 64-bit CP15 or CP14 access,
    /// `MCRR`/`MRRC p<coprocessor>, opc1, Rt, Rt2, CRm`.
    RegisterAccess64 {
        /// 15 (EC 0x04) or 14 (EC 0x0c, MRRC only: Armv7 has no MCRR to
        /// CP14 that traps).
        coprocessor: u8,
        /// Direction (bit 0): true for MRRC (a read into Rt and Rt2).
        read: bool,
        /// Opc1 (bits 19:16).
        opc1: u8,
        /// CRm (bits 4:1).
        crm: u8,
        /// Rt (bits 8:5).
        rt: u8,
        /// Rt2 (bits 13:10).
        rt2: u8,
        /// COND (bits 23:20) when CV (bit 24) is set.
        cond: Option<u8>,
    },
    /// EC 0x11: SVC taken to Hyp mode. `imm16` is the instruction's
    /// immediate (for an A32 SVC, the low 16 bits of its imm24).
    Svc { imm16: u16 },
    /// EC 0x12: HVC with its 16-bit immediate.
    Hvc { imm16: u16 },
    /// EC 0x13: SMC trapped (its ISS is reserved in Armv7).
    Smc,
    /// EC 0x20 (`from_hyp` false) or 0x21 (`from_hyp` true).
    PrefetchAbort {
        from_hyp: bool,
        iss: PrefetchAbortIss,
    },
    /// EC 0x24 (`from_hyp` false) or 0x25 (`from_hyp` true).
    DataAbort { from_hyp: bool, iss: DataAbortIss },
    /// A class without a dedicated decoding here, with its raw ISS.
    Other { class: ExceptionClass, iss: u32 },
}

impl Syndrome {
    /// False for the syndromes whose ISS carries nothing worth printing.
    pub const fn has_details(&self) -> bool {
        !matches!(self, Syndrome::Unknown | Syndrome::Smc)
    }
}

/// The ISS details only (the class is printed by [`HsrSummary`]); empty
/// when [`Syndrome::has_details`] is false.
impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Syndrome::Unknown | Syndrome::Smc => Ok(()),
            Syndrome::WfiWfe { wfe, cond } => {
                let name = if wfe { "WFE" } else { "WFI" };
                write!(f, "{name}{}", ConditionSuffix(cond))
            }
            Syndrome::RegisterAccess {
                coprocessor,
                read,
                opc1,
                opc2,
                crn,
                crm,
                rt,
                cond,
            } => write!(
                f,
                "{}{} p{coprocessor}, {opc1}, {}, c{crn}, c{crm}, {opc2}",
                if read { "MRC" } else { "MCR" },
                ConditionSuffix(cond),
                RegisterName(rt)
            ),
            Syndrome::RegisterAccess64 {
                coprocessor,
                read,
                opc1,
                crm,
                rt,
                rt2,
                cond,
            } => write!(
                f,
                "{}{} p{coprocessor}, {opc1}, {}, {}, c{crm}",
                if read { "MRRC" } else { "MCRR" },
                ConditionSuffix(cond),
                RegisterName(rt),
                RegisterName(rt2)
            ),
            Syndrome::Svc { imm16 } => write!(f, "SVC #0x{imm16:x}"),
            Syndrome::Hvc { imm16 } => write!(f, "HVC #0x{imm16:x}"),
            Syndrome::PrefetchAbort { iss, .. } => write!(f, "{iss}"),
            Syndrome::DataAbort { iss, .. } => write!(f, "{iss}"),
            Syndrome::Other { iss, .. } => write!(f, "ISS 0x{iss:07x}"),
        }
    }
}

/// The intermediate physical address of a stage-2 fault: HPFAR bits
/// 31:4 hold IPA bits 39:12, and the page offset comes from the
/// faulting virtual address (HDFAR or HIFAR).
pub const fn faulting_ipa(hpfar: u32, far: u32) -> u64 {
    (((hpfar & !0xf) as u64) << 8) | (far & 0xfff) as u64
}

/// A core register number printed as the manual names it.
struct RegisterName(u8);

impl fmt::Display for RegisterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            13 => f.write_str("sp"),
            14 => f.write_str("lr"),
            15 => f.write_str("pc"),
            number => write!(f, "r{number}"),
        }
    }
}

/// An instruction's condition as its mnemonic suffix: nothing for
/// "always" (0b1110), an unconditional encoding (0b1111), or an unknown
/// condition (CV clear).
struct ConditionSuffix(Option<u8>);

impl fmt::Display for ConditionSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 16] = [
            "EQ", "NE", "CS", "CC", "MI", "PL", "VS", "VC", "HI", "LS", "GE", "LT", "GT", "LE", "",
            "",
        ];
        match self.0 {
            Some(cond) => f.write_str(NAMES[(cond & 0xf) as usize]),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    /// Builds an MCR/MRC ISS from its fields, independently of the decoder.
    fn mcr_mrc_iss(read: bool, opc1: u32, opc2: u32, crn: u32, crm: u32, rt: u32) -> u32 {
        (1 << 24)
            | (0xe << 20)
            | (opc2 << 17)
            | (opc1 << 14)
            | (crn << 10)
            | (rt << 5)
            | (crm << 1)
            | read as u32
    }

    fn data_abort(hsr: u32) -> (bool, DataAbortIss) {
        match Hsr(hsr).decode() {
            Syndrome::DataAbort { from_hyp, iss } => (from_hyp, iss),
            other => panic!("0x{hsr:08x} decoded as {other:?}"),
        }
    }

    #[test]
    fn hvc_from_a_guest() {
        let hsr = Hsr(0x4a00_0001);
        assert_eq!(hsr.exception_class(), ExceptionClass::Hvc);
        assert!(hsr.il_32bit());
        assert_eq!(hsr.iss(), 1);
        assert_eq!(hsr.decode(), Syndrome::Hvc { imm16: 1 });
        assert_eq!(
            format!("{hsr}"),
            "0x4a000001 (EC 0x12 HVC executed; 32-bit instruction; HVC #0x1)"
        );
    }

    #[test]
    fn trapped_wfi() {
        let hsr = Hsr(0x07e0_0000);
        assert_eq!(hsr.exception_class(), ExceptionClass::WfiWfe);
        assert_eq!(
            hsr.decode(),
            Syndrome::WfiWfe {
                wfe: false,
                cond: Some(0xe)
            }
        );
        assert_eq!(
            format!("{hsr}"),
            "0x07e00000 (EC 0x01 WFI/WFE trapped; 32-bit instruction; WFI)"
        );
        // TI set, CV clear, 16-bit: a Thumb WFE.
        assert_eq!(
            Hsr(0x0400_0001).decode(),
            Syndrome::WfiWfe {
                wfe: true,
                cond: None
            }
        );
        assert!(!Hsr(0x0400_0001).il_32bit());
        assert_eq!(
            format!("{}", Hsr(0x0400_0001).summary()),
            "EC 0x01 WFI/WFE trapped; 16-bit instruction; WFE"
        );
    }

    #[test]
    fn guest_load_from_an_unmapped_ipa() {
        let (from_hyp, iss) = data_abort(0x9381_0006);
        assert!(!from_hyp);
        assert_eq!(
            iss,
            DataAbortIss {
                isv: true,
                access_size: Some(4),
                sign_extend: false,
                register: Some(1),
                external_abort_type: false,
                cache_maintenance: false,
                stage1_walk: false,
                write: false,
                status: FaultStatus::Translation { level: 2 },
            }
        );
        assert_eq!(
            format!("{}", Hsr(0x9381_0006)),
            "0x93810006 (EC 0x24 data abort from a guest; 32-bit instruction; \
             read, 4 bytes into r1; translation fault, level 2)"
        );
    }

    #[test]
    fn hyp_mode_load_from_an_unmapped_va() {
        // What a Hyp-mode LDR from an unmapped VA reports: EC 0x25, IL,
        // ISV clear (never set for a stage-1 fault), read, level-1
        // translation fault.
        let (from_hyp, iss) = data_abort(0x9600_0005);
        assert!(from_hyp);
        assert!(!iss.isv);
        assert_eq!((iss.access_size, iss.register), (None, None));
        assert_eq!(iss.status, FaultStatus::Translation { level: 1 });
        assert_eq!(
            format!("{}", Hsr(0x9600_0005).summary()),
            "EC 0x25 data abort taken from Hyp mode; 32-bit instruction; \
             read, no instruction syndrome; translation fault, level 1"
        );
        // 0x9683_0005 has ISV clear as well: its SAS and SRT bits are
        // reserved and must be ignored.
        let (_, iss) = data_abort(0x9683_0005);
        assert_eq!(
            (iss.isv, iss.access_size, iss.register),
            (false, None, None)
        );
        assert_eq!(iss.status, FaultStatus::Translation { level: 1 });
        // With ISV set (0x9783_0005) the same bits name a word into r3.
        let (from_hyp, iss) = data_abort(0x9783_0005);
        assert!(from_hyp);
        assert_eq!(
            (iss.access_size, iss.register, iss.write),
            (Some(4), Some(3), false)
        );
    }

    #[test]
    fn write_versus_read() {
        // STR r2, word, stage-2 translation fault at level 3.
        let (_, store) = data_abort(0x9382_0047);
        assert!(store.write);
        assert_eq!(store.register, Some(2));
        assert_eq!(store.status, FaultStatus::Translation { level: 3 });
        assert!(format!("{store}").starts_with("write, 4 bytes from r2;"));
        let (_, load) = data_abort(0x9382_0007);
        assert!(!load.write);
        assert!(format!("{load}").starts_with("read, 4 bytes into r2;"));
    }

    #[test]
    fn sign_extending_halfword_and_byte_loads() {
        // LDRSH r5: SAS 01, SSE 1, SRT 5.
        let (_, iss) = data_abort(0x9365_0006);
        assert_eq!(iss.access_size, Some(2));
        assert!(iss.sign_extend);
        assert_eq!(iss.register, Some(5));
        assert_eq!(
            format!("{iss}"),
            "read, 2 bytes sign-extended into r5; translation fault, level 2"
        );
        // LDRH r5: the same without SSE.
        let (_, iss) = data_abort(0x9345_0006);
        assert_eq!((iss.access_size, iss.sign_extend), (Some(2), false));
        // LDRSB lr: SAS 00, SSE 1, SRT 14.
        let (_, iss) = data_abort(0x932e_0006);
        assert_eq!(
            (iss.access_size, iss.sign_extend, iss.register),
            (Some(1), true, Some(14))
        );
        assert!(format!("{iss}").starts_with("read, 1 byte sign-extended into lr;"));
    }

    #[test]
    fn no_instruction_syndrome_without_isv() {
        // An LDM from a guest: ISV clear, even if reserved bits are set.
        let (_, iss) = data_abort(0x92ef_0006);
        assert!(!iss.isv);
        assert_eq!(iss.access_size, None);
        assert_eq!(iss.register, None);
        assert!(!iss.sign_extend);
        assert_eq!(iss.status, FaultStatus::Translation { level: 2 });
        // Bit 20 is reserved, not part of SRT.
        let (_, iss) = data_abort(0x9391_0006);
        assert_eq!(iss.register, Some(1));
        // SAS 0b11: a doubleword on Armv8.
        let (_, iss) = data_abort(0x93c0_0006);
        assert_eq!(iss.access_size, Some(8));
    }

    #[test]
    fn flags_of_a_data_abort() {
        // EA, CM, S1PTW and WnR each on their own bit.
        let (_, iss) = data_abort(0x9200_0200 | 0x0d);
        assert!(iss.external_abort_type && !iss.cache_maintenance && !iss.stage1_walk);
        let (_, iss) = data_abort(0x9200_0100 | 0x40 | 0x0d);
        assert!(iss.cache_maintenance && iss.write && !iss.stage1_walk);
        let (_, iss) = data_abort(0x9200_0040 | 0x0d);
        assert!(iss.write && !iss.cache_maintenance && !iss.stage1_walk);
        let (_, iss) = data_abort(0x9200_0080 | 0x06);
        assert!(iss.stage1_walk && !iss.write && !iss.cache_maintenance);
        assert_eq!(
            format!("{iss}"),
            "read, no instruction syndrome; translation fault, level 2; \
             on a stage-1 translation table walk"
        );
    }

    #[test]
    fn permission_and_access_flag_faults_at_each_level() {
        for level in 1..=3u8 {
            let permission = FaultStatus::from_code(0b00_1100 | level);
            assert_eq!(permission, FaultStatus::Permission { level });
            assert_eq!(
                format!("{permission}"),
                format!("permission fault, level {level}")
            );
            let access = FaultStatus::from_code(0b00_1000 | level);
            assert_eq!(access, FaultStatus::AccessFlag { level });
            assert_eq!(
                format!("{access}"),
                format!("access flag fault, level {level}")
            );
            assert_eq!(
                FaultStatus::from_code(0b00_0100 | level),
                FaultStatus::Translation { level }
            );
            // Through a whole HSR too: a guest write hitting a read-only page.
            let (_, iss) = data_abort(0x9380_0040 | 0b00_1100 | level as u32);
            assert_eq!(
                (iss.write, iss.status),
                (true, FaultStatus::Permission { level })
            );
        }
        // Level 0 is reserved for these kinds.
        assert_eq!(
            FaultStatus::from_code(0b00_1100),
            FaultStatus::Unknown(0x0c)
        );
        assert_eq!(
            FaultStatus::from_code(0b00_1000),
            FaultStatus::Unknown(0x08)
        );
        assert_eq!(
            FaultStatus::from_code(0b00_0100),
            FaultStatus::Unknown(0x04)
        );
    }

    #[test]
    fn alignment_and_other_fixed_codes() {
        assert_eq!(FaultStatus::from_code(0x21), FaultStatus::Alignment);
        assert_eq!(format!("{}", FaultStatus::Alignment), "alignment fault");
        let (from_hyp, iss) = data_abort(0x9600_0061);
        assert!(from_hyp && iss.write);
        assert_eq!(iss.status, FaultStatus::Alignment);
        assert_eq!(FaultStatus::from_code(0x10), FaultStatus::SyncExternal);
        assert_eq!(FaultStatus::from_code(0x11), FaultStatus::AsyncExternal);
        assert_eq!(FaultStatus::from_code(0x18), FaultStatus::SyncParity);
        assert_eq!(FaultStatus::from_code(0x19), FaultStatus::AsyncParity);
        assert_eq!(FaultStatus::from_code(0x22), FaultStatus::DebugEvent);
        assert_eq!(FaultStatus::from_code(0x30), FaultStatus::TlbConflict);
        assert_eq!(FaultStatus::from_code(0x34), FaultStatus::Lockdown);
        assert_eq!(FaultStatus::from_code(0x3a), FaultStatus::Coprocessor);
        assert_eq!(
            FaultStatus::from_code(0x16),
            FaultStatus::SyncExternalOnWalk { level: 2 }
        );
        assert_eq!(
            FaultStatus::from_code(0x1f),
            FaultStatus::SyncParityOnWalk { level: 3 }
        );
        assert_eq!(
            FaultStatus::from_code(0x3d),
            FaultStatus::Domain { level: 1 }
        );
        assert_eq!(
            FaultStatus::from_code(0x00),
            FaultStatus::AddressSize { level: 0 }
        );
        assert_eq!(FaultStatus::from_code(0x3f), FaultStatus::Unknown(0x3f));
        assert_eq!(FaultStatus::from_code(0x20), FaultStatus::Unknown(0x20));
        assert!(FaultStatus::AsyncExternal.is_asynchronous());
        assert!(!FaultStatus::SyncExternal.is_asynchronous());
    }

    #[test]
    fn every_fault_code_round_trips() {
        for code in 0..0x40u8 {
            let status = FaultStatus::from_code(code);
            assert_eq!(status.code(), code, "{status:?}");
        }
    }

    #[test]
    fn prefetch_abort_from_hyp() {
        // Instruction fetch from an unmapped VA in Hyp: EC 0x21, IL,
        // IFSC translation level 2.
        let hsr = Hsr(0x8600_0006);
        assert_eq!(hsr.exception_class(), ExceptionClass::PrefetchAbortHyp);
        assert_eq!(
            hsr.decode(),
            Syndrome::PrefetchAbort {
                from_hyp: true,
                iss: PrefetchAbortIss {
                    external_abort_type: false,
                    stage1_walk: false,
                    status: FaultStatus::Translation { level: 2 },
                },
            }
        );
        assert_eq!(
            format!("{hsr}"),
            "0x86000006 (EC 0x21 prefetch abort taken from Hyp mode; 32-bit instruction; \
             translation fault, level 2)"
        );
        // From a guest, on a stage-1 walk, with EA set.
        match Hsr(0x8200_0285).decode() {
            Syndrome::PrefetchAbort { from_hyp, iss } => {
                assert!(!from_hyp && iss.stage1_walk && iss.external_abort_type);
                assert_eq!(iss.status, FaultStatus::Translation { level: 1 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn undefined_instruction() {
        let hsr = Hsr(0x0200_0000);
        assert_eq!(hsr.exception_class(), ExceptionClass::Unknown);
        assert_eq!(hsr.decode(), Syndrome::Unknown);
        assert_eq!(
            format!("{hsr}"),
            "0x02000000 (EC 0x00 unknown reason (undefined instruction); 32-bit instruction)"
        );
    }

    #[test]
    fn cp15_mcr_mrc_round_trip() {
        // MRC p15, 0, r4, c1, c0, 0 (SCTLR read) and MCR p15, 0, r7, c2, c0, 2.
        for (read, opc1, opc2, crn, crm, rt) in [
            (true, 1, 0, 0, 0, 0),
            (false, 5, 3, 9, 6, 11),
            (true, 0, 0, 1, 0, 4),
            (false, 0, 2, 2, 0, 7),
            (true, 7, 7, 15, 15, 15),
        ] {
            let iss = mcr_mrc_iss(read, opc1, opc2, crn, crm, rt);
            let hsr = Hsr::from_parts(ExceptionClass::Cp15McrMrc, true, iss);
            assert_eq!(hsr.exception_class(), ExceptionClass::Cp15McrMrc);
            assert_eq!(hsr.iss(), iss);
            assert_eq!(
                hsr.decode(),
                Syndrome::RegisterAccess {
                    coprocessor: 15,
                    read,
                    opc1: opc1 as u8,
                    opc2: opc2 as u8,
                    crn: crn as u8,
                    crm: crm as u8,
                    rt: rt as u8,
                    cond: Some(0xe),
                }
            );
        }
        let sctlr_read = Hsr::from_parts(
            ExceptionClass::Cp15McrMrc,
            true,
            mcr_mrc_iss(true, 0, 0, 1, 0, 4),
        );
        assert_eq!(sctlr_read.0, 0x0fe0_0481);
        assert!(format!("{sctlr_read}").ends_with("; MRC p15, 0, r4, c1, c0, 0)"));
        // A conditional MCR (NE) shows its condition.
        let iss = (mcr_mrc_iss(false, 0, 0, 13, 0, 0) & !(0xf << 20)) | (1 << 20);
        let hsr = Hsr::from_parts(ExceptionClass::Cp15McrMrc, true, iss);
        assert!(format!("{hsr}").ends_with("; MCRNE p15, 0, r0, c13, c0, 0)"));
    }

    #[test]
    fn cp15_mcrr_mrrc() {
        // MRRC p15, 1, r2, r3, c14 (CNTPCT): CV, AL, Opc1 1, Rt2 3, Rt 2, CRm 14, read.
        let iss = (1 << 24) | (0xe << 20) | (1 << 16) | (3 << 10) | (2 << 5) | (14 << 1) | 1;
        let hsr = Hsr::from_parts(ExceptionClass::Cp15McrrMrrc, true, iss);
        assert_eq!(
            hsr.decode(),
            Syndrome::RegisterAccess64 {
                coprocessor: 15,
                read: true,
                opc1: 1,
                crm: 14,
                rt: 2,
                rt2: 3,
                cond: Some(0xe),
            }
        );
        assert!(format!("{hsr}").ends_with("; MRRC p15, 1, r2, r3, c14)"));
        // Opc1 is four bits wide here: MCRR p15, 15, sp, lr, c0.
        let iss = (15 << 16) | (14 << 10) | (13 << 5);
        let hsr = Hsr::from_parts(ExceptionClass::Cp15McrrMrrc, true, iss);
        assert_eq!(
            hsr.decode(),
            Syndrome::RegisterAccess64 {
                coprocessor: 15,
                read: false,
                opc1: 15,
                crm: 0,
                rt: 13,
                rt2: 14,
                cond: None,
            }
        );
        assert!(format!("{hsr}").ends_with("; MCRR p15, 15, sp, lr, c0)"));
    }

    #[test]
    fn cp14_accesses_decode_like_cp15() {
        // MRC p14, 0, r3, c0, c0, 0 (DBGDIDR), as HDCR.TDA traps it.
        let iss = mcr_mrc_iss(true, 0, 0, 0, 0, 3);
        let hsr = Hsr::from_parts(ExceptionClass::Cp14McrMrc, true, iss);
        assert_eq!(hsr.0 >> 26, 0x05);
        assert_eq!(
            hsr.decode(),
            Syndrome::RegisterAccess {
                coprocessor: 14,
                read: true,
                opc1: 0,
                opc2: 0,
                crn: 0,
                crm: 0,
                rt: 3,
                cond: Some(0xe),
            }
        );
        assert!(format!("{hsr}").ends_with("; MRC p14, 0, r3, c0, c0, 0)"));
        // MRRC p14, 0, r0, r1, c1 (DBGDRAR, 64 bits), as HDCR.TDRA traps it.
        let iss = (1 << 24) | (0xe << 20) | (1 << 10) | (1 << 1) | 1;
        let hsr = Hsr::from_parts(ExceptionClass::Cp14Mrrc, true, iss);
        assert_eq!(
            hsr.decode(),
            Syndrome::RegisterAccess64 {
                coprocessor: 14,
                read: true,
                opc1: 0,
                crm: 1,
                rt: 0,
                rt2: 1,
                cond: Some(0xe),
            }
        );
        assert!(format!("{hsr}").ends_with("; MRRC p14, 0, r0, r1, c1)"));
    }

    #[test]
    fn smc_and_svc() {
        let smc = Hsr(0x4e00_0000);
        assert_eq!(smc.exception_class(), ExceptionClass::Smc);
        assert_eq!(smc.decode(), Syndrome::Smc);
        assert_eq!(
            format!("{smc}"),
            "0x4e000000 (EC 0x13 SMC executed; 32-bit instruction)"
        );
        // SVC #0x123456 in A32 reports the low 16 bits of imm24.
        let svc = Hsr(0x4600_3456);
        assert_eq!(svc.decode(), Syndrome::Svc { imm16: 0x3456 });
        assert_eq!(
            format!("{svc}"),
            "0x46003456 (EC 0x11 SVC taken to Hyp mode; 32-bit instruction; SVC #0x3456)"
        );
    }

    #[test]
    fn other_classes_keep_their_iss() {
        let hsr = Hsr::from_parts(ExceptionClass::SimdFp, true, 0x01e0_000a);
        assert_eq!(
            hsr.decode(),
            Syndrome::Other {
                class: ExceptionClass::SimdFp,
                iss: 0x01e0_000a
            }
        );
        assert!(format!("{hsr}").ends_with("; ISS 0x1e0000a)"));
    }

    #[test]
    fn every_exception_class_round_trips() {
        for class in ExceptionClass::ALL {
            assert_eq!(ExceptionClass::from_ec(class.code()), class);
            let hsr = Hsr::from_parts(class, true, 0);
            assert_eq!(hsr.exception_class(), class);
            assert_eq!((hsr.0 >> 26) as u8, class.code());
        }
        // The codes are distinct.
        for (index, class) in ExceptionClass::ALL.iter().enumerate() {
            for other in &ExceptionClass::ALL[index + 1..] {
                assert_ne!(class.code(), other.code());
            }
        }
    }

    #[test]
    fn undefined_exception_classes_are_reserved() {
        for ec in 0..0x40u8 {
            let defined = ExceptionClass::ALL.iter().any(|class| class.code() == ec);
            let class = ExceptionClass::from_ec(ec);
            assert_eq!(
                matches!(class, ExceptionClass::Reserved(_)),
                !defined,
                "EC 0x{ec:02x}"
            );
        }
        let hsr = Hsr(0x0a00_0000); // EC 0x02
        assert_eq!(hsr.exception_class(), ExceptionClass::Reserved(0x02));
        assert_eq!(ExceptionClass::Reserved(0x02).code(), 0x02);
        assert_eq!(
            hsr.decode(),
            Syndrome::Other {
                class: ExceptionClass::Reserved(0x02),
                iss: 0
            }
        );
        assert!(format!("{hsr}").contains("EC 0x02 reserved exception class"));
    }

    #[test]
    fn ipa_from_hpfar() {
        // IPA 0x4000_1000 page, 0x234 into it; and a 40-bit IPA.
        assert_eq!(faulting_ipa(0x0040_0010, 0xc000_0234), 0x4000_1234);
        assert_eq!(faulting_ipa(0xffff_fff0, 0xffff_ffff), 0xff_ffff_ffff);
        assert_eq!(faulting_ipa(0x0000_000f, 0), 0);
    }
}
