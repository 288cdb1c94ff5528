// SPDX-License-Identifier: MIT OR Apache-2.0
//! Two (or more) VMs running this image take turns (YIELD) and must never
//! see each other: each fills the same guest-physical buffer with its own
//! pattern and its own VFP/NEON registers, yields, and checks both after
//! every turn. Before that it checks that its RAM outside the image was
//! zero when it started.
#![no_std]
#![no_main]

use capvisor_test_guests::{println, vm_identity, Checks};

capvisor_test_guests::guest!("isolation", main);

/// The shared guest-physical buffer (the same IPA in every VM).
const BUFFER: usize = 0x4010_0000;
/// Its length in words (64 KiB).
const WORDS: usize = 0x4000;
/// The RAM checked for zero at boot: 1 MiB from BUFFER.
const ZEROED_WORDS: usize = 0x4_0000;
/// Turns taken.
const ROUNDS: u32 = 10;

fn pattern(id: u32, round: u32, index: usize) -> u32 {
    (id << 24) ^ (round << 16) ^ index as u32
}

fn buffer() -> *mut u32 {
    BUFFER as *mut u32
}

/// Word `index` of the buffer (`index` < ZEROED_WORDS).
fn read(index: usize) -> u32 {
    // SAFETY: BUFFER..+1 MiB is this VM's RAM (at least 2 MiB), unused by
    // the image, its .bss and its stacks.
    unsafe { buffer().add(index).read_volatile() }
}

/// Turns VFP on and loads d0 := (id, id), d31 := (id, !id).
fn load_fp(id: u32) {
    // SAFETY: CPACR grants cp10/cp11, FPEXC.EN turns VFP on; then two
    // register moves. Nothing else in the guest uses VFP.
    unsafe {
        core::arch::asm!(
            ".fpu neon",
            "mrc p15, 0, {t}, c1, c0, 2",
            "orr {t}, {t}, #0x00f00000",
            "mcr p15, 0, {t}, c1, c0, 2",
            "isb",
            "mov {t}, #0x40000000",
            "vmsr fpexc, {t}",
            "vmov d0, {id}, {id}",
            "vmov d31, {id}, {not}",
            t = out(reg) _,
            id = in(reg) id,
            not = in(reg) !id,
        )
    };
}

/// CPACR.
fn cpacr() -> u32 {
    let value: u32;
    // SAFETY: reading CPACR has no side effects.
    unsafe { core::arch::asm!("mrc p15, 0, {}, c1, c0, 2", out(reg) value) };
    value
}

/// Writes CPACR.
fn set_cpacr(value: u32) {
    // SAFETY: this VM's own coprocessor access control; after it, this
    // guest uses no VFP instruction.
    unsafe { core::arch::asm!("mcr p15, 0, {}, c1, c0, 2", "isb", in(reg) value) };
}

/// TEEHBR.
fn teehbr() -> u32 {
    let value: u32;
    // SAFETY: reading TEEHBR has no side effects.
    unsafe { core::arch::asm!("mrc p14, 6, {}, c1, c0, 0", out(reg) value) };
    value
}

/// Writes TEEHBR (this guest runs no ThumbEE code).
fn set_teehbr(value: u32) {
    // SAFETY: as above; only ThumbEE handlers use it.
    unsafe { core::arch::asm!("mcr p14, 6, {}, c1, c0, 0", "isb", in(reg) value) };
}

/// DBGBVR0 and DBGBVR1.
fn breakpoint_values() -> [u32; 2] {
    let (zero, one): (u32, u32);
    // SAFETY: reading breakpoint value registers has no side effects.
    unsafe {
        core::arch::asm!(
            "mrc p14, 0, {}, c0, c0, 4",
            "mrc p14, 0, {}, c0, c1, 4",
            out(reg) zero,
            out(reg) one
        )
    };
    [zero, one]
}

/// Writes DBGBVR0 and, if given, DBGBVR1 (their control registers stay
/// disabled: nothing fires).
fn set_breakpoint_values(zero: u32, one: Option<u32>) {
    // SAFETY: value registers of disabled breakpoints.
    unsafe {
        core::arch::asm!("mcr p14, 0, {}, c0, c0, 4", "isb", in(reg) zero);
        if let Some(one) = one {
            core::arch::asm!("mcr p14, 0, {}, c0, c1, 4", "isb", in(reg) one);
        }
    }
}

