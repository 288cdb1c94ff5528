// SPDX-License-Identifier: MIT OR Apache-2.0
//! A VM with several vCPUs (2 to 4: every vCPU its GICD_TYPER names).
//! vCPU 0 boots, checks what PSCI and the GIC say of the VM, and starts the
//! others with PSCI CPU_ON; then, with each other vCPU in turn:
//!
//! 1. *start*: AFFINITY_INFO says it is off, CPU_ON of a vCPU past the last
//!    is INVALID_PARAMETERS, CPU_ON starts it (SUCCESS), a second CPU_ON
//!    says ALREADY_ON (or ON_PENDING), and AFFINITY_INFO turns to ON; the
//!    vCPU checks its MPIDR (0x8000_0000 | its number) and enables its own
//!    GIC CPU interface;
//! 2. *ping-pong*: 100 round trips of SGIs, vCPU 0 sending SGI 1 to the
//!    other (a target list naming it), which answers with SGI 2 to vCPU 0;
//!    each side checks the SGI's id and its source vCPU (GICC_IAR bits
//!    12:10) and counts. vCPU 0 reads the virtual counter just before each
//!    GICD_SGIR write and the other vCPU in its handler: the difference is
//!    the IPI latency, printed in ticks and in instructions (under QEMU's
//!    `-icount shift=0` a tick of the 62.5 MHz counter is 16 instructions);
//!
//! then, with every vCPU at once:
//!
//! 3. *timers*: each vCPU arms its own virtual timer for its own deadline
//!    and must take exactly one timer interrupt (id 27), its own (its timer
//!    has fired when it comes), and no other vCPU's;
//!
//! and again with each other vCPU in turn:
//!
//! 4. *off and on again*: the vCPU turns itself off (CPU_OFF); vCPU 0 polls
//!    AFFINITY_INFO until it says OFF, starts it again (CPU_ON: a second
//!    life that prints its MPIDR and turns off again), and waits for OFF.
//!
//! vCPU 0 reports every vCPU's checks through the usual exit path. One
//! `smp: ...` line per phase, for the tests; with two vCPUs:
//!
//! ```text
//! smp: vcpu 0 of 2, MPIDR 0x80000000
//! smp: vcpu 1 up, MPIDR 0x80000001
//! smp: vcpu 1 on
//! smp: ping-pong with vcpu 1: 100 pings, 100 pongs
//! smp: ipi latency min N max M ticks, min K instructions
//! smp: timer interrupts per vcpu: 1 1, strays: 0 0
//! smp: vcpu 1 turning off
//! smp: vcpu 1 off
//! smp: vcpu 1 second life, MPIDR 0x80000001
//! smp: vcpu 1 off again
//! smp: C checks, 0 failed
//! ```
//!
//! Between them each check prints an `ok ...` or `FAIL ...` line; the
//! summary counts 22 checks with 2 vCPUs, 35 with 3, 48 with 4. Besides
//! SGIs 1 and 2, vCPU 0 rings the others with SGI 3 (a command waits in
//! shared memory: arm the timer, turn off) and they wake it with SGI 4
//! (news: ready, timer taken, second life run), so that every wait is a
//! WFI: a vCPU that spins can keep the others from running at all under
//! `-icount`, where QEMU runs one CPU at a time.
//!
//! Every wait is bounded on the virtual counter, so a hypervisor that gets
//! something wrong makes failed checks, not a hung guest (except where
//! vCPU 0's own timer, the bound's alarm, is what it got wrong).
//!
//! Built as an ELF (`CAPVISOR_GUEST_ELF=1`) it also runs on bare QEMU
//! `virt` with `-smp 2` to 4 (QEMU's own PSCI, by HVC, and GIC), which is
//! how it was checked before the hypervisor had vCPUs; there QEMU's PSCI
//! sometimes answers the second CPU_ON with SUCCESS instead of ALREADY_ON
//! (its CPU_ON is asynchronous without -icount), failing that one check.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, psci, set_irq_handler, smp, timer, wait_for_interrupt,
    Checks,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

capvisor_test_guests::guest!("smp", main);

/// vCPU 0 to another: the ping.
const PING: u32 = 1;
/// The other vCPU to vCPU 0: the pong.
const PONG: u32 = 2;
/// vCPU 0 to another: a command waits for it in [`COMMAND`].
const DOORBELL: u32 = 3;
/// Another vCPU to vCPU 0: news in the shared state (it is ready, it
/// took its timer interrupt, its second life ran), to end vCPU 0's WFI.
const NEWS: u32 = 4;
/// Ping-pong round trips with each other vCPU.
const ROUND_TRIPS: u32 = 100;
/// The most vCPUs.
const MAX: usize = smp::MAX_VCPUS;

