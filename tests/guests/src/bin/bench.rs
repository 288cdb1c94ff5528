// SPDX-License-Identifier: MIT OR Apache-2.0
//! The trap-path micro-benchmarks (`make bench`).
//!
//! Run under QEMU with `-icount shift=0`, where the cycle counter PMCCNTR
//! advances by one per instruction executed, in the guest and (with
//! PMCCFILTR.NSH set by the hypervisor) in Hyp mode: every figure is an
//! exact, reproducible instruction count. Each operation is timed 100 times
//! between two PMCCNTR reads; the table gives the minimum and the mean less
//! the cost of the two reads (the baseline row).
//!
//! PMCCNTR is each VM's own (the hypervisor switches the performance
//! monitors with the VM), so it stops while another VM runs. What spans
//! two VMs (the VM switch, the switch under preemption) is timed with the
//! physical counter CNTPCT instead, which all VMs read alike (each VM's
//! virtual counter has its own offset): under `-icount shift=0` one of
//! its ticks is 10^9 / CNTFRQ instructions (16 on both boards), so those
//! rows are exact to a tick per sample (their means to a tick over all
//! samples).
//!
//! | operation | what is timed |
//! |---|---|
//! | null hypercall | `hvc` with an id nobody owns (NOT_SUPPORTED) |
//! | MMIO read | `ldr` of the virtual UART's FR |
//! | injected data abort | `ldr` from an IPA nobody claims; the guest's handler returns at once |
//! | VM switch | a YIELD hypercall in this VM until it runs again, while a second VM ('bench-peer', this same image) yields in a loop: two switches (each with a hypercall exit), less the peer's three loop instructions between its calls, halved (physical counter) |
//!
//! | GIC acknowledge + EOI | GICC_IAR then GICC_EOIR for an SGI sent to itself |
//! | virtual interrupt delivery | from the guest's last instruction before the interrupt to the first of its IRQ vector, the interrupt being its virtual timer (raised from the hypervisor's alarm interrupt) |
//! | scheduling tick | the gap in this VM's run when its slice ends and no other VM is ready (physical counter) |
//! | VM switch under preemption | computed by `tools/bench-report.sh`: both VMs spin reading the physical counter (one for all VMs), and each gap in one's readings brackets the other's turn; the switch is the time from one VM's last reading to the other's first |
//! | 4 KiB and 512-byte virtio-blk write / read request | from the QueueNotify write to the used ring's index seen advanced (polled with IRQs masked, a WFI between polls), for a request whose chain (header, data, status byte) is already published; each at its own 4 KiB of the bench VM's disk (slot 0), the reads checked against what the writes wrote |
//!
//! The VM named `bench-peer` yields 101 times (YIELD), then spins for the
//! preemption measurement, prints its gaps and powers off.
//!
//! Built as an ELF (`CAPVISOR_GUEST_ELF=1`), the same guest also runs on
//! bare QEMU `virt` with no hypervisor (`make bench`'s native column): it
//! finds itself there by ID_PFR1 and measures only what exists without a
//! hypervisor (the baseline, the PL011's FR, the GIC's acknowledge and EOI,
//! the timer's interrupt delivery) and the virtio-blk requests against
//! QEMU's own `virtio-blk-device` (version 2: `-global
//! virtio-mmio.force-legacy=false`), in whichever transport QEMU put it
//! (the first `-device` gets the last, slot 31: the guest looks for it
//! and prints the slot). There a request's wait is a WFI until QEMU's
//! device (host code, which costs no guest instructions) raises its
//! interrupt; run with `-icount shift=0,sleep=off` so that the idle time
//! does not advance the virtual clock the cycle counter follows.
#![no_std]
#![no_main]

