// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any syndrome and fault registers decode into a Trap without panicking,
//! and an MMIO trap's IPA is the one HPFAR and HDFAR give.
#![no_main]

use armv7a::exceptions::FaultRegisters;
use armv7a::guest_exit::{decode_guest_exit, ExitVector};
use hyp::trap::Trap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (u8, u32, u32, u32, u32, bool)| {
    let (vector, hsr, hdfar, hifar, hpfar, hpfar_translated) = data;
    let vector = match vector % 3 {
        0 => ExitVector::HypTrap,
        1 => ExitVector::Irq,
        _ => ExitVector::Fiq,
    };
    let exit = decode_guest_exit(
        vector,
        FaultRegisters {
            hsr,
            hdfar,
            hifar,
            hpfar,
            hpfar_translated,
        },
    );
    if let Trap::MmioRead { ipa, va, .. } | Trap::MmioWrite { ipa, va, .. } = exit.trap {
        assert_eq!(va, hdfar);
        assert_eq!(ipa, (((hpfar & !0xf) as u64) << 8) | (hdfar & 0xfff) as u64);
    }
    assert!(matches!(exit.instruction_bytes, 0 | 2 | 4));
});