/// DBGBCR0.
fn breakpoint_control() -> u32 {
    let value: u32;
    // SAFETY: reading a breakpoint control register has no side effects.
    unsafe { core::arch::asm!("mrc p14, 0, {}, c0, c0, 5", out(reg) value) };
    value
}

/// Writes DBGBCR0 (callers keep bit 0, E, clear: nothing fires).
fn set_breakpoint_control(value: u32) {
    // SAFETY: the control register of a disabled breakpoint.
    unsafe { core::arch::asm!("mcr p14, 0, {}, c0, c0, 5", "isb", in(reg) value) };
}

/// DBGBCR.HMC (bit 13): the breakpoint would also match in Hyp mode.
const HYP_MATCH: u32 = 1 << 13;

/// Reads d0 and d31.
fn read_fp() -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: register moves only.
    unsafe {
        core::arch::asm!(
            ".fpu neon",
            "vmov {a}, {b}, d0",
            "vmov {c}, {d}, d31",
            a = out(reg) a, b = out(reg) b, c = out(reg) c, d = out(reg) d,
        )
    };
    [a, b, c, d]
}

fn main() -> u32 {
    let mut checks = Checks::new();
    let (id, name, length) = vm_identity();
    let name = core::str::from_utf8(&name[..length]).unwrap_or("?");
    let zero = (0..ZEROED_WORDS).all(|index| read(index) == 0);
    checks.that("RAM outside the image is zero at boot", zero);
    load_fp(id);
    let mut intact = true;
    for round in 0..ROUNDS {
        for index in 0..WORDS {
            // SAFETY: as above.
            unsafe {
                buffer()
                    .add(index)
                    .write_volatile(pattern(id, round, index))
            };
        }
        capvisor_test_guests::yield_now();
        let mine = (0..WORDS).all(|index| read(index) == pattern(id, round, index));
        let fp = read_fp() == [id, id, id, !id];
        if !(mine && fp) {
            println!("{}: round {}: memory {}, VFP {}", name, round, mine, fp);
            intact = false;
        }
    }
    checks.that("the buffer held this VM's pattern after every turn", intact);
    // CPACR is each VM's own: the second VM ('...-2') takes VFP away from
    // itself and the first must keep it (and its registers) over their
    // turns.
    let second = name.ends_with("-2");
    let expected = if second {
        set_cpacr(0);
        0
    } else {
        cpacr() & 0x00f0_0000
    };
    // And the ThumbEE handler base (CP14), a register any PL1 code may set.
    let handler_base = 0x4000_0000 | (id << 12);
    set_teehbr(handler_base);
    // And the debug registers: DBGBVR0 set by each VM to its own value,
    // DBGBVR1 by the first VM only (the second must read 0 there).
    let breakpoint = 0x4000_0000 | (id << 4);
    set_breakpoint_values(breakpoint, if second { None } else { Some(breakpoint + 8) });
    let (mut own, mut thumbee, mut debug) = (true, true, true);
    for _ in 0..3 {
        capvisor_test_guests::yield_now();
        own &= cpacr() & 0x00f0_0000 == expected;
        if !second {
            own &= read_fp() == [id, id, id, !id];
        }
        thumbee &= teehbr() == handler_base;
        let want = [breakpoint, if second { 0 } else { breakpoint + 8 }];
        debug &= breakpoint_values() == want;
    }
    checks.that(
        "CPACR (VFP access) stayed this VM's own over three turns",
        own,
    );
    checks.that("TEEHBR stayed this VM's own over three turns", thumbee);
    checks.that("DBGBVR0-1 stayed this VM's own over three turns", debug);
    // Every debug register access traps (HDCR.TDA) and is emulated: a
    // guest cannot make a breakpoint match in Hyp mode (HMC never sticks;
    // PMC, bits 2:1, does). Without the trap the CPU keeps HMC.
    let control = HYP_MATCH | (0b11 << 1);
    set_breakpoint_control(control);
    let kept = breakpoint_control();
    set_breakpoint_control(0);
    checks.that(
        "DBGBCR0 keeps PMC but not HMC (debug registers are trapped)",
        kept == control & !HYP_MATCH,
    );
    println!("{}: VM {} took {} turns", name, id, ROUNDS);
    checks.finish(name)
}