use capvisor_test_guests::virtio::{
    self, Disk, CONFIG, DEVICE_BLOCK, DEVICE_ID, MAGIC, MAGIC_VALUE, S_OK, T_IN, T_OUT, VERSION,
};
use capvisor_test_guests::{gic, println, timer, vm_identity, wait_for_interrupt, Checks};

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
    /// With `native` set (bare QEMU, no hypervisor), only those that
    /// exist there: the baseline and the MMIO read.
    fn bench_measure(results: *mut [[u32; 2]; 5], native: u32);
    /// Times GIC acknowledge + end of interrupt.
    fn bench_gic(results: *mut [u32; 2]);
    /// Times virtual interrupt delivery.
    fn bench_irq_latency(results: *mut [u32; 2]);
    /// Samples PMCCNTR until CNTVCT reaches `end`; records gaps.
    fn bench_sample(end: u64, gaps: *mut [u32; 16]) -> u32;
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
    mov     r12, r1                 @ r12 := native (no hypervisor)
    mrc     p15, 0, r7, c12, c0, 0  @ r7 := the runtime's VBAR (restored below)
    adr     r0, bench_vectors       @ minimal vectors for the abort round trip
    mcr     p15, 0, r0, c12, c0, 0
    mrc     p15, 0, r0, c9, c12, 0  @ PMCR.E (enable) and C (reset cycles)
    orr     r0, r0, #5
    mcr     p15, 0, r0, c9, c12, 0
    mov     r0, #0x80000000         @ PMCNTENSET.C: count cycles
    mcr     p15, 0, r0, c9, c12, 1
    isb

    @ Runs of a timed operation: r9 = runs left (100), r10 = total,
    @ r11 = minimum; `record` adds the sample in r5 and counts the run
    @ down (flags: Z when it was the last).
    .macro start_runs
    mov     r9, #100
    mov     r10, #0
    mvn     r11, #0
    .endm
    .macro record
    add     r10, r10, r5
    cmp     r5, r11
    movlo   r11, r5
    subs    r9, r9, #1
    .endm

    @ measure address, function, body: times `body` 100 times with r0 =
    @ `function` (for the hypercalls); r4/r5 = counter before/after, r9 =
    @ runs left, r10 = total, r11 = minimum, r6 = an address for the
    @ loads. Stores (minimum, total) at r8 and advances it.
    .macro measure address, function, body:vararg
    start_runs
    ldr     r6, =\address
10:
    ldr     r0, =\function
    isb
    mrc     p15, 0, r4, c9, c13, 0
    \body
    mrc     p15, 0, r5, c9, c13, 0
    sub     r5, r5, r4
    record
    bne     10b
    stmia   r8!, {{r11}}
    stmia   r8!, {{r10}}
    .endm

    measure 0x09000018, 0x86000fff, nop
    cmp     r12, #0                 @ natively: no hypercall, abort or switch
    bne     12f
    measure 0x09000018, 0x86000fff, hvc #0  @ an id nobody owns
    measure 0x09000018, 0x86000fff, ldr r1, [r6]
    measure 0x0b000000, 0x86000fff, ldr r1, [r6] @ nothing there: an abort
    @ The VM switch: timed by CNTPCT, the physical counter every VM
    @ reads alike (r4/r5 its low word, r12 the high word, unused; YIELD
    @ takes no arguments), in ticks.
    start_runs
11:
    ldr     r0, =0x86000005         @ YIELD
    isb
    mrrc    p15, 0, r4, r12, c14
    hvc     #0
    isb
    mrrc    p15, 0, r5, r12, c14
    sub     r5, r5, r4
    record
    bne     11b
    stmia   r8!, {{r11}}
    stmia   r8!, {{r10}}
    b       13f
12: add     r8, r8, #8              @ natively: the MMIO read into row 2
    measure 0x09000018, 0x86000fff, ldr r1, [r6]
13: mcr     p15, 0, r7, c12, c0, 0  @ the runtime's vectors again
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

    @ void bench_gic(u32 results[2]): 100 times: send SGI 1 to this CPU
    @ (GICD_SGIR, untimed), then time GICC_IAR + GICC_EOIR. Stores
    @ (minimum, total).
    .global bench_gic
