//! Micro-benchmarks of the trap paths, run by a built-in guest.
//!
//! Compiled only with the `bench` feature; `make bench` runs it under QEMU
//! with `-icount shift=0`, where the cycle counter PMCCNTR advances by one
//! per instruction executed, in the guest and (with PMCCFILTR.NSH set) in
//! Hyp mode, so every figure is an exact, reproducible instruction count.
//! The guest runs under the core's exit loop (`hyp::kernel::Kernel`), so the
//! figures are those of the real trap path. It times each operation 100 times between two PMCCNTR reads and
//! reports the minimum and the total by hypercall; the hypervisor subtracts
//! the cost of the two reads themselves (the `baseline` row) and prints one
//! table row per operation:
//!
//! | id | operation |
//! |---|---|
//! | 1 | baseline: the two PMCCNTR reads around a NOP |
//! | 2 | null hypercall round trip (an unowned id: NOT_SUPPORTED) |
//! | 3 | emulated MMIO read of the virtual UART's FR |
//! | 4 | injected data abort round trip (guest handler returns at once) |

use crate::builtin_guest::start_builtin_guest;
use crate::log;
use capsules::fault_policies::StopFaultPolicy;
use capsules::psci::Psci;
use capsules::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::dispatch::{HypercallDriver, HypercallOutcome, MmioDevice};
use hyp::exit::ExitCode;
use hyp::kernel::{Kernel, RunOutcome, Vm, VmState};

/// The bench guest's result call: r1 id, r2 minimum, r3 total, r4 runs.
const BENCH_RESULT: u32 = 0x8600_0f10;
/// Operations measured (ids 1..=OPERATIONS).
const OPERATIONS: usize = 4;
const NAMES: [&str; OPERATIONS] = [
    "baseline (2 x PMCCNTR read)",
    "null hypercall round trip",
    "emulated MMIO read (virtual UART FR)",
    "injected data abort round trip",
];

core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm
    .section .guest_smoke, "ax"
    @ Runs at IPA 0x4000_0000, SVC mode, MMU off.
bench_entry:
    adr     r0, bench_vectors       @ VBAR := our vectors (for operation 4)
    mcr     p15, 0, r0, c12, c0, 0
    mrc     p15, 0, r0, c9, c12, 0  @ PMCR.E (enable) and C (reset cycles)
    orr     r0, r0, #5
    mcr     p15, 0, r0, c9, c12, 0
    mov     r0, #0x80000000         @ PMCNTENSET.C: count cycles
    mcr     p15, 0, r0, c9, c12, 1
    isb

    @ measure id, body: time `body` 100 times. r4/r5 = counter before and
    @ after, r9 = runs left, r10 = total, r11 = minimum; r6 = an address
    @ for the MMIO operations. Reports through BENCH_RESULT.
    .macro measure id, address, body:vararg
    mov     r9, #100
    mov     r10, #0
    mvn     r11, #0
    ldr     r6, =\address
10:
    ldr     r0, =0x86000fff         @ an id nobody owns (for the hypercall)
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
    mov     r1, #\id
    mov     r2, r11
    mov     r3, r10
    mov     r4, #100
    ldr     r0, =0x86000f10
    hvc     #0
    .endm

    measure 1, 0x09000018, nop
    measure 2, 0x09000018, hvc #0
    measure 3, 0x09000018, ldr r1, [r6]
    measure 4, 0x0a000000, ldr r1, [r6]
    ldr     r0, =0x84000008         @ PSCI SYSTEM_OFF
    hvc     #0
1:  b       1b

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

/// Collects the guest's results.
struct Results {
    rows: [Cell<Option<(u32, u32, u32)>>; OPERATIONS],
}

impl HypercallDriver for Results {
    fn owns(&self, function: u32) -> bool {
        function == BENCH_RESULT
    }

    fn call(&self, _function: u32, arguments: [u32; 7]) -> HypercallOutcome {
        let [id, minimum, total, runs, ..] = arguments;
        if let Some(row) = (id as usize).checked_sub(1).and_then(|i| self.rows.get(i)) {
            row.set(Some((minimum, total, runs)));
        }
        HypercallOutcome::value(0)
    }
}

/// Runs the benchmark guest and prints the table.
pub fn run() -> ! {
    crate::count_hyp_cycles();
    let vcpu = start_builtin_guest("bench");
    let psci = Psci::new();
    let results = Results {
        rows: Default::default(),
    };
    let console = crate::io::console();
    let uart = VirtualUart::new(&console);
    let services: [&dyn HypercallDriver; 2] = [&psci, &results];
    let devices: [&dyn MmioDevice; 1] = [&uart];
    let policy = StopFaultPolicy;
    let mut vms = [Vm::new("bench", vcpu, &devices, &services, &policy)];
    let outcome = Kernel.run(&mut vms, 10_000);
    let finished = outcome == RunOutcome::AllStopped && vms[0].state == VmState::Stopped;
    if !finished {
        log!(
            "bench: the guest did not finish: {:?}, {:?}",
            outcome,
            vms[0]
        );
    }
    let baseline = results.rows[0].get().map_or(0, |(minimum, _, _)| minimum);
    log!("bench: instructions per operation (QEMU -icount shift=0, PMCCNTR), baseline subtracted");
    log!("bench: | operation | min | mean | runs |");
    log!("bench: |---|---:|---:|---:|");
    let mut complete = finished;
    for (name, row) in NAMES.iter().zip(&results.rows) {
        match row.get() {
            Some((minimum, total, runs)) if runs > 0 => {
                let mean = total / runs;
                log!(
                    "bench: | {} | {} | {} | {} |",
                    name,
                    minimum.saturating_sub(baseline),
                    mean.saturating_sub(baseline),
                    runs
                );
            }
            _ => {
                log!("bench: | {} | missing | | |", name);
                complete = false;
            }
        }
    }
    log!("bench: {}", if complete { "done" } else { "INCOMPLETE" });
    crate::io::stop(if complete {
        ExitCode::Success
    } else {
        ExitCode::VmFailed
    })
}
