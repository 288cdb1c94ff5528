// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fatal Hyp-mode exception report: saved frame, vector and its text.
//!
//! Capvisor never expects an exception in Hyp mode (design rule 1,
//! `docs/architecture.md`), so each
//! Hyp vector saves a [`HypExceptionFrame`] and ends in a [`HypFault`]
//! whose `Display` is the report the panic handler prints: which vector
//! fired, the decoded HSR, the fault address registers (marking which one
//! means something for this exception), ELR_hyp, the SPSR decoded by
//! [`Psr`], every saved core register, and a hint when a data abort looks
//! like a stack overflow. Everything here is plain data and formatting, so
//! the exact report text is tested on the host.
//!
//! ```
//! use armv7a::fault::{HypExceptionFrame, HypFault, HypVector};
//! use armv7a::hsr::Hsr;
//!
//! let fault = HypFault {
//!     vector: HypVector::from_u32(4),
//!     frame: HypExceptionFrame { spsr_hyp: 0x6000_01da, ..HypExceptionFrame::default() },
//!     hsr: Hsr(0x9600_0005),
//!     hdfar: 0x7000_0000,
//!     hifar: 0,
//!     hpfar: 0,
//! };
//! let report = format!("{fault}");
//! assert!(report.starts_with(
//!     "Hyp-mode exception: data abort taken in Hyp mode (vector 0x10)\n"
//! ));
//! assert!(report.contains("\n  HDFAR   0x70000000  faulting data address\n"));
//! ```
#![forbid(unsafe_code)]

use crate::hsr::{faulting_ipa, ExceptionClass, FaultStatus, Hsr, Syndrome};
use core::fmt;
use core::mem::{offset_of, size_of};

/// The registers the vector assembly saves, in the order it stores them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HypExceptionFrame {
    /// r0 to r12 as they were when the exception was taken.
    pub r: [u32; 13],
    /// SP_hyp at the time of the exception (before the switch to the fault
    /// stack).
    pub sp: u32,
    /// LR as it was: Hyp mode has no banked LR, so this is the interrupted
    /// code's own LR.
    pub lr: u32,
    /// ELR_hyp: the preferred return address of the exception.
    pub elr_hyp: u32,
    /// SPSR_hyp: the interrupted code's CPSR.
    pub spsr_hyp: u32,
}

// The assembly in `entry.rs` hard-codes this layout: 17 words, with sp at
// +52, lr at +56, ELR_hyp at +60 and SPSR_hyp at +64.
const _: () = {
    assert!(size_of::<HypExceptionFrame>() == 68);
    assert!(offset_of!(HypExceptionFrame, r) == 0);
    assert!(offset_of!(HypExceptionFrame, sp) == 52);
    assert!(offset_of!(HypExceptionFrame, lr) == 56);
    assert!(offset_of!(HypExceptionFrame, elr_hyp) == 60);
    assert!(offset_of!(HypExceptionFrame, spsr_hyp) == 64);
};

/// The entries of the Hyp vector table (HVBAR), numbered by offset / 4.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypVector {
    /// 0x00: not used by Hyp mode.
    Reset = 0,
    /// 0x04: undefined instruction executed in Hyp mode.
    Undefined = 1,
    /// 0x08: HVC or SVC executed in Hyp mode.
    HypervisorCall = 2,
    /// 0x0c: prefetch abort taken from Hyp mode.
    PrefetchAbort = 3,
    /// 0x10: data abort taken from Hyp mode.
    DataAbort = 4,
    /// 0x14: Hyp trap: any exception entering Hyp mode from a guest.
    HypTrap = 5,
    /// 0x18: IRQ.
    Irq = 6,
    /// 0x1c: FIQ.
    Fiq = 7,
}

impl HypVector {
    /// The vector for the number the assembly passes (0 to 7). Only the low
    /// three bits are used: this runs on the fatal path, where naming some
    /// vector beats failing.
    pub const fn from_u32(number: u32) -> Self {
        match number & 7 {
            0 => HypVector::Reset,
            1 => HypVector::Undefined,
            2 => HypVector::HypervisorCall,
            3 => HypVector::PrefetchAbort,
            4 => HypVector::DataAbort,
            5 => HypVector::HypTrap,
            6 => HypVector::Irq,
            _ => HypVector::Fiq,
        }
    }

    /// The entry's offset from HVBAR.
    pub const fn offset(self) -> u32 {
        self as u32 * 4
    }

