// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual PL031 real-time clock at 0x0901_0000 (SPI 2, GIC id 34):
//! its identification, a counter that advances with time (read twice
//! across a second and a half of the virtual counter), a clock the guest
//! sets for itself (RTCLR), and the match interrupt: RTCMR two seconds
//! ahead, unmasked, taken through the virtual GIC no earlier than the
//! match, cleared with RTCICR, and not raised again.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, read32, set_irq_handler, timer, wait_for_interrupt,
    write32, Checks,
};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("rtc", main);

const RTC: usize = 0x0901_0000;
const DR: usize = 0x000;
const MR: usize = 0x004;
const LR: usize = 0x008;
const CR: usize = 0x00c;
const IMSC: usize = 0x010;
const RIS: usize = 0x014;
const MIS: usize = 0x018;
const ICR: usize = 0x01c;
/// The RTC's interrupt: SPI 2.
const RTC_INTERRUPT: u32 = 34;
/// What the guest sets its clock to: 2001-09-09 01:46:40 UTC.
const SET_TO: u32 = 1_000_000_000;

/// RTC interrupts taken.
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// RTCDR when the interrupt was taken.
static TAKEN_AT: AtomicU32 = AtomicU32::new(0);
/// RTCMIS in the handler, before and after RTCICR (bits 0 and 1).
static STATUS: AtomicU32 = AtomicU32::new(0);
/// Other interrupts taken.
static OTHER: AtomicU32 = AtomicU32::new(0);
/// The guest's own time limit passed (its virtual timer fired).
static TIMED_OUT: AtomicU32 = AtomicU32::new(0);

fn rtc_read(offset: usize) -> u32 {
    // SAFETY: the virtual RTC's window, device emulation.
    unsafe { read32(RTC + offset) }
}

fn rtc_write(offset: usize, value: u32) {
    // SAFETY: as for `rtc_read`.
    unsafe { write32(RTC + offset, value) }
}

fn on_irq() {
    let iar = gic::acknowledge();
    let id = gic::interrupt_id(iar);
    if id == gic::SPURIOUS {
        return;
    }
    if id == RTC_INTERRUPT {
        TAKEN.fetch_add(1, Ordering::Relaxed);
        TAKEN_AT.store(rtc_read(DR), Ordering::Relaxed);
        let before = rtc_read(MIS) & 1;
        rtc_write(ICR, 1);
        let after = rtc_read(MIS) & 1;
        STATUS.store(before | after << 1, Ordering::Relaxed);
    } else if id == timer::INTERRUPT {
        timer::disarm();
        TIMED_OUT.store(1, Ordering::Relaxed);
    } else {
        OTHER.fetch_add(1, Ordering::Relaxed);
    }
    gic::end(iar);
}

/// Spins until the virtual counter has advanced by `ms` milliseconds.
fn delay_ms(ms: u64) {
    let until = timer::now() + u64::from(timer::frequency()) * ms / 1000;
    while timer::now() < until {}
}

fn main() -> u32 {
    let mut checks = Checks::new();
    // PeriphID0-3, PCellID0-3: a PL031 for the AMBA bus.
    let ids: [u32; 8] = core::array::from_fn(|n| rtc_read(0xfe0 + 4 * n) & 0xff);
    let want = [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
    checks.that("PrimeCell identification", ids == want);
    checks.equal("RTCCR: running", rtc_read(CR), 1);

    // The counter advances with time: a second and a half later it reads
    // one or two more.
    let first = rtc_read(DR);
    delay_ms(1500);
    let second = rtc_read(DR);
    println!("rtc: {} then {} 1.5 s later", first, second);
    checks.that(
        "the counter advanced by 1 or 2 in 1.5 s",
        (1..=2).contains(&second.wrapping_sub(first)),
    );

    // The guest sets its own clock.
    rtc_write(LR, SET_TO);
    let set = rtc_read(DR);
    checks.that("RTCDR reads what RTCLR set", set.wrapping_sub(SET_TO) <= 1);
    checks.equal("RTCLR reads back", rtc_read(LR), SET_TO);

    // The match: two seconds ahead, unmasked, taken as an interrupt.
    gic::init(&[RTC_INTERRUPT, timer::INTERRUPT]);
    set_irq_handler(on_irq);
    let match_at = rtc_read(DR) + 2;
    rtc_write(MR, match_at);
    rtc_write(IMSC, 1);
    checks.equal("no match yet", rtc_read(RIS), 0);
    // Wait for it, waking for the interrupt or the guest's own 5 s limit.
    let limit = timer::now() + u64::from(timer::frequency()) * 5;
    timer::arm_at(limit);
    while TAKEN.load(Ordering::Relaxed) == 0 && TIMED_OUT.load(Ordering::Relaxed) == 0 {
        wait_for_interrupt();
        enable_irqs();
        disable_irqs();
    }
    timer::disarm();
    let taken_at = TAKEN_AT.load(Ordering::Relaxed);
    println!(
        "rtc: match at {}, interrupt taken at {}",
        match_at, taken_at
    );
    checks.equal("one RTC interrupt", TAKEN.load(Ordering::Relaxed), 1);
    checks.that(
        "taken at the match, not before",
        taken_at == match_at || taken_at == match_at + 1,
    );
    checks.equal(
        "RTCMIS set in the handler, clear after RTCICR",
        STATUS.load(Ordering::Relaxed),
        0b01,
    );
    delay_ms(1200);
    checks.equal("the match raises it once", TAKEN.load(Ordering::Relaxed), 1);
    checks.equal("RTCRIS clear", rtc_read(RIS), 0);
    rtc_write(IMSC, 0);
    checks.equal(
        "no other interrupt, and not the time limit",
        OTHER.load(Ordering::Relaxed) | TIMED_OUT.load(Ordering::Relaxed) << 8,
        0,
    );
    checks.finish("rtc")
}