/// [`COMMAND`]s: nothing to do; arm the timer for [`DEADLINE`]; turn off.
const NOTHING: u32 = 0;
const ARM_TIMER: u32 = 1;
const TURN_OFF: u32 = 2;

/// Pings each vCPU took.
static PINGS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Pongs vCPU 0 took (from its current partner).
static PONGS: AtomicU32 = AtomicU32::new(0);
/// vCPU 0's current ping-pong partner.
static PARTNER: AtomicU32 = AtomicU32::new(0);
/// SGIs each vCPU took from a vCPU other than the one that sends them.
static WRONG_SOURCE: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Interrupts each vCPU took that nobody sent it.
static UNEXPECTED: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Each vCPU's own timer interrupts (its timer had fired).
static TIMER_HITS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Timer interrupts each vCPU took while its own timer had not fired.
static TIMER_STRAYS: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// The virtual counter just before vCPU 0's last ping.
static SENT_AT: AtomicU64 = AtomicU64::new(0);
/// The least and the most ticks from a ping's sending to its handler.
static LATENCY_MIN: AtomicU64 = AtomicU64::new(u64::MAX);
static LATENCY_MAX: AtomicU64 = AtomicU64::new(0);
/// Pings taken before they were sent, by the counters: the vCPUs'
/// virtual counters disagree.
static BACKWARDS: AtomicU32 = AtomicU32::new(0);
/// What vCPU 0 asks of each other vCPU (rung in with [`DOORBELL`]).
static COMMAND: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Each vCPU's timer deadline for [`ARM_TIMER`].
static DEADLINE: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
/// Set by each vCPU when its first life has its GIC and handler ready.
static READY: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// Set by each vCPU in its second life.
static SECOND_LIFE: [AtomicU32; MAX] = [const { AtomicU32::new(0) }; MAX];
/// The other vCPUs' checks, made and failed, added as they turn off.
static THEIR_CHECKS: AtomicU32 = AtomicU32::new(0);
static THEIR_FAILURES: AtomicU32 = AtomicU32::new(0);

/// `ms` milliseconds in virtual-counter ticks.
fn ticks(ms: u64) -> u64 {
    u64::from(timer::frequency()) * ms / 1000
}

/// Unmasks IRQs for a moment: any pending one is taken.
fn take_interrupts() {
    enable_irqs();
    disable_irqs();
}