    /// What taking this vector means for Capvisor.
    pub const fn description(self) -> &'static str {
        match self {
            HypVector::Reset => "reset vector",
            HypVector::Undefined => "undefined instruction in Hyp mode",
            HypVector::HypervisorCall => "hypervisor call/SVC taken in Hyp mode",
            HypVector::PrefetchAbort => "prefetch abort taken in Hyp mode",
            HypVector::DataAbort => "data abort taken in Hyp mode",
            HypVector::HypTrap => "unexpected trap from a guest",
            HypVector::Irq => "unexpected IRQ",
            HypVector::Fiq => "unexpected FIQ",
        }
    }

    /// Whether the hardware writes the HSR when it takes this vector. IRQ,
    /// FIQ and reset leave it holding an older syndrome.
    pub const fn writes_hsr(self) -> bool {
        !matches!(self, HypVector::Reset | HypVector::Irq | HypVector::Fiq)
    }
}

/// `data abort taken in Hyp mode (vector 0x10)`; `reset vector (0x00)`.
impl fmt::Display for HypVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypVector::Reset => write!(f, "{} (0x{:02x})", self.description(), self.offset()),
            _ => write!(f, "{} (vector 0x{:02x})", self.description(), self.offset()),
        }
    }
}

/// Everything known about a fatal Hyp-mode exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypFault {
    /// The vector that was taken.
    pub vector: HypVector,
    /// The interrupted context.
    pub frame: HypExceptionFrame,
    /// HSR, meaningful when [`HypVector::writes_hsr`].
    pub hsr: Hsr,
    /// HDFAR.
    pub hdfar: u32,
    /// HIFAR.
    pub hifar: u32,
    /// HPFAR.
    pub hpfar: u32,
}

/// A data abort within this many bytes below SP suggests a stack overflow
/// into the guard page.
const STACK_HINT_RANGE: u32 = 4096;

impl HypFault {
    /// The exception class, when the HSR describes this exception.
    fn exception_class(&self) -> Option<ExceptionClass> {
        if self.vector.writes_hsr() {
            Some(self.hsr.exception_class())
        } else {
            None
        }
    }

    /// HDFAR, when it holds the faulting address of a synchronous data
    /// abort (from Hyp mode or from a guest).
    pub fn faulting_data_address(&self) -> Option<u32> {
        match self.exception_class() {
            Some(ExceptionClass::DataAbortHyp | ExceptionClass::DataAbortGuest)
                if !self.abort_is_asynchronous() =>
            {
                Some(self.hdfar)
            }
            _ => None,
        }
    }

    /// HIFAR, when it holds the faulting address of a prefetch abort.
    pub fn faulting_instruction_address(&self) -> Option<u32> {
        match self.exception_class() {
            Some(ExceptionClass::PrefetchAbortHyp | ExceptionClass::PrefetchAbortGuest) => {
                Some(self.hifar)
            }
            _ => None,
        }
    }

    /// The faulting intermediate physical address, for the guest aborts
    /// for which HPFAR is written: stage-2 translation and access flag
    /// faults, and stage-2 faults on a stage-1 table walk. For the latter
    /// the address is that of the table walk's page (the page offset is
    /// not recorded), and the second value is true.
    pub fn faulting_ipa(&self) -> Option<(u64, bool)> {
        let (status, stage1_walk, far) = match self.hsr.decode() {
            Syndrome::DataAbort {
                from_hyp: false,
                iss,
            } => (iss.status, iss.stage1_walk, self.hdfar),
            Syndrome::PrefetchAbort {
                from_hyp: false,
                iss,
            } => (iss.status, iss.stage1_walk, self.hifar),
            _ => return None,
        };
        let hpfar_written = stage1_walk
            || matches!(
                status,
                FaultStatus::Translation { .. } | FaultStatus::AccessFlag { .. }
            );
        if self.exception_class().is_some() && hpfar_written {
            // The FAR holds the original access's VA, whose page offset has
            // nothing to do with the walk's descriptor address.
            let offset_source = if stage1_walk { 0 } else { far };
            Some((faulting_ipa(self.hpfar, offset_source), stage1_walk))
        } else {
            None
        }
    }

    fn abort_is_asynchronous(&self) -> bool {
        match self.hsr.decode() {
            Syndrome::DataAbort { iss, .. } => iss.status.is_asynchronous(),
            _ => false,
        }
    }