bench_gic:
    push    {{r4-r11, lr}}
    mov     r8, r0
    ldr     r6, =0x08010000         @ r6 := GICC
    ldr     r7, =0x08000f00         @ r7 := GICD_SGIR
    ldr     r3, =0x02000001         @ filter 2 (this CPU), SGI 1
    start_runs
1:  str     r3, [r7]
    isb
    mrc     p15, 0, r4, c9, c13, 0
    ldr     r1, [r6, #0xc]          @ IAR
    str     r1, [r6, #0x10]         @ EOIR
    mrc     p15, 0, r5, c9, c13, 0
    sub     r5, r5, r4
    record
    bne     1b
    str     r11, [r8]               @ minimum
    str     r10, [r8, #4]           @ total
    pop     {{r4-r11, pc}}

    @ void bench_irq_latency(u32 results[2]): 100 times: arm the virtual
    @ timer 2000 ticks ahead, unmask IRQs and spin reading PMCCNTR into r4;
    @ the IRQ vector reads PMCCNTR first thing, so r5 - r4 is the time
    @ from the last instruction before the interrupt to the guest's IRQ
    @ vector: the physical alarm interrupt taken to Hyp, the hypervisor
    @ raising the timer's line in the virtual GIC and HCR.VI, and the
    @ guest's exception entry. Stores (minimum, total).
    .global bench_irq_latency
bench_irq_latency:
    push    {{r4-r11, lr}}
    mov     r8, r0
    mrc     p15, 0, r7, c12, c0, 0  @ r7 := VBAR (restored at the end)
    adr     r0, latency_vectors
    mcr     p15, 0, r0, c12, c0, 0
    start_runs
2:  mrrc    p15, 1, r0, r1, c14     @ CNTVCT
    adds    r0, r0, #2000
    adc     r1, r1, #0
    mcrr    p15, 3, r0, r1, c14     @ CNTV_CVAL := now + 2000
    mov     r0, #1
    mcr     p15, 0, r0, c14, c3, 1  @ CNTV_CTL := ENABLE
    isb
    cpsie   i
3:  mrc     p15, 0, r4, c9, c13, 0
    b       3b
latency_resume:                     @ from the IRQ vector, r5 = latency
    cpsid   i
    record
    bne     2b
    mcr     p15, 0, r7, c12, c0, 0
    isb
    str     r11, [r8]               @ minimum
    str     r10, [r8, #4]           @ total
    pop     {{r4-r11, pc}}

latency_irq:
    mrc     p15, 0, r5, c9, c13, 0
    sub     r5, r5, r4
    mov     r0, #0
    mcr     p15, 0, r0, c14, c3, 1  @ timer off: its line drops
    ldr     r0, =0x08010000
    ldr     r1, [r0, #0xc]          @ IAR
    str     r1, [r0, #0x10]         @ EOIR
    ldr     lr, =latency_resume
    movs    pc, lr                  @ back to SVC mode, at latency_resume

    @ u32 bench_sample(u64 end, u32 gaps[16]): spins until CNTPCT reaches
    @ `end` (r0:r1), reading CNTPCT back to back (one loop is 8
    @ instructions, half a tick); records up to 8 gaps longer than 4 ticks
    @ (64 instructions) as (before, after) pairs of its low word. Returns
    @ the number of gaps seen (which may exceed 8).
    .global bench_sample
bench_sample:
    push    {{r4-r11, lr}}
    mov     r8, r2                  @ r8 := gaps cursor
    add     r9, r2, #64             @ r9 := end of the gaps array
    mov     r10, #0                 @ r10 := gaps seen
    mrrc    p15, 0, r6, r3, c14     @ r6 := previous sample
4:  mrrc    p15, 0, r4, r3, c14     @ r4:r3 := CNTPCT
    sub     r5, r4, r6
    cmp     r5, #4
    bls     5f
    add     r10, r10, #1
    cmp     r8, r9
    stmlo   r8!, {{r6}}
    stmlo   r8!, {{r4}}
5:  mov     r6, r4
    cmp     r3, r1
    cmpeq   r4, r0
    blo     4b
    mov     r0, r10
    pop     {{r4-r11, pc}}

    .balign 32
latency_vectors:
    b       .                       @ reset
    b       .                       @ undefined
    b       .                       @ SVC
    b       .                       @ prefetch abort
    b       .                       @ data abort
    b       .
    b       latency_irq             @ IRQ
    b       .                       @ FIQ

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

/// The window both VMs spin in for the preemption measurement, and the
/// one the bench VM spins in alone for the scheduling tick (ms).
const PREEMPTION_MS: u64 = 60;
const TICK_MS: u64 = 45;
/// One iteration of `bench_sample`'s loop, in instructions.
const SAMPLE_LOOP: u32 = 8;
/// Gaps longer than this are another VM's turn, not a tick.
const TICK_LIMIT: u32 = 100_000;

/// CNTPCT: the physical counter, the same for every VM (each VM's
/// virtual counter has its own offset).
fn physical_now() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: reading CNTPCT has no side effects (CNTHCTL.PL1PCTEN).
    unsafe {
        core::arch::asm!("isb", "mrrc p15, 0, {}, {}, c14", out(reg) low, out(reg) high, options(nomem, nostack))
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// Instructions per counter tick under `-icount shift=0` (one
/// instruction per nanosecond).
fn instructions_per_tick() -> u32 {
    1_000_000_000 / timer::frequency()
}

/// Spins for `ms` of the virtual counter; returns the gaps it saw (how
/// many, and up to 8 (before, after) pairs), in instructions.
fn sample(ms: u64) -> (u32, [u32; 16]) {
    let end = physical_now() + u64::from(timer::frequency()) * ms / 1000;
    let mut gaps = [0u32; 16];
    // SAFETY: the assembly writes at most the 16 words of `gaps`.
    let count = unsafe { bench_sample(end, &mut gaps) };
    (
        count,
        gaps.map(|ticks| ticks.wrapping_mul(instructions_per_tick())),
    )
}

/// Prints the gaps as `bench: <who> gap <before> <after>` lines, for the
/// report to pair the two VMs' views (PMCCNTR is the CPU's, shared).
fn print_gaps(who: &str, (count, gaps): (u32, [u32; 16])) {
    for pair in gaps.chunks(2).take(count.min(8) as usize) {
        println!("bench: {} gap {} {}", who, pair[0], pair[1]);
    }
}

/// The peer: yields 101 times (once per measured switch, and one spare),
/// then spins beside the bench VM so that each preempts the other.
fn peer() -> u32 {
    // SAFETY: the assembly only makes hypercalls.
    unsafe { bench_peer(RUNS + 1) };
    print_gaps("peer", sample(PREEMPTION_MS));
    0
}

/// The disk benchmark's queue and buffers: 1.5 MiB into the VM's RAM,
/// past the image, its .bss and stacks.
const DISK_AREA: usize = 0x4018_0000;
/// The timed requests: (type, bytes), in the order of [`DISK_ROWS`]. The
/// 512-byte requests, beside the 4 KiB ones, split a request's cost into
/// its fixed part and its part per byte.
const DISK_REQUESTS: [(u32, u32); 4] = [(T_OUT, 4096), (T_IN, 4096), (T_OUT, 512), (T_IN, 512)];
/// Their rows.
const DISK_ROWS: [&str; 4] = [
    "4 KiB virtio-blk write request (notify to the used index seen)",
    "4 KiB virtio-blk read request (notify to the used index seen)",
    "512-byte virtio-blk write request (notify to the used index seen)",
    "512-byte virtio-blk read request (notify to the used index seen)",
];
/// The disk space each run's requests use: 4 KiB, in sectors.
const RUN_SECTORS: u64 = 8;

/// PMCCNTR, after the instructions before it have completed.
fn cycles() -> u32 {
    let value: u32;
    // SAFETY: reading the cycle counter has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrc p15, 0, {}, c9, c13, 0", out(reg) value, options(nomem, nostack))
    };
    value
}

/// Event counter 0 (PMXEVCNTR with PMSELR = 0), after the instructions
/// before it have completed.
fn events() -> u32 {
    let value: u32;
    // SAFETY: reading the selected event counter has no side effects;
    // PMSELR stays 0 from `count_instructions` on.
    unsafe {
        core::arch::asm!("isb", "mrc p15, 0, {}, c9, c13, 2", out(reg) value, options(nomem, nostack))
    };
    value
}

/// Makes event counter 0 count instructions executed (INST_RETIRED,
/// event 0x08); whether it counts them. QEMU counts that event under
/// `-icount` only (and a Cortex-A15 has no PMCEID0 to ask, so the
/// counter is tried).
fn count_instructions() -> bool {
    // SAFETY: PMSELR := 0, PMXEVTYPER := INST_RETIRED, PMCNTENSET := counter
    // 0 (PMCR.E is already set): the guest's own performance monitors.
    unsafe {
        core::arch::asm!(
            "mcr p15, 0, {zero}, c9, c12, 5",
            "mcr p15, 0, {event}, c9, c13, 1",
            "mcr p15, 0, {one}, c9, c12, 1",
            "isb",
            zero = in(reg) 0,
            event = in(reg) 0x08,
            one = in(reg) 1,
            options(nomem, nostack)
        )
    };
    let start = events();
    let end = events();
    end != start
}

/// What request `run` writes at byte `n` of its 4 KiB.
fn written(run: u32, n: usize) -> u8 {
    (n as u8).wrapping_mul(13) ^ (run as u8) ^ (n >> 8) as u8
}

/// Times one request already prepared in `disk`'s chain 0 by `counter`:
/// publishes it, then from the notify to the used index seen advanced
/// (with IRQs masked; a WFI between polls, which the device's interrupt
/// ends). Returns the count and whether the device completed it with
/// S_OK. Acknowledges the interrupt afterwards (untimed), in the device
/// and in the GIC.
fn timed_request(disk: &Disk, line: u32, counter: fn() -> u32) -> (u32, bool) {
    let before = disk.publish();
    let start = counter();
    disk.notify();
    while disk.used_index() == before {
        wait_for_interrupt();
    }
    let end = counter();
    disk.acknowledge();
    loop {
        let iar = gic::acknowledge();
        let id = gic::interrupt_id(iar);
        if id == gic::SPURIOUS {
            break;
        }
        gic::end(iar);
        if id != line {
            println!("bench: unexpected interrupt {} during the disk runs", id);
        }
    }
    (end.wrapping_sub(start), disk.status_byte() == S_OK)
}

/// The virtio-blk requests: 100 writes of 4 KiB, each at its own 4 KiB
/// of the disk, then 100 reads of the same, each compared with what was
/// written; then the same with 512 bytes. Returns (minimum, total) for
/// each of [`DISK_REQUESTS`], less the counter's own two reads; failures
/// are counted in `checks`.
///
/// Under Capvisor the counter is PMCCNTR, which counts the hypervisor's
/// instructions too. On bare QEMU under `-icount` it is the instruction
/// counter (INST_RETIRED): PMCCNTR follows QEMU's virtual clock, which
/// moves on while the CPU waits in WFI for QEMU's device (and went
/// backwards across such a wait with `sleep=off`), whereas the guest's
/// instructions are what a request costs it there. Without `-icount`
/// (the wall-clock runs) PMCCNTR, in nanoseconds, in both.
fn disk_requests(native: bool, checks: &mut Checks) -> Option<[[u32; 2]; 4]> {
    let slot = if native {
        virtio::find_native(DEVICE_BLOCK)
    } else {
        Some(0)
    };
    let Some(slot) = slot else {
        checks.that("a virtio-blk device on bare QEMU", false);
        return None;
    };
    let disk = Disk {
        window: virtio::slot(slot),
        area: DISK_AREA,
        queue: 8,
    };
    println!(
        "bench: disk in virtio-mmio slot {} ({:#x}, interrupt {})",
        slot,
        disk.window,
        virtio::interrupt(slot)
    );
    let present = disk.reg(MAGIC) == MAGIC_VALUE
        && disk.reg(VERSION) == 2
        && disk.reg(DEVICE_ID) == DEVICE_BLOCK;
    checks.that("a virtio-blk disk, transport version 2", present);
    if !present {
        return None;
    }
    let line = virtio::interrupt(slot);
    gic::init(&[line]);
    disk.bring_up(0, checks);
    let sectors = u64::from(disk.reg(CONFIG)) | (u64::from(disk.reg(CONFIG + 4)) << 32);
    checks.that(
        "the disk holds every request",
        sectors >= u64::from(RUNS) * RUN_SECTORS,
    );
    let counter: fn() -> u32 = if native && count_instructions() {
        println!("bench: disk requests counted by INST_RETIRED");
        events
    } else {
        cycles
    };
    let baseline = (0..RUNS)
        .map(|_| {
            let start = counter();
            counter().wrapping_sub(start)
        })
        .min()
        .unwrap_or(0);
    let mut results = [[0u32, 0u32]; 4];
    for ((kind, bytes), result) in DISK_REQUESTS.into_iter().zip(results.iter_mut()) {
        let (mut minimum, mut total, mut failed) = (u32::MAX, 0u32, 0u32);
        for run in 0..RUNS {
            for n in 0..bytes as usize {
                disk.set_data(n, if kind == T_OUT { written(run, n) } else { 0 });
            }
            disk.prepare(kind, u64::from(run) * RUN_SECTORS, bytes);
            let (count, ok) = timed_request(&disk, line, counter);
            let instructions = count.saturating_sub(baseline);
            let right =
                kind == T_OUT || (0..bytes as usize).all(|n| disk.data(n) == written(run, n));
            failed += u32::from(!ok || !right);
            minimum = minimum.min(instructions);
            total = total.wrapping_add(instructions);
        }
        checks.equal(
            if kind == T_OUT {
                "writes completed with S_OK"
            } else {
                "reads completed with S_OK and gave what was written"
            },
            failed,
            0,
        );
        *result = [minimum, total];
    }
    Some(results)
}

fn main() -> u32 {
    // On bare QEMU `virt` (make bench's native run) only what exists
    // without a hypervisor is measured: the PMCCNTR baseline, a read of
    // the real PL011's FR, the GIC's acknowledge and EOI, and the timer's
    // interrupt delivery.
    let native = capvisor_test_guests::bare_qemu();
    if !native {
        let (_, name, length) = vm_identity();
        if &name[..length] == b"bench-peer" {
            return peer();
        }
    }
    let mut results = [[0u32; 2]; 5];
    // SAFETY: the assembly writes only `results` and restores VBAR and
    // every callee-saved register.
    unsafe { bench_measure(&mut results, u32::from(native)) };
    if !native {
        // Both VMs spin: the gaps in each one's PMCCNTR readings are the
        // other's turns, bracketed by switches under preemption.
        print_gaps("main", sample(PREEMPTION_MS));
    }
    // GIC acknowledge + EOI of an SGI, and virtual timer delivery.
    let mut gic_result = [0u32; 2];
    let mut latency = [0u32; 2];
    gic::init(&[1, 27]);
    // SAFETY: both write only their results and restore what they change.
    unsafe {
        bench_gic(&mut gic_result);
        bench_irq_latency(&mut latency);
    }
    // Alone now (the peer's window has ended): each slice end is a
    // scheduling tick that gives this VM a fresh slice.
    let (count, gaps) = if native {
        (0, [0; 16])
    } else {
        sample(TICK_MS)
    };
    // The disk requests, last: they leave the disk's interrupt line
    // enabled in the GIC.
    let mut checks = Checks::new();
    let disk = disk_requests(native, &mut checks);
    let ticks: [u32; 8] = core::array::from_fn(|i| gaps[2 * i + 1].wrapping_sub(gaps[2 * i]));
    let ticks = &ticks[..count.min(8) as usize];
    let tick_costs = ticks
        .iter()
        .filter(|&&gap| gap < TICK_LIMIT)
        .map(|gap| gap - SAMPLE_LOOP);
    let (tick_min, tick_total, tick_count) = tick_costs
        .fold((u32::MAX, 0, 0), |(min, total, n), cost| {
            (min.min(cost), total + cost, n + 1)
        });
    let baseline = results[0][0];
    println!(
        "bench: instructions per operation (QEMU -icount shift=0, PMCCNTR), baseline subtracted"
    );
    println!("bench: | operation | min | mean | runs |");
    println!("bench: |---|---:|---:|---:|");
    for (index, (name, [minimum, total])) in OPERATIONS.iter().zip(results).enumerate() {
        if native && !matches!(index, 0 | 2) {
            continue;
        }
        let (mut minimum, mut mean) = (
            minimum.saturating_sub(baseline),
            (total / RUNS).saturating_sub(baseline),
        );
        if index == 0 {
            // The baseline row shows the raw cost of the two reads.
            (minimum, mean) = (baseline, total / RUNS);
        } else if index == 4 {
            // Timed in virtual-counter ticks, without the baseline: two
            // switches, less the peer's three instructions between its
            // calls.
            let per_tick = instructions_per_tick();
            minimum = (results[4][0] * per_tick).saturating_sub(3) / 2;
            mean = (results[4][1] * per_tick / RUNS).saturating_sub(3) / 2;
        }
        println!("bench: | {} | {} | {} | {} |", name, minimum, mean, RUNS);
    }
    for (name, [minimum, total]) in [
        ("GIC acknowledge + end of interrupt (IAR, EOIR)", gic_result),
        (
            "virtual interrupt delivery (alarm interrupt to the guest's IRQ vector)",
            latency,
        ),
    ] {
        let (minimum, mean) = (
            minimum.saturating_sub(baseline),
            (total / RUNS).saturating_sub(baseline),
        );
        println!("bench: | {} | {} | {} | {} |", name, minimum, mean, RUNS);
    }
    match disk {
        Some(requests) => {
            for (name, [minimum, total]) in DISK_ROWS.iter().zip(requests) {
                println!(
                    "bench: | {} | {} | {} | {} |",
                    name,
                    minimum,
                    total / RUNS,
                    RUNS
                );
            }
        }
        None => println!("bench: | 4 KiB virtio-blk requests | missing | | 0 |"),
    }
    if checks.failures() != 0 {
        println!("bench: {} disk checks failed", checks.failures());
    }
    if native {
        println!("bench: done (bare QEMU: no hypervisor rows)");
        return u32::from(checks.failures() != 0);
    }
    match tick_total.checked_div(tick_count) {
        Some(mean) => println!(
            "bench: | scheduling tick (slice ends, no other VM ready) | {} | {} | {} |",
            tick_min, mean, tick_count
        ),
        None => {
            println!("bench: | scheduling tick (slice ends, no other VM ready) | missing | | 0 |")
        }
    }
    println!("bench: done");
    // A missing row or a failed disk check fails the run (and `make
    // bench`).
    u32::from(tick_count == 0 || checks.failures() != 0)
}