/// A timer interrupt on vCPU `vcpu`: its own if its timer has fired
/// (disarmed, counted; returns true), a stray otherwise (counted).
fn on_timer(vcpu: usize) -> bool {
    if timer::fired() {
        timer::disarm();
        TIMER_HITS[vcpu].fetch_add(1, Ordering::Relaxed);
        true
    } else {
        TIMER_STRAYS[vcpu].fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// vCPU 0's interrupts: pongs, news from the others, and its own timer.
fn primary_irq() {
    let iar = gic::acknowledge();
    match gic::interrupt_id(iar) {
        gic::SPURIOUS => return,
        PONG => {
            if gic::source_cpu(iar) != PARTNER.load(Ordering::Relaxed) {
                WRONG_SOURCE[0].fetch_add(1, Ordering::Relaxed);
            }
            PONGS.fetch_add(1, Ordering::Release);
        }
        NEWS => {
            if gic::source_cpu(iar) == 0 {
                WRONG_SOURCE[0].fetch_add(1, Ordering::Relaxed);
            }
        }
        timer::INTERRUPT => {
            on_timer(0);
        }
        _ => {
            UNEXPECTED[0].fetch_add(1, Ordering::Relaxed);
        }
    }
    gic::end(iar);
}

/// The other vCPUs' interrupts: pings (answered with a pong once ended),
/// the doorbell (it only wakes the vCPU) and their timers (vCPU 0 hears of
/// each, by NEWS).
fn secondary_irq() {
    let vcpu = smp::current() as usize % MAX;
    let iar = gic::acknowledge();
    let id = gic::interrupt_id(iar);
    if id == gic::SPURIOUS {
        return;
    }
    if (id == PING || id == DOORBELL) && gic::source_cpu(iar) != 0 {
        WRONG_SOURCE[vcpu].fetch_add(1, Ordering::Relaxed);
    }
    match id {
        PING => {
            let now = timer::now();
            let sent = SENT_AT.load(Ordering::Acquire);
            match now.checked_sub(sent) {
                Some(latency) => {
                    LATENCY_MIN.fetch_min(latency, Ordering::Relaxed);
                    LATENCY_MAX.fetch_max(latency, Ordering::Relaxed);
                }
                None => {
                    BACKWARDS.fetch_add(1, Ordering::Relaxed);
                }
            }
            PINGS[vcpu].fetch_add(1, Ordering::Relaxed);
            gic::end(iar);
            gic::send_sgi(PONG, 1 << 0);
            return;
        }
        DOORBELL => {}
        timer::INTERRUPT => {
            if on_timer(vcpu) {
                gic::send_sgi(NEWS, 1 << 0);
            }
        }
        _ => {
            UNEXPECTED[vcpu].fetch_add(1, Ordering::Relaxed);
        }
    }
    gic::end(iar);
}

/// vCPU 0: waits until `done()` or until `timeout_ms` have passed,
/// sleeping (WFI) and taking interrupts in between. Its virtual timer is
/// armed at the timeout, so the wait ends even if nothing else comes.
/// Returns whether `done()` held.
fn wait_for(done: impl Fn() -> bool, timeout_ms: u64) -> bool {
    let deadline = timer::now() + ticks(timeout_ms);
    timer::arm_at(deadline);
    while !done() && timer::now() < deadline {
        wait_for_interrupt();
        take_interrupts();
    }
    timer::disarm();
    // A timer interrupt raised just before the disarm may still come.
    take_interrupts();
    done()
}

/// vCPU 0: sleeps `ms` milliseconds.
fn nap(ms: u64) {
    wait_for(|| false, ms);
}

/// vCPU 0: polls AFFINITY_INFO of `vcpu`, a millisecond apart, until it
/// answers `want` or 5 s have passed; returns the last answer.
fn wait_affinity(vcpu: u32, want: i32) -> i32 {
    let end = timer::now() + ticks(5000);
    loop {
        let answer = smp::affinity_info(vcpu);
        if answer == want || timer::now() >= end {
            return answer;
        }
        nap(1);
    }
}

/// vCPU 0: gives `vcpu` `command` and rings its doorbell.
fn tell(vcpu: u32, command: u32) {
    COMMAND[vcpu as usize].store(command, Ordering::Release);
    gic::send_sgi(DOORBELL, 1 << vcpu);
}

fn main() -> u32 {
    let mut checks = Checks::new();
    let vcpus = gic::cpu_count();
    println!("smp: vcpu 0 of {}, MPIDR {:#010x}", vcpus, smp::mpidr());
    checks.equal("vcpu 0 MPIDR", smp::mpidr(), 0x8000_0000);
    // The vCPUs PSCI knows: numbers from 0 until INVALID_PARAMETERS.
    let known = (0..8)
        .take_while(|&vcpu| smp::affinity_info(vcpu) != psci::INVALID_PARAMETERS)
        .count() as u32;
    checks.equal(
        "GICD_TYPER.CPUNumber + 1 = the vCPUs PSCI knows",
        vcpus,
        known,
    );
    checks.that("a VM with 2 vCPUs or more", vcpus >= 2);
    checks.equal(
        "AFFINITY_INFO(0) = ON",
        smp::affinity_info(0) as u32,
        psci::AFFINITY_ON as u32,
    );
    let vcpus = vcpus.clamp(1, MAX as u32);
    let others = 1..vcpus;
    for vcpu in others.clone() {
        checks.equal(
            "AFFINITY_INFO of a vCPU not yet started = OFF",
            smp::affinity_info(vcpu) as u32,
            psci::AFFINITY_OFF as u32,
        );
    }
    checks.equal(
        "CPU_ON of a vCPU the VM lacks = INVALID_PARAMETERS",
        smp::cpu_on(vcpus, smp::entry_address(), vcpus) as u32,
        psci::INVALID_PARAMETERS as u32,
    );

    gic::init(&[PONG, NEWS, timer::INTERRUPT]);
    set_irq_handler(primary_irq);

    // 1. Start each other vCPU.
    let mut up = [false; MAX];
    for vcpu in others.clone() {
        checks.equal(
            "CPU_ON = SUCCESS",
            smp::start(vcpu, secondary_main) as u32,
            psci::SUCCESS as u32,
        );
        // ON_PENDING while it is on its way, ALREADY_ON once it runs.
        let again = smp::start(vcpu, secondary_main);
        let want = if again == psci::ON_PENDING {
            psci::ON_PENDING
        } else {
            psci::ALREADY_ON
        };
        checks.equal(
            "CPU_ON again = ALREADY_ON (or ON_PENDING)",
            again as u32,
            want as u32,
        );
        checks.equal(
            "AFFINITY_INFO turns to ON",
            wait_affinity(vcpu, psci::AFFINITY_ON) as u32,
            psci::AFFINITY_ON as u32,
        );
        let ready = wait_for(|| READY[vcpu as usize].load(Ordering::Acquire) != 0, 5000);
        checks.that("the vCPU came up and enabled its GIC", ready);
        if ready {
            println!("smp: vcpu {} on", vcpu);
            up[vcpu as usize] = true;
        } else {
            println!("smp: vcpu {} did not come up", vcpu);
        }
    }
    let running = |vcpu: &u32| up[*vcpu as usize];

    // 2. Ping-pong with each.
    for vcpu in others.clone().filter(running) {
        PARTNER.store(vcpu, Ordering::Relaxed);
        PONGS.store(0, Ordering::Relaxed);
        for round in 1..=ROUND_TRIPS {
            SENT_AT.store(timer::now(), Ordering::Release);
            gic::send_sgi(PING, 1 << vcpu);
            if !wait_for(|| PONGS.load(Ordering::Acquire) >= round, 1000) {
                break;
            }
        }
        let pings = PINGS[vcpu as usize].load(Ordering::Relaxed);
        let pongs = PONGS.load(Ordering::Relaxed);
        println!(
            "smp: ping-pong with vcpu {}: {} pings, {} pongs",
            vcpu, pings, pongs
        );
        checks.equal("pings taken", pings, ROUND_TRIPS);
        checks.equal("pongs taken", pongs, ROUND_TRIPS);
    }
    let min = LATENCY_MIN.load(Ordering::Relaxed);
    let max = LATENCY_MAX.load(Ordering::Relaxed);
    if min <= max {
        println!(
            "smp: ipi latency min {} max {} ticks, min {} instructions",
            min,
            max,
            min * 1_000_000_000 / u64::from(timer::frequency())
        );
    }
    checks.equal(
        "no ping taken before it was sent (the vCPUs' counters agree)",
        BACKWARDS.load(Ordering::Relaxed),
        0,
    );

    // 3. Timers: every vCPU its own deadline, 10 ms apart, vCPU 0's last;
    // 50 ms ahead, so the others have heard of theirs in time.
    timer::disarm();
    take_interrupts();
    for counter in TIMER_HITS.iter().chain(&TIMER_STRAYS) {
        counter.store(0, Ordering::Relaxed);
    }
    let first = timer::now() + ticks(50);
    for vcpu in others.clone().filter(running) {
        let deadline = first + ticks(10) * u64::from(vcpu - 1);
        DEADLINE[vcpu as usize].store(deadline, Ordering::Relaxed);
        tell(vcpu, ARM_TIMER);
    }
    timer::arm_at(first + ticks(10) * u64::from(vcpus - 1));
    // vCPU 0 sleeps until its own timer's interrupt (each other vCPU wakes
    // it before, with NEWS, when it has taken its own). Its count
    // and its strays (a timer interrupt while its timer had not fired: one
    // of the others') are read then: from here on its timer is the alarm
    // of the waits.
    while TIMER_HITS[0].load(Ordering::Relaxed) == 0 {
        wait_for_interrupt();
        take_interrupts();
    }
    let own_hits = TIMER_HITS[0].load(Ordering::Relaxed);
    let own_strays = TIMER_STRAYS[0].load(Ordering::Relaxed);
    // Then until every other running vCPU has taken its own (2 s at most),
    // and 20 ms more for any that should not come.
    wait_for(
        || {
            others
                .clone()
                .filter(running)
                .all(|vcpu| TIMER_HITS[vcpu as usize].load(Ordering::Relaxed) > 0)
        },
        2000,
    );
    nap(20);
    let mut hits = [0u32; MAX];
    let mut strays = [0u32; MAX];
    hits[0] = own_hits;
    strays[0] = own_strays;
    for vcpu in 1..vcpus as usize {
        hits[vcpu] = TIMER_HITS[vcpu].load(Ordering::Relaxed);
        strays[vcpu] = TIMER_STRAYS[vcpu].load(Ordering::Relaxed);
    }
    let vcpus_used = vcpus as usize;
    println!(
        "smp: timer interrupts per vcpu: {}, strays: {}",
        List(&hits[..vcpus_used]),
        List(&strays[..vcpus_used])
    );
    checks.that(
        "every vCPU took its own timer interrupt once, and no other's",
        (0..vcpus_used).all(|vcpu| (vcpu == 0 || up[vcpu]) && hits[vcpu] == 1 && strays[vcpu] == 0),
    );

    // 4. Off, on again (a second life) and off again.
    for vcpu in others.clone().filter(running) {
        tell(vcpu, TURN_OFF);
        let off = wait_affinity(vcpu, psci::AFFINITY_OFF);
        checks.equal(
            "AFFINITY_INFO after CPU_OFF = OFF",
            off as u32,
            psci::AFFINITY_OFF as u32,
        );
        if off != psci::AFFINITY_OFF {
            continue;
        }
        println!("smp: vcpu {} off", vcpu);
        checks.equal(
            "CPU_ON after CPU_OFF = SUCCESS",
            smp::start(vcpu, second_life) as u32,
            psci::SUCCESS as u32,
        );
        let lived = wait_for(
            || SECOND_LIFE[vcpu as usize].load(Ordering::Acquire) != 0,
            5000,
        );
        checks.that("the second life ran", lived);
        let off = wait_affinity(vcpu, psci::AFFINITY_OFF);
        checks.equal(
            "AFFINITY_INFO after the second life = OFF",
            off as u32,
            psci::AFFINITY_OFF as u32,
        );
        if off == psci::AFFINITY_OFF {
            println!("smp: vcpu {} off again", vcpu);
        }
    }

    checks.equal(
        "SGIs from the right vCPU",
        WRONG_SOURCE
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum(),
        0,
    );
    checks.equal(
        "no unexpected interrupt",
        UNEXPECTED
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum(),
        0,
    );
    checks.add(
        THEIR_CHECKS.load(Ordering::Acquire),
        THEIR_FAILURES.load(Ordering::Acquire),
    );
    checks.finish("smp")
}

/// Numbers separated by spaces.
struct List<'a>(&'a [u32]);

impl core::fmt::Display for List<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (index, value) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", value)?;
        }
        Ok(())
    }
}