    /// What ELR_hyp points at for this vector.
    const fn return_address_meaning(&self) -> Option<&'static str> {
        match self.vector {
            HypVector::Undefined | HypVector::PrefetchAbort | HypVector::DataAbort => {
                Some("faulting instruction")
            }
            HypVector::HypervisorCall => Some("instruction after the HVC/SVC"),
            HypVector::HypTrap => Some("guest return address"),
            HypVector::Irq | HypVector::Fiq => Some("next instruction to run"),
            HypVector::Reset => None,
        }
    }

    /// Writes the stack-overflow hint line, when a Hyp data abort hit just
    /// below SP, or at or just above an SP that may itself have run past
    /// the end of the stack.
    fn write_stack_hint(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.vector != HypVector::DataAbort {
            return Ok(());
        }
        let Some(address) = self.faulting_data_address() else {
            return Ok(());
        };
        let sp = self.frame.sp;
        // No wrapping: an SP near 0 says nothing about addresses near 4 GiB.
        let below = sp.saturating_sub(address);
        let above = address.checked_sub(sp);
        if (1..=STACK_HINT_RANGE).contains(&below) {
            write!(
                f,
                "\n  stack overflow? the faulting address is just below the stack pointer \
                 (0x{below:x} bytes below sp)"
            )
        } else if let Some(above) = above.filter(|&above| above < STACK_HINT_RANGE) {
            write!(
                f,
                "\n  stack overflow? the faulting address is at or just above the stack \
                 pointer, which may itself be past the end of the stack (0x{above:x} bytes \
                 above sp)"
            )
        } else {
            Ok(())
        }
    }
}

/// The multi-line report, without a trailing newline.
impl fmt::Display for HypFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hyp-mode exception: {}", self.vector)?;

        if self.vector.writes_hsr() {
            write!(
                f,
                "\n  HSR     0x{:08x}  {}",
                self.hsr.0,
                self.hsr.summary()
            )?;
        } else {
            write!(
                f,
                "\n  HSR     0x{:08x}  (stale: not written for this exception)",
                self.hsr.0
            )?;
        }

        write!(f, "\n  HDFAR   0x{:08x}", self.hdfar)?;
        if self.faulting_data_address().is_some() {
            f.write_str("  faulting data address")?;
        }
        write!(f, "\n  HIFAR   0x{:08x}", self.hifar)?;
        if self.faulting_instruction_address().is_some() {
            f.write_str("  faulting instruction address")?;
        }
        write!(f, "\n  HPFAR   0x{:08x}", self.hpfar)?;
        match self.faulting_ipa() {
            Some((ipa, false)) => write!(f, "  (IPA 0x{ipa:08x})")?,
            Some((ipa, true)) => write!(f, "  (IPA page 0x{ipa:08x}, of a stage-1 table walk)")?,
            None => {}
        }

        write!(f, "\n  ELR_hyp 0x{:08x}", self.frame.elr_hyp)?;
        if let Some(meaning) = self.return_address_meaning() {
            write!(f, "  {meaning}")?;
        }
        let spsr = Psr(self.frame.spsr_hyp);
        write!(f, "\n  SPSR    0x{:08x}  {spsr}", spsr.0)?;

        let frame = &self.frame;
        for (row, values) in frame.r[..12].chunks(4).enumerate() {
            f.write_str("\n  ")?;
            for (column, value) in values.iter().enumerate() {
                if column > 0 {
                    f.write_str("  ")?;
                }
                let label = RegisterLabel::Numbered(row * 4 + column);
                write!(f, "{label} 0x{value:08x}")?;
            }
        }
        write!(
            f,
            "\n  {} 0x{:08x}  {} 0x{:08x}  {} 0x{:08x}",
            RegisterLabel::Numbered(12),
            frame.r[12],
            RegisterLabel::Named("sp"),
            frame.sp,
            RegisterLabel::Named("lr"),
            frame.lr
        )?;

        self.write_stack_hint(f)
    }
}

/// A register name padded to three columns: `r0 `, `r12`, `sp `.
enum RegisterLabel {
    Numbered(usize),
    Named(&'static str),
}

impl fmt::Display for RegisterLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterLabel::Numbered(number) if *number < 10 => write!(f, "r{number} "),
            RegisterLabel::Numbered(number) => write!(f, "r{number}"),
            RegisterLabel::Named(name) => write!(f, "{name:<3}"),
        }
    }
}

