// SPDX-License-Identifier: MIT OR Apache-2.0
//! Why a guest stopped running: an architecture-neutral decoding of an exit.
//!
//! The architecture chip turns its syndrome registers into a [`GuestExit`]
//! at the chip boundary; everything above it (dispatch to virtual devices
//! and hypercall services, the fault path, the scheduler) works on these
//! types only, and is tested on the host.
//!
//! ```
//! use hyp::trap::{AccessSize, GuestExit, Trap};
//! let exit = GuestExit {
//!     trap: Trap::MmioRead { ipa: 0x0900_0018, va: 0x0900_0018, size: AccessSize::Word, sign_extend: false, register: 1 },
//!     instruction_bytes: 4,
//! };
//! assert_eq!(exit.trap.mmio_ipa(), Some(0x0900_0018));
//! ```

/// The width of a load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Halfword,
    /// 4 bytes.
    Word,
    /// 8 bytes.
    Doubleword,
}

impl AccessSize {
    /// The access size for a byte count (1, 2, 4 or 8).
    pub const fn from_bytes(bytes: u8) -> Option<AccessSize> {
        match bytes {
            1 => Some(AccessSize::Byte),
            2 => Some(AccessSize::Halfword),
            4 => Some(AccessSize::Word),
            8 => Some(AccessSize::Doubleword),
            _ => None,
        }
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u32 {
        match self {
            AccessSize::Byte => 1,
            AccessSize::Halfword => 2,
            AccessSize::Word => 4,
            AccessSize::Doubleword => 8,
        }
    }
}

/// What kind of memory fault a guest took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No mapping at this translation level.
    Translation { level: u8 },
    /// A mapping whose access flag is clear.
    AccessFlag { level: u8 },
    /// A mapping that does not allow the access.
    Permission { level: u8 },
    /// An alignment fault.
    Alignment,
    /// An external abort (synchronous or not), parity error or TLB conflict.
    External,
    /// Anything else (debug events, implementation-defined aborts).
    Other,
}

/// A trapped coprocessor register access (`MRC`/`MCR`, `MRRC`/`MCRR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemRegisterAccess {
    /// Coprocessor number (14 or 15).
    pub coprocessor: u8,
    /// True for a read into the guest's register(s).
    pub read: bool,
    /// opc1.
    pub opc1: u8,
    /// CRn (0 for the 64-bit forms).
    pub crn: u8,
    /// CRm.
    pub crm: u8,
    /// opc2 (0 for the 64-bit forms).
    pub opc2: u8,
    /// The guest register transferred.
    pub register: u8,
    /// The second register of a 64-bit transfer.
    pub register2: Option<u8>,
}

/// Why the guest stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// `HVC #immediate`; the arguments are in the guest's r0-r7.
    Hypercall { immediate: u16 },
    /// `SMC` (trapped so that PSCI over SMC reaches the hypervisor).
    SecureMonitorCall,
    /// `WFI`; `condition` is the instruction's condition code when the CPU
    /// reported it (a conditional WFI may trap even when its condition fails).
    WaitForInterrupt { condition: Option<u8> },
    /// `WFE`.
    WaitForEvent { condition: Option<u8> },
    /// A load from an IPA with no stage-2 mapping, with a valid syndrome:
    /// emulate it, writing the value to `register`.
    MmioRead {
        ipa: u64,
        va: u32,
        size: AccessSize,
        sign_extend: bool,
        register: u8,
    },
    /// A store to an IPA with no stage-2 mapping, with a valid syndrome:
    /// emulate it with the value of `register`.
    MmioWrite {
        ipa: u64,
        va: u32,
        size: AccessSize,
        register: u8,
    },
    /// A data abort that cannot be emulated (no valid syndrome, a fault on
    /// the guest's own table walk, an external abort...): the fault path
    /// reflects it into the guest. `ipa` is known for stage-2 faults.
    DataAbort {
        va: u32,
        ipa: Option<u64>,
        write: bool,
        kind: FaultKind,
        stage1_walk: bool,
    },
    /// An instruction fetch from an IPA with no usable stage-2 mapping.
    PrefetchAbort {
        va: u32,
        ipa: Option<u64>,
        kind: FaultKind,
        stage1_walk: bool,
    },
    /// A trapped coprocessor register access.
    SystemRegister {
        access: SystemRegisterAccess,
        condition: Option<u8>,
    },
    /// A trapped floating-point or Advanced SIMD instruction (HCPTR).
    FloatingPoint,
    /// An instruction the hypervisor does not emulate: reflected as an
    /// undefined-instruction exception in the guest.
    Undefined { syndrome: u32 },
    /// A physical IRQ arrived while the guest ran.
    Irq,
    /// A physical FIQ arrived while the guest ran.
    Fiq,
}

impl Trap {
    /// The IPA of an emulatable MMIO access.
    pub const fn mmio_ipa(&self) -> Option<u64> {
        match self {
            Trap::MmioRead { ipa, .. } | Trap::MmioWrite { ipa, .. } => Some(*ipa),
            _ => None,
        }
    }
}

/// One guest exit: the trap and the length of the trapping instruction
/// (2 or 4 bytes; 0 when the CPU does not say and the guest's state does
/// not tell: a Thumb data abort without a syndrome), which emulation skips
/// over when it completes the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestExit {
    /// Why the guest stopped.
    pub trap: Trap,
    /// Length of the instruction that trapped, in bytes.
    pub instruction_bytes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_sizes_round_trip() {
        for bytes in [1u8, 2, 4, 8] {
            assert_eq!(AccessSize::from_bytes(bytes).unwrap().bytes(), bytes as u32);
        }
        assert_eq!(AccessSize::from_bytes(3), None);
    }

    #[test]
    fn only_mmio_has_an_mmio_ipa() {
        let write = Trap::MmioWrite {
            ipa: 0x800_0000,
            va: 0xc880_0000,
            size: AccessSize::Byte,
            register: 0,
        };
        assert_eq!(write.mmio_ipa(), Some(0x800_0000));
        assert_eq!(Trap::Irq.mmio_ipa(), None);
    }
}
