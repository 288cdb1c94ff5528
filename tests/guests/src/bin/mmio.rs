// SPDX-License-Identifier: MIT OR Apache-2.0
//! Emulated MMIO on the virtual PL011: byte, halfword and word stores and
//! loads, zero- and sign-extending, into and out of shared and banked
//! registers, and an access with no syndrome (LDM) that the hypervisor
//! cannot emulate and reflects as a data abort.
#![no_std]
#![no_main]

use capvisor_test_guests::{expect_exception, print, println, vector, Checks};

capvisor_test_guests::guest!("mmio", main);

const UART: u32 = 0x0900_0000;
const FR: u32 = UART + 0x18;
const IBRD: u32 = UART + 0x24;
const CR: u32 = UART + 0x30;
const IFLS: u32 = UART + 0x34;
const IMSC: u32 = UART + 0x38;
const PCELLID1: u32 = UART + 0xff4;

macro_rules! load {
    ($instruction:literal, $address:expr) => {{
        let value: u32;
        // SAFETY: an emulated device register of this VM.
        unsafe { core::arch::asm!(concat!($instruction, " {v}, [{a}]"), v = out(reg) value, a = in(reg) $address, options(nostack)) };
        value
    }};
}

macro_rules! store {
    ($instruction:literal, $address:expr, $value:expr) => {{
        // SAFETY: an emulated device register of this VM.
        unsafe { core::arch::asm!(concat!($instruction, " {v}, [{a}]"), v = in(reg) $value, a = in(reg) $address, options(nostack)) };
    }};
}

fn main() -> u32 {
    let mut checks = Checks::new();
    // Stores of each size to DR: the test on the host looks for "BHW".
    print!("mmio: stores of each size: ");
    store!("strb", UART, 0x4142u32); // 'B'
    store!("strh", UART, 0x0048u32); // 'H'
    store!("str", UART, 0x0000_0057u32); // 'W'
    println!();

    // FR = TXFE | RXFE = 0x90: bit 7 set, so sign extension shows.
    checks.equal("FR by ldr", load!("ldr", FR), 0x90);
    checks.equal("FR by ldrh", load!("ldrh", FR), 0x90);
    checks.equal("FR by ldrb", load!("ldrb", FR), 0x90);
    checks.equal("FR by ldrsh", load!("ldrsh", FR), 0x90);
    checks.equal(
        "FR by ldrsb (sign-extended)",
        load!("ldrsb", FR),
        0xffff_ff90,
    );

    // IBRD (16 bits) written by halfword, read every way.
    store!("strh", IBRD, 0xfffeu32);
    checks.equal("IBRD by ldr after strh 0xfffe", load!("ldr", IBRD), 0xfffe);
    checks.equal("IBRD by ldrh", load!("ldrh", IBRD), 0xfffe);
    checks.equal(
        "IBRD by ldrsh (sign-extended)",
        load!("ldrsh", IBRD),
        0xffff_fffe,
    );
    store!("str", IBRD, 0x0001_2345u32);
    checks.equal(
        "IBRD keeps 16 bits of a word store",
        load!("ldr", IBRD),
        0x2345,
    );

    // CR: reset value, then CTSEn (bit 15) makes ldrsh negative.
    checks.equal("CR at reset", load!("ldr", CR), 0x0300);
    store!("str", CR, 0x8301u32);
    checks.equal("CR by ldrsh after 0x8301", load!("ldrsh", CR), 0xffff_8301);
    checks.equal("IFLS at reset", load!("ldr", IFLS), 0x12);
    store!("str", IMSC, 0xffff_ffffu32);
    checks.equal("IMSC keeps its 11 bits", load!("ldr", IMSC), 0x7ff);
    store!("str", IMSC, 0u32);

    // The identification registers.
    let ids = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
    for (index, want) in ids.into_iter().enumerate() {
        checks.equal(
            "PeriphID/PCellID",
            load!("ldr", UART + 0xfe0 + 4 * index as u32),
            want,
        );
    }
    checks.equal("PCellID1 by ldrb", load!("ldrb", PCELLID1), 0xf0);
    checks.equal(
        "PCellID1 by ldrsb (sign-extended)",
        load!("ldrsb", PCELLID1),
        0xffff_fff0,
    );
    checks.equal(
        "an unimplemented offset reads as zero",
        load!("ldr", UART + 0x100),
        0,
    );

    // Destination and source registers the syndrome names: r12 and the
    // banked LR of SVC mode.
    let (r12, lr): (u32, u32);
    // SAFETY: loads of FR into r12 and lr, then lr restored from the stack.
    unsafe {
        core::arch::asm!(
            "push {{lr}}",
            "ldr r12, [{fr}]",
            "ldr lr, [{fr}]",
            "mov {lr}, lr",
            "pop {{lr}}",
            fr = in(reg) FR,
            lr = out(reg) lr,
            out("r12") r12,
        )
    };
    checks.equal("FR loaded into r12", r12, 0x90);
    checks.equal("FR loaded into LR_svc", lr, 0x90);
    // SAFETY: stores of 0x1bad from r12 and from lr (saved and restored).
    unsafe {
        core::arch::asm!(
            "push {{lr}}",
            "ldr lr, =0x1bad",
            "str lr, [{ibrd}]",
            "pop {{lr}}",
            "b 1f",
            ".ltorg",
            "1:",
            ibrd = in(reg) IBRD,
        )
    };
    checks.equal("IBRD stored from LR_svc", load!("ldr", IBRD), 0x1bad);

    // LDM has no syndrome: the hypervisor cannot emulate it and reflects a
    // data abort at the access instead.
    let exception = expect_exception(|| {
        // SAFETY: the LDM aborts and is skipped by the handler.
        unsafe {
            core::arch::asm!("ldm {a}, {{r2, r3}}", a = in(reg) FR, out("r2") _, out("r3") _)
        };
    });
    match exception {
        Some(exception) => {
            checks.equal(
                "LDM from the UART: data abort",
                exception.vector,
                vector::DATA_ABORT,
            );
            checks.equal("LDM from the UART: DFAR", exception.dfar, FR);
        }
        None => checks.that("LDM from the UART aborts", false),
    }
    checks.finish("mmio")
}