/// The processor modes, by their CPSR mode field (M, bits 4:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessorMode {
    /// usr, 0x10.
    User,
    /// fiq, 0x11.
    Fiq,
    /// irq, 0x12.
    Irq,
    /// svc, 0x13.
    Supervisor,
    /// mon, 0x16 (Security Extensions only).
    Monitor,
    /// abt, 0x17.
    Abort,
    /// hyp, 0x1a.
    Hyp,
    /// und, 0x1b.
    Undefined,
    /// sys, 0x1f.
    System,
}

impl ProcessorMode {
    /// The mode for a mode field value, if it names one.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        match bits & 0x1f {
            0x10 => Some(ProcessorMode::User),
            0x11 => Some(ProcessorMode::Fiq),
            0x12 => Some(ProcessorMode::Irq),
            0x13 => Some(ProcessorMode::Supervisor),
            0x16 => Some(ProcessorMode::Monitor),
            0x17 => Some(ProcessorMode::Abort),
            0x1a => Some(ProcessorMode::Hyp),
            0x1b => Some(ProcessorMode::Undefined),
            0x1f => Some(ProcessorMode::System),
            _ => None,
        }
    }

    /// The mode field value of this mode.
    pub const fn bits(self) -> u32 {
        match self {
            ProcessorMode::User => 0x10,
            ProcessorMode::Fiq => 0x11,
            ProcessorMode::Irq => 0x12,
            ProcessorMode::Supervisor => 0x13,
            ProcessorMode::Monitor => 0x16,
            ProcessorMode::Abort => 0x17,
            ProcessorMode::Hyp => 0x1a,
            ProcessorMode::Undefined => 0x1b,
            ProcessorMode::System => 0x1f,
        }
    }

    /// The name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            ProcessorMode::User => "User",
            ProcessorMode::Fiq => "FIQ",
            ProcessorMode::Irq => "IRQ",
            ProcessorMode::Supervisor => "SVC",
            ProcessorMode::Monitor => "Monitor",
            ProcessorMode::Abort => "Abort",
            ProcessorMode::Hyp => "Hyp",
            ProcessorMode::Undefined => "Undefined",
            ProcessorMode::System => "System",
        }
    }
}

/// A CPSR or SPSR value (the hypervisor's own, or a guest's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Psr(pub u32);

impl Psr {
    /// The mode, when the mode field names one.
    pub const fn mode(self) -> Option<ProcessorMode> {
        ProcessorMode::from_bits(self.0)
    }
    /// N, bit 31.
    pub const fn negative(self) -> bool {
        self.0 & (1 << 31) != 0
    }
    /// Z, bit 30.
    pub const fn zero(self) -> bool {
        self.0 & (1 << 30) != 0
    }
    /// C, bit 29.
    pub const fn carry(self) -> bool {
        self.0 & (1 << 29) != 0
    }
    /// V, bit 28.
    pub const fn overflow(self) -> bool {
        self.0 & (1 << 28) != 0
    }
    /// J, bit 24 (Jazelle or ThumbEE state, with T).
    pub const fn jazelle(self) -> bool {
        self.0 & (1 << 24) != 0
    }
    /// E, bit 9: big-endian data accesses.
    pub const fn big_endian(self) -> bool {
        self.0 & (1 << 9) != 0
    }
    /// A, bit 8: asynchronous aborts masked.
    pub const fn async_abort_masked(self) -> bool {
        self.0 & (1 << 8) != 0
    }
    /// I, bit 7: IRQs masked.
    pub const fn irq_masked(self) -> bool {
        self.0 & (1 << 7) != 0
    }
    /// F, bit 6: FIQs masked.
    pub const fn fiq_masked(self) -> bool {
        self.0 & (1 << 6) != 0
    }
    /// T, bit 5: Thumb (or, with J, ThumbEE) state.
    pub const fn thumb(self) -> bool {
        self.0 & (1 << 5) != 0
    }
}

