//! The trap-path micro-benchmarks (`make bench`).
//!
//! Run under QEMU with `-icount shift=0`, where the cycle counter PMCCNTR
//! advances by one per instruction executed, in the guest and (with
//! PMCCFILTR.NSH set by the hypervisor) in Hyp mode: every figure is an
//! exact, reproducible instruction count. Each operation is timed 100 times
//! between two PMCCNTR reads; the table gives the minimum and the mean less
//! the cost of the two reads (the baseline row).
//!
//! | operation | what is timed |
//! |---|---|
//! | null hypercall | `hvc` with an id nobody owns (NOT_SUPPORTED) |
//! | MMIO read | `ldr` of the virtual UART's FR |
//! | injected data abort | `ldr` from an IPA nobody claims; the guest's handler returns at once |
//! | VM switch | a YIELD hypercall in this VM until it runs again, while a second VM ('bench-peer', this same image) yields in a loop: two switches (each with a hypercall exit), less the peer's three loop instructions between its calls, halved |
//!
//! The VM named `bench-peer` only yields: 101 YIELD calls, then it powers
//! off.
#![no_std]
#![no_main]

use capvisor_test_guests::{println, vm_identity};

capvisor_test_guests::guest!("bench", main);

/// Timed runs per operation.
const RUNS: u32 = 100;
/// Operations, in the order the assembly measures them.
const OPERATIONS: [&str; 5] = [
    "baseline (2 x PMCCNTR read)",
    "null hypercall round trip",
    "emulated MMIO read (virtual UART FR)",
    "injected data abort round trip",
    "VM switch (YIELD to the other VM and back, halved)",
];

extern "C" {
    /// Runs every measurement; writes (minimum, total) per operation.
    fn bench_measure(results: *mut [[u32; 2]; 5]);
    /// The peer's loop: `count` YIELD calls.
    fn bench_peer(count: u32);
}

core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm
    .text
    .global bench_measure
bench_measure:
    push    {{r4-r11, lr}}
    mov     r8, r0                  @ r8 := results cursor
    mrc     p15, 0, r7, c12, c0, 0  @ r7 := the runtime's VBAR (restored below)
    adr     r0, bench_vectors       @ minimal vectors for the abort round trip
    mcr     p15, 0, r0, c12, c0, 0
    mrc     p15, 0, r0, c9, c12, 0  @ PMCR.E (enable) and C (reset cycles)
    orr     r0, r0, #5
    mcr     p15, 0, r0, c9, c12, 0
    mov     r0, #0x80000000         @ PMCNTENSET.C: count cycles
    mcr     p15, 0, r0, c9, c12, 1
    isb

    @ measure address, function, body: times `body` 100 times with r0 =
    @ `function` (for the hypercalls); r4/r5 = counter before/after, r9 =
    @ runs left, r10 = total, r11 = minimum, r6 = an address for the
    @ loads. Stores (minimum, total) at r8 and advances it.
    .macro measure address, function, body:vararg
    mov     r9, #100
    mov     r10, #0
    mvn     r11, #0
    ldr     r6, =\address
10:
    ldr     r0, =\function
    isb
    mrc     p15, 0, r4, c9, c13, 0
    \body
    mrc     p15, 0, r5, c9, c13, 0
    sub     r5, r5, r4
    add     r10, r10, r5
    cmp     r5, r11
    movlo   r11, r5
    subs    r9, r9, #1
    bne     10b
    stmia   r8!, {{r11}}
    stmia   r8!, {{r10}}
    .endm

    measure 0x09000018, 0x86000fff, nop
    measure 0x09000018, 0x86000fff, hvc #0  @ an id nobody owns
    measure 0x09000018, 0x86000fff, ldr r1, [r6]
    measure 0x0a000000, 0x86000fff, ldr r1, [r6]
    measure 0x09000018, 0x86000005, hvc #0  @ YIELD
    mcr     p15, 0, r7, c12, c0, 0  @ the runtime's vectors again
    isb
    pop     {{r4-r11, pc}}

    @ void bench_peer(u32 count): YIELD `count` times. Between two calls
    @ the peer runs three instructions (subs, bne, ldr).
    .global bench_peer
bench_peer:
    push    {{r4, lr}}
    mov     r4, r0
1:  ldr     r0, =0x86000005
    hvc     #0
    subs    r4, r4, #1
    bne     1b
    pop     {{r4, pc}}

    .balign 32
bench_vectors:
    b       .                       @ reset
    b       .                       @ undefined
    b       .                       @ SVC
    b       .                       @ prefetch abort
    subs    pc, lr, #4              @ data abort: resume after the load
    b       .
    b       .                       @ IRQ
    b       .                       @ FIQ
    .ltorg
"#
);

/// The peer: yields 101 times (once per measured switch, and one spare).
fn peer() -> u32 {
    // SAFETY: the assembly only makes hypercalls.
    unsafe { bench_peer(RUNS + 1) };
    0
}

fn main() -> u32 {
    let (_, name, length) = vm_identity();
    if &name[..length] == b"bench-peer" {
        return peer();
    }
    let mut results = [[0u32; 2]; 5];
    // SAFETY: the assembly writes only `results` and restores VBAR and
    // every callee-saved register.
    unsafe { bench_measure(&mut results) };
    let baseline = results[0][0];
    println!(
        "bench: instructions per operation (QEMU -icount shift=0, PMCCNTR), baseline subtracted"
    );
    println!("bench: | operation | min | mean | runs |");
    println!("bench: |---|---:|---:|---:|");
    for (index, (name, [minimum, total])) in OPERATIONS.iter().zip(results).enumerate() {
        let (mut minimum, mut mean) = (
            minimum.saturating_sub(baseline),
            (total / RUNS).saturating_sub(baseline),
        );
        if index == 0 {
            // The baseline row shows the raw cost of the two reads.
            (minimum, mean) = (baseline, total / RUNS);
        } else if index == 4 {
            // Two switches, less the peer's three instructions between
            // its calls.
            minimum = minimum.saturating_sub(3) / 2;
            mean = mean.saturating_sub(3) / 2;
        }
        println!("bench: | {} | {} | {} | {} |", name, minimum, mean, RUNS);
    }
    println!("bench: done");
    0
}
