//! CPU-bound guests for the scheduler. A VM named `sleeper` waits for its
//! virtual timer once, at the end of the window, and reports how long it
//! slept; a VM named `victim` reports its least and most iterations per
//! 100 ms (progress while another VM misbehaves); any other VM counts loop
//! iterations for the window and reports the count, so the test can
//! compare the VMs' shares of the CPU.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, set_irq_handler, timer, vm_identity,
    wait_for_interrupt, Checks,
};
use core::sync::atomic::{AtomicBool, Ordering};

capvisor_test_guests::guest!("spinner", main);

/// The window, in milliseconds of the VM's virtual counter.
const WINDOW_MS: u64 = 1000;

static WOKEN: AtomicBool = AtomicBool::new(false);

fn on_irq() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == 27 {
        timer::disarm();
        WOKEN.store(true, Ordering::Relaxed);
    }
    if iar & 0x3ff != gic::SPURIOUS {
        gic::end(iar);
    }
}

fn main() -> u32 {
    let mut checks = Checks::new();
    let (_, name, length) = vm_identity();
    let name = core::str::from_utf8(&name[..length]).unwrap_or("?");
    let frequency = u64::from(timer::frequency());
    let start = timer::now();
    let end = start + frequency * WINDOW_MS / 1000;
    if name == "sleeper" {
        gic::init(&[27]);
        set_irq_handler(on_irq);
        timer::arm_at(end);
        // Wait with IRQs masked (WFI still wakes on a pending interrupt),
        // then take the interrupt: no wake-up is lost between the check
        // and the wait.
        let mut wakeups = 0u32;
        while !WOKEN.load(Ordering::Relaxed) {
            wait_for_interrupt();
            wakeups += 1;
            enable_irqs();
            disable_irqs();
        }
        let slept_ms = (timer::now() - start) * 1000 / frequency;
        println!("sleeper: slept {} ms, {} wakeups", slept_ms, wakeups);
        checks.that("slept the whole window", slept_ms >= WINDOW_MS);
        checks.equal("woken once, by the timer", wakeups, 1);
        return checks.finish("sleeper");
    }
    if name == "victim" {
        // Progress in every 100 ms of the window, while another VM
        // misbehaves: the least and the most iterations of one slice.
        let tenth = frequency / 10;
        let (mut least, mut most) = (u64::MAX, 0u64);
        for window in 0..WINDOW_MS / 100 {
            let window_end = start + tenth * (window + 1);
            let mut count = 0u64;
            while timer::now() < window_end {
                count += 1;
            }
            least = least.min(count);
            most = most.max(count);
        }
        println!(
            "victim: least {} and most {} iterations per 100 ms",
            least, most
        );
        checks.that("progress in every 100 ms", least > 0);
        return checks.finish(name);
    }
    let mut iterations: u64 = 0;
    while timer::now() < end {
        iterations += 1;
    }
    println!("{}: {} iterations in {} ms", name, iterations, WINDOW_MS);
    checks.that("made progress", iterations > 0);
    checks.finish(name)
}