/// `mode Hyp, flags nZCv, IRQ/FIQ/async abort masked, ARM state`.
impl fmt::Display for Psr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode() {
            Some(mode) => write!(f, "mode {}", mode.name())?,
            None => write!(f, "mode 0x{:02x} (reserved)", self.0 & 0x1f)?,
        }

        let flag = |set: bool, letter: char| {
            if set {
                letter.to_ascii_uppercase()
            } else {
                letter
            }
        };
        write!(
            f,
            ", flags {}{}{}{}",
            flag(self.negative(), 'n'),
            flag(self.zero(), 'z'),
            flag(self.carry(), 'c'),
            flag(self.overflow(), 'v')
        )?;

        let masks = [
            (self.irq_masked(), "IRQ"),
            (self.fiq_masked(), "FIQ"),
            (self.async_abort_masked(), "async abort"),
        ];
        let mut any = false;
        for (masked, name) in masks {
            if masked {
                f.write_str(if any { "/" } else { ", " })?;
                f.write_str(name)?;
                any = true;
            }
        }
        f.write_str(if any { " masked" } else { ", nothing masked" })?;

        let state = match (self.jazelle(), self.thumb()) {
            (false, false) => "ARM",
            (false, true) => "Thumb",
            (true, false) => "Jazelle",
            (true, true) => "ThumbEE",
        };
        write!(f, ", {state} state")?;
        if self.big_endian() {
            f.write_str(", big-endian")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    /// A frame whose registers are easy to recognise: rN = 0xN000000N.
    fn sample_frame() -> HypExceptionFrame {
        let mut r = [0u32; 13];
        for (index, value) in r.iter_mut().enumerate() {
            *value = 0x1000_0000 * (index as u32 % 16) + index as u32;
        }
        HypExceptionFrame {
            r,
            sp: 0x0002_8f40,
            lr: 0x0001_0abc,
            elr_hyp: 0x0001_0234,
            spsr_hyp: 0x6000_01da,
        }
    }

    /// The data abort of the `test-fault-unmapped` board test: a Hyp-mode
    /// load from 0x7000_0000, which the Hyp tables leave unmapped.
    fn sample_data_abort() -> HypFault {
        HypFault {
            vector: HypVector::DataAbort,
            frame: sample_frame(),
            hsr: Hsr(0x9600_0005),
            hdfar: 0x7000_0000,
            hifar: 0,
            hpfar: 0,
        }
    }

    fn report(fault: &HypFault) -> String {
        format!("{fault}")
    }

    fn line_starting<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines()
            .find(|line| line.trim_start().starts_with(start))
    }

    #[test]
    fn full_data_abort_report() {
        let text = report(&sample_data_abort());
        let lines: Vec<&str> = text.lines().collect();
        let expected = [
            "Hyp-mode exception: data abort taken in Hyp mode (vector 0x10)",
            "  HSR     0x96000005  EC 0x25 data abort taken from Hyp mode; 32-bit instruction; \
             read, no instruction syndrome; translation fault, level 1",
            "  HDFAR   0x70000000  faulting data address",
            "  HIFAR   0x00000000",
            "  HPFAR   0x00000000",
            "  ELR_hyp 0x00010234  faulting instruction",
            "  SPSR    0x600001da  mode Hyp, flags nZCv, IRQ/FIQ/async abort masked, ARM state",
            "  r0  0x00000000  r1  0x10000001  r2  0x20000002  r3  0x30000003",
            "  r4  0x40000004  r5  0x50000005  r6  0x60000006  r7  0x70000007",
            "  r8  0x80000008  r9  0x90000009  r10 0xa000000a  r11 0xb000000b",
            "  r12 0xc000000c  sp  0x00028f40  lr  0x00010abc",
        ];
        assert_eq!(lines, expected);
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn guest_data_abort_marks_the_ipa() {
        // A guest load trapped at the Hyp-trap vector: HPFAR holds the IPA.
        let fault = HypFault {
            vector: HypVector::HypTrap,
            hsr: Hsr(0x9381_0006),
            hdfar: 0xc000_0234,
            hpfar: 0x0040_0010,
            ..sample_data_abort()
        };
        let text = report(&fault);
        assert_eq!(
            line_starting(&text, "HPFAR"),
            Some("  HPFAR   0x00400010  (IPA 0x40001234)")
        );
        assert_eq!(
            line_starting(&text, "HDFAR"),
            Some("  HDFAR   0xc0000234  faulting data address")
        );
        assert!(
            text.starts_with("Hyp-mode exception: unexpected trap from a guest (vector 0x14)\n")
        );
        assert_eq!(
            line_starting(&text, "ELR_hyp"),
            Some("  ELR_hyp 0x00010234  guest return address")
        );
        // A stage-2 permission fault does not write HPFAR.
        let permission = HypFault {
            hsr: Hsr(0x9381_004f),
            ..fault
        };
        assert_eq!(permission.faulting_ipa(), None);
        // A stage-2 permission fault on a stage-1 table walk does: the
        // walk's page, without the data access's page offset.
        let walk = HypFault {
            hsr: Hsr(0x9200_00cf),
            ..fault
        };
        assert_eq!(walk.faulting_ipa(), Some((0x4000_1000, true)));
        assert_eq!(
            line_starting(&report(&walk), "HPFAR"),
            Some("  HPFAR   0x00400010  (IPA page 0x40001000, of a stage-1 table walk)")
        );
        assert_eq!(
            line_starting(&report(&permission), "HPFAR"),
            Some("  HPFAR   0x00400010")
        );
    }

    #[test]
    fn prefetch_abort_marks_hifar_not_hdfar() {
        let fault = HypFault {
            vector: HypVector::PrefetchAbort,
            hsr: Hsr(0x8600_0006),
            hdfar: 0x1234_5678,
            hifar: 0x0030_0000,
            ..sample_data_abort()
        };
        let text = report(&fault);
        assert!(text
            .starts_with("Hyp-mode exception: prefetch abort taken in Hyp mode (vector 0x0c)\n"));
        assert_eq!(line_starting(&text, "HDFAR"), Some("  HDFAR   0x12345678"));
        assert_eq!(
            line_starting(&text, "HIFAR"),
            Some("  HIFAR   0x00300000  faulting instruction address")
        );
        assert!(!text.contains("stack overflow?"));
    }

    #[test]
    fn vectors_are_named_with_their_offsets() {
        let expected = [
            "reset vector (0x00)",
            "undefined instruction in Hyp mode (vector 0x04)",
            "hypervisor call/SVC taken in Hyp mode (vector 0x08)",
            "prefetch abort taken in Hyp mode (vector 0x0c)",
            "data abort taken in Hyp mode (vector 0x10)",
            "unexpected trap from a guest (vector 0x14)",
            "unexpected IRQ (vector 0x18)",
            "unexpected FIQ (vector 0x1c)",
        ];
        for (number, name) in expected.iter().enumerate() {
            let vector = HypVector::from_u32(number as u32);
            assert_eq!(vector as u32, number as u32);
            assert_eq!(format!("{vector}"), *name);
            let fault = HypFault {
                vector,
                ..sample_data_abort()
            };
            assert_eq!(
                report(&fault).lines().next(),
                Some(format!("Hyp-mode exception: {name}").as_str())
            );
        }
        // Out-of-range numbers keep their low three bits.
        assert_eq!(HypVector::from_u32(12), HypVector::DataAbort);
    }

    #[test]
    fn interrupts_do_not_trust_the_hsr() {
        let fault = HypFault {
            vector: HypVector::Irq,
            ..sample_data_abort()
        };
        let text = report(&fault);
        assert_eq!(
            line_starting(&text, "HSR"),
            Some("  HSR     0x96000005  (stale: not written for this exception)")
        );
        // A stale data-abort syndrome does not make HDFAR meaningful.
        assert_eq!(line_starting(&text, "HDFAR"), Some("  HDFAR   0x70000000"));
        assert_eq!(fault.faulting_data_address(), None);
    }

    #[test]
    fn undefined_instruction_report() {
        let fault = HypFault {
            vector: HypVector::Undefined,
            hsr: Hsr(0x0200_0000),
            hdfar: 0,
            ..sample_data_abort()
        };
        let text = report(&fault);
        assert_eq!(
            line_starting(&text, "HSR"),
            Some(
                "  HSR     0x02000000  EC 0x00 unknown reason (undefined instruction); \
                 32-bit instruction"
            )
        );
        assert_eq!(line_starting(&text, "HDFAR"), Some("  HDFAR   0x00000000"));
        assert_eq!(
            line_starting(&text, "ELR_hyp"),
            Some("  ELR_hyp 0x00010234  faulting instruction")
        );
    }

    #[test]
    fn stack_overflow_hint_only_near_the_stack_pointer() {
        let hint = "stack overflow? the faulting address is just below the stack pointer";
        let with_hdfar = |hdfar: u32| HypFault {
            hdfar,
            ..sample_data_abort()
        };
        let sp = sample_frame().sp;

        // A push just below SP into the guard page.
        let text = report(&with_hdfar(sp - 4));
        assert_eq!(
            text.lines().last(),
            Some(
                "  stack overflow? the faulting address is just below the stack pointer \
                 (0x4 bytes below sp)"
            )
        );
        // The far end of the window still counts; one byte further does not.
        assert!(report(&with_hdfar(sp - 4096)).contains(hint));
        assert!(!report(&with_hdfar(sp - 4097)).contains("stack overflow?"));
        // An unrelated address gets no hint.
        assert!(!report(&with_hdfar(0x7000_0000)).contains("stack overflow?"));
        // SP itself in the guard page: the access at SP gets the other hint.
        let at_sp = report(&with_hdfar(sp));
        assert!(
            at_sp.contains("at or just above the stack pointer"),
            "{at_sp}"
        );
        assert!(!at_sp.contains(hint));
        // Not a data abort in Hyp mode: no hint even at SP - 4.
        let guest = HypFault {
            vector: HypVector::HypTrap,
            hsr: Hsr(0x9381_0006),
            ..with_hdfar(sp - 4)
        };
        assert!(!report(&guest).contains("stack overflow?"));
        // An asynchronous abort's HDFAR means nothing: no hint.
        let asynchronous = HypFault {
            hsr: Hsr(0x9600_0011),
            ..with_hdfar(sp - 4)
        };
        assert!(!report(&asynchronous).contains("stack overflow?"));
        // SP near zero must not wrap into a false hint for a high address.
        let low_sp = HypFault {
            frame: HypExceptionFrame {
                sp: 0x10,
                ..sample_frame()
            },
            ..with_hdfar(0xffff_fff0)
        };
        assert!(!report(&low_sp).contains("stack overflow?"));
    }

    #[test]
    fn psr_in_hyp_mode() {
        let psr = Psr(0x6000_01da);
        assert_eq!(psr.mode(), Some(ProcessorMode::Hyp));
        assert!(!psr.negative() && psr.zero() && psr.carry() && !psr.overflow());
        assert!(psr.irq_masked() && psr.fiq_masked() && psr.async_abort_masked());
        assert!(!psr.thumb());
        assert_eq!(
            format!("{psr}"),
            "mode Hyp, flags nZCv, IRQ/FIQ/async abort masked, ARM state"
        );
    }

    #[test]
    fn psr_in_svc_mode() {
        // The guest entry SPSR 0x1d3: SVC, A/I/F masked.
        assert_eq!(
            format!("{}", Psr(0x0000_01d3)),
            "mode SVC, flags nzcv, IRQ/FIQ/async abort masked, ARM state"
        );
        // A Thumb SVC-mode guest with only IRQs masked and N and V set.
        let psr = Psr(0x9000_00b3);
        assert_eq!(psr.mode(), Some(ProcessorMode::Supervisor));
        assert_eq!(
            format!("{psr}"),
            "mode SVC, flags NzcV, IRQ masked, Thumb state"
        );
        // Each flag letter follows its own bit.
        assert_eq!(
            format!("{}", Psr(0x4000_0053)),
            "mode SVC, flags nZcv, FIQ masked, ARM state"
        );
        assert_eq!(
            format!("{}", Psr(0x2000_0113)),
            "mode SVC, flags nzCv, async abort masked, ARM state"
        );
        assert_eq!(
            format!("{}", Psr(0x0000_0213)),
            "mode SVC, flags nzcv, nothing masked, ARM state, big-endian"
        );
    }

    #[test]
    fn every_mode_round_trips_and_reserved_modes_are_named() {
        for bits in 0..0x20u32 {
            if let Some(mode) = ProcessorMode::from_bits(bits) {
                assert_eq!(mode.bits(), bits);
            }
        }
        let names = [
            (0x10, "User"),
            (0x11, "FIQ"),
            (0x12, "IRQ"),
            (0x13, "SVC"),
            (0x16, "Monitor"),
            (0x17, "Abort"),
            (0x1a, "Hyp"),
            (0x1b, "Undefined"),
            (0x1f, "System"),
        ];
        for (bits, name) in names {
            assert_eq!(
                ProcessorMode::from_bits(bits).map(ProcessorMode::name),
                Some(name)
            );
        }
        assert_eq!(ProcessorMode::from_bits(0x15), None);
        assert!(format!("{}", Psr(0x15)).starts_with("mode 0x15 (reserved), "));
    }
}