/// Adds `checks` to the ones vCPU 0 reports.
fn hand_over(checks: &Checks) {
    THEIR_FAILURES.fetch_add(checks.failures(), Ordering::Relaxed);
    THEIR_CHECKS.fetch_add(checks.count(), Ordering::Release);
}

/// The other vCPUs' first life: checks its MPIDR, enables its GIC CPU
/// interface, then serves interrupts (pings, its timer) and vCPU 0's
/// commands until told to turn off.
fn secondary_main(vcpu: u32) -> ! {
    let mut checks = Checks::new();
    println!("smp: vcpu {} up, MPIDR {:#010x}", vcpu, smp::mpidr());
    checks.equal(
        "this vCPU's MPIDR = 0x8000_0000 | its number",
        smp::mpidr(),
        0x8000_0000 | vcpu,
    );
    gic::init(&[PING, DOORBELL, timer::INTERRUPT]);
    set_irq_handler(secondary_irq);
    let slot = vcpu as usize % MAX;
    READY[slot].store(1, Ordering::Release);
    gic::send_sgi(NEWS, 1 << 0);
    loop {
        match COMMAND[slot].swap(NOTHING, Ordering::Acquire) {
            ARM_TIMER => timer::arm_at(DEADLINE[slot].load(Ordering::Relaxed)),
            TURN_OFF => break,
            _ => {}
        }
        // A doorbell rung since the swap is pending: WFI returns at once.
        wait_for_interrupt();
        take_interrupts();
    }
    timer::disarm();
    println!("smp: vcpu {} turning off", vcpu);
    hand_over(&checks);
    smp::cpu_off()
}

/// The other vCPUs' second life, after CPU_OFF and a new CPU_ON: checks
/// its MPIDR again and turns off.
fn second_life(vcpu: u32) -> ! {
    let mut checks = Checks::new();
    println!(
        "smp: vcpu {} second life, MPIDR {:#010x}",
        vcpu,
        smp::mpidr()
    );
    checks.equal(
        "this vCPU's MPIDR in its second life",
        smp::mpidr(),
        0x8000_0000 | vcpu,
    );
    hand_over(&checks);
    SECOND_LIFE[vcpu as usize % MAX].store(1, Ordering::Release);
    gic::send_sgi(NEWS, 1 << 0);
    smp::cpu_off()
}
