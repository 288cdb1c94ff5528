// SPDX-License-Identifier: MIT OR Apache-2.0
//! A virtual PL031 real-time clock: each VM's own calendar clock.
//!
//! Its window and interrupt are the guest platform's PL031 row
//! (`hyp::guest_platform::RTC`: 0x0901_0000, SPI 2, `arm,pl031`), where
//! QEMU's `virt` has one, so Linux's `rtc-pl031` driver finds it.
//!
//! Time: the counter counts seconds, the board's calendar time at the
//! hypervisor clock's zero ([`WallClock`]) plus the clock's count in
//! seconds, plus this VM's own offset. A guest that writes RTCLR sets its
//! own clock (the offset), never the host's nor another VM's. The offset
//! is the VM's battery-backed time: a restart of the VM (`reboot -f`, a
//! fault policy's restart) keeps it, as a real board's RTC keeps counting
//! across a reset, so `hwclock -w` then `reboot -f` finds the time the
//! guest set; it lives as long as the hypervisor runs (a new run of the
//! board starts again from the board's time).
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | RTCDR | read-only: the counter, in seconds |
//! | 0x004 | RTCMR | match value, stored |
//! | 0x008 | RTCLR | write: the counter takes this value; read: the last value written |
//! | 0x00c | RTCCR | reads 1: the clock always runs (writes ignored) |
//! | 0x010 | RTCIMSC | bit 0: the match interrupt is unmasked |
//! | 0x014 | RTCRIS | bit 0: the counter reached RTCMR |
//! | 0x018 | RTCMIS | RTCRIS & RTCIMSC |
//! | 0x01c | RTCICR | write-only: bit 0 clears the interrupt |
//! | 0xfe0-0xffc | PeriphID0-3, PCellID0-3 | 0x31 0x10 0x14 0x00, 0x0d 0xf0 0x05 0xb1 (also as bytes) |
//!
//! The match: RTCRIS sets when the counter *reaches* RTCMR (the second it
//! equals it begins), once per write of RTCMR or RTCLR (a real PL031
//! matches again after the counter wraps, 136 years on); a match value
//! the counter has already passed waits for that wrap, that is, never.
//! The interrupt line is RTCMIS: the device schedules it to rise at the
//! match ([`InterruptLine::raise_at`]), so the interrupt comes on time
//! while nothing polls the device, and lowers it when the guest clears or
//! masks it. Word accesses only (others are refused: the guest takes a
//! data abort); other offsets read as zero and ignore writes.

use crate::virtual_gic::InterruptLine;
use core::cell::Cell;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::{GuestDevice, RTC};
use hyp::hil::time::{Clock, WallClock};
use hyp::trap::AccessSize;

/// The RTC's row of the guest platform: its name, window and interrupt.
pub const ROW: GuestDevice = RTC;

const DR: u64 = 0x000;
const MR: u64 = 0x004;
const LR: u64 = 0x008;
const CR: u64 = 0x00c;
const IMSC: u64 = 0x010;
const RIS: u64 = 0x014;
const MIS: u64 = 0x018;
const ICR: u64 = 0x01c;
const ID_BASE: u64 = 0xfe0;
const ID_BYTES: [u32; 8] = [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// RTCIMSC/RIS/MIS/ICR: the match interrupt.
pub const INT_MATCH: u32 = 1 << 0;
/// RTCCR: the clock runs.
const CR_START: u32 = 1 << 0;

/// One VM's virtual PL031.
pub struct VirtualRtc<'a> {
    clock: &'a dyn Clock,
    wall: &'a dyn WallClock,
    line: InterruptLine<'a>,
    /// What this VM adds to the board's time, in seconds (mod 2^32).
    offset: Cell<u32>,
    match_value: Cell<u32>,
    loaded: Cell<u32>,
    mask: Cell<u32>,
    /// The match happened and was not cleared.
    matched: Cell<bool>,
    /// When (clock ticks) the counter reaches the match value, until it
    /// has (then `matched`).
    match_at: Cell<Option<u64>>,
}

impl core::fmt::Debug for VirtualRtc<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtualRtc")
            .field("offset", &self.offset.get())
            .field("match_at", &self.match_at.get())
            .finish()
    }
}

impl<'a> VirtualRtc<'a> {
    /// An RTC in its reset state counting the board's time (`wall`, and
    /// `clock` since), raising `line` (its VM's GIC, the row's interrupt).
    pub fn new(
        clock: &'a dyn Clock,
        wall: &'a dyn WallClock,
        line: InterruptLine<'a>,
    ) -> VirtualRtc<'a> {
        VirtualRtc {
            clock,
            wall,
            line,
            offset: Cell::new(0),
            match_value: Cell::new(0),
            loaded: Cell::new(0),
            mask: Cell::new(0),
            matched: Cell::new(false),
            match_at: Cell::new(None),
        }
    }

    /// The clock's whole seconds at `now` (ticks), and the tick that
    /// second began.
    fn seconds(&self, now: u64) -> (u64, u64) {
        let frequency = u64::from(self.clock.frequency().max(1));
        let seconds = now / frequency;
        (seconds, seconds * frequency)
    }

    /// The counter at `now`.
    fn counter_at(&self, now: u64) -> u32 {
        let (seconds, _) = self.seconds(now);
        (self.wall.seconds_at_zero().wrapping_add(seconds) as u32).wrapping_add(self.offset.get())
    }

    /// When the counter next reaches the match value, from `now`: the
    /// tick its second begins (now, if it is that second).
    fn next_match(&self, now: u64) -> u64 {
        let ahead = self.match_value.get().wrapping_sub(self.counter_at(now));
        if ahead == 0 {
            return now;
        }
        let frequency = u64::from(self.clock.frequency().max(1));
        let (_, second_start) = self.seconds(now);
        second_start.saturating_add(u64::from(ahead).saturating_mul(frequency))
    }

    /// Whether the match happened by `now` (latched once seen).
    fn raw(&self, now: u64) -> bool {
        if let Some(at) = self.match_at.get() {
            if now >= at {
                self.match_at.set(None);
                self.matched.set(true);
            }
        }
        self.matched.get()
    }

    /// Drives the line from RTCMIS, and schedules it for the match while
    /// that is ahead and unmasked.
    fn update_line(&self, now: u64) {
        let unmasked = self.mask.get() & INT_MATCH != 0;
        self.line.set(unmasked && self.raw(now));
        self.line.raise_at(self.match_at.get().filter(|_| unmasked));
    }

    fn register(&self, offset: u64, now: u64) -> u32 {
        match offset {
            DR => self.counter_at(now),
            MR => self.match_value.get(),
            LR => self.loaded.get(),
            CR => CR_START,
            IMSC => self.mask.get(),
            RIS => u32::from(self.raw(now)),
            MIS => u32::from(self.raw(now)) & self.mask.get(),
            ID_BASE..=0xffc => ID_BYTES[((offset - ID_BASE) / 4) as usize],
            _ => 0,
        }
    }

    fn set_register(&self, offset: u64, value: u32, now: u64) {
        match offset {
            MR => {
                self.match_value.set(value);
                self.match_at.set(Some(self.next_match(now)));
            }
            LR => {
                self.loaded.set(value);
                // The counter reads `value` from now: this VM's offset.
                let board = self.counter_at(now).wrapping_sub(self.offset.get());
                self.offset.set(value.wrapping_sub(board));
                self.match_at.set(Some(self.next_match(now)));
            }
            IMSC => self.mask.set(value & INT_MATCH),
            ICR if value & INT_MATCH != 0 => {
                self.raw(now);
                self.matched.set(false);
            }
            // DR, CR, RIS, MIS and the ID registers: read-only or fixed.
            _ => {}
        }
    }
}

impl MmioDevice for VirtualRtc<'_> {
    fn name(&self) -> &'static str {
        ROW.name
    }

    fn base(&self) -> u64 {
        u64::from(ROW.base)
    }

    fn size(&self) -> u64 {
        u64::from(ROW.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        let now = self.clock.now();
        // The identification registers also answer byte loads (EDK2's
        // PL031 driver reads them with `MmioRead8`, as QEMU allows).
        if size == AccessSize::Byte && offset >= ID_BASE {
            let word = self.register(offset & !3, now);
            return Ok((word >> (8 * (offset & 3))) & 0xff);
        }
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Err(MmioError::BadSize);
        }
        let value = self.register(offset, now);
        if offset == RIS || offset == MIS {
            // The match may have been seen only now.
            self.update_line(now);
        }
        Ok(value)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Err(MmioError::BadSize);
        }
        let now = self.clock.now();
        self.set_register(offset, value, now);
        self.update_line(now);
        Ok(())
    }

    /// The line moves only on writes (a match, a mask, a clear) and on
    /// the status reads that can notice a match; the counter's reads do
    /// not.
    fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
        write || offset == RIS || offset == MIS
    }

    /// A VM restart: the clock keeps the time the guest set (its offset,
    /// and RTCLR reads back the last value written), as a battery-backed
    /// RTC keeps counting through a reset; the rest is back to the state
    /// `new` gives: no match value, masked, no match pending, the line
    /// low.
    fn reset(&self) -> Result<(), NotResettable> {
        self.match_value.set(0);
        self.mask.set(0);
        self.matched.set(false);
        self.match_at.set(None);
        self.line.lower();
        self.line.raise_at(None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::FakeClock;
    use crate::virtual_gic::VirtualGic;

    /// A board whose calendar time at the clock's zero is 2026-01-01.
    struct Wall;
    impl WallClock for Wall {
        fn seconds_at_zero(&self) -> u64 {
            1_767_225_600
        }
    }

    const HZ: u64 = 1000;

    fn read(rtc: &VirtualRtc, offset: u64) -> u32 {
        rtc.read(offset, AccessSize::Word).unwrap()
    }

    fn write(rtc: &VirtualRtc, offset: u64, value: u32) {
        rtc.write(offset, AccessSize::Word, value).unwrap();
    }

    fn id() -> u32 {
        ROW.interrupt.unwrap()
    }

    #[test]
    fn counts_the_boards_seconds_and_each_vm_sets_its_own() {
        let clock = FakeClock::with_frequency(HZ as u32);
        let gic = VirtualGic::new();
        let (one, two) = (
            VirtualRtc::new(&clock, &Wall, gic.line(id())),
            VirtualRtc::new(&clock, &Wall, gic.line(id())),
        );
        assert_eq!(read(&one, DR), 1_767_225_600);
        clock.advance(2500);
        assert_eq!(read(&one, DR), 1_767_225_602, "whole seconds");
        write(&one, LR, 1000);
        assert_eq!((read(&one, DR), read(&one, LR)), (1000, 1000));
        assert_eq!(read(&two, DR), 1_767_225_602, "the other VM's clock");
        clock.advance(1000);
        assert_eq!(read(&one, DR), 1001);
        assert_eq!(read(&two, DR), 1_767_225_603);
        assert_eq!(read(&two, DR), 1_767_225_603);
        let unset = VirtualRtc::new(&clock, &hyp::hil::time::UnsetWallClock, gic.line(id()));
        assert_eq!(read(&unset, DR), 3, "an unset board clock counts from 1970");
    }

    #[test]
    fn a_restart_keeps_the_time_the_guest_set() {
        let clock = FakeClock::with_frequency(HZ as u32);
        let gic = VirtualGic::new();
        let (one, two) = (
            VirtualRtc::new(&clock, &Wall, gic.line(id())),
            VirtualRtc::new(&clock, &Wall, gic.line(id())),
        );
        clock.advance(1000);
        // The guest sets its clock a day back (`date -s`, `hwclock -w`).
        write(&one, LR, 1_767_225_601 - 86_400);
        write(&one, MR, 1_767_225_601 - 86_400 + 10);
        write(&one, IMSC, INT_MATCH);
        clock.advance(2000);
        one.reset().unwrap();
        assert_eq!(
            read(&one, DR),
            1_767_225_603 - 86_400,
            "the restarted VM's clock still runs a day behind"
        );
        assert_eq!(read(&one, LR), 1_767_225_601 - 86_400);
        assert_eq!(
            (read(&one, MR), read(&one, IMSC)),
            (0, 0),
            "the match is reset"
        );
        assert_eq!(gic.next_deadline(), None);
        assert_eq!(read(&two, DR), 1_767_225_603, "the other VM's clock");
        two.reset().unwrap();
        assert_eq!(read(&two, DR), 1_767_225_603, "a VM that set nothing");
        clock.advance(1000);
        assert_eq!(read(&one, DR), 1_767_225_604 - 86_400);
    }

    #[test]
    fn the_match_raises_the_line_on_time_and_the_guest_clears_it() {
        let clock = FakeClock::with_frequency(HZ as u32);
        let gic = VirtualGic::new();
        let rtc = VirtualRtc::new(&clock, &Wall, gic.line(id()));
        let line = gic.line(id());
        clock.advance(300);
        write(&rtc, LR, 100);
        // Match at 102: the second that begins 2 s after the current one
        // began (tick 0 of the clock's second 0 + 2000).
        write(&rtc, MR, 102);
        assert_eq!(read(&rtc, RIS), 0);
        assert_eq!(gic.next_deadline(), None, "masked: nothing scheduled");
        write(&rtc, IMSC, INT_MATCH);
        assert_eq!(gic.next_deadline(), Some(2000));
        assert!(!line.is_high());
        // Nobody reads the device: the GIC raises the line when due.
        assert_eq!(gic.raise_due(1999), Some(2000));
        assert!(!line.is_high());
        assert_eq!(gic.raise_due(2000), None);
        assert!(line.is_high());
        clock.advance(1700);
        assert_eq!(read(&rtc, DR), 102);
        assert_eq!((read(&rtc, RIS), read(&rtc, MIS)), (1, 1));
        write(&rtc, ICR, INT_MATCH);
        assert_eq!(read(&rtc, RIS), 0);
        assert!(!line.is_high(), "cleared");
        clock.advance(5000);
        assert_eq!(read(&rtc, RIS), 0, "once per write of the match");
        assert!(rtc.changes_interrupts(MIS, false) && !rtc.changes_interrupts(DR, false));
    }

    #[test]
    fn a_match_seen_by_a_read_masking_and_reset() {
        let clock = FakeClock::with_frequency(HZ as u32);
        let gic = VirtualGic::new();
        let rtc = VirtualRtc::new(&clock, &hyp::hil::time::UnsetWallClock, gic.line(id()));
        let line = gic.line(id());
        write(&rtc, MR, 0);
        assert_eq!(read(&rtc, RIS), 1, "matching now");
        assert_eq!(read(&rtc, MIS), 0, "masked");
        assert!(!line.is_high());
        write(&rtc, IMSC, INT_MATCH);
        assert!(line.is_high(), "unmasked: the line follows MIS");
        write(&rtc, IMSC, 0);
        assert!(!line.is_high());
        write(&rtc, IMSC, INT_MATCH);
        // A read of the status sees a match the GIC was not asked about.
        write(&rtc, ICR, INT_MATCH);
        write(&rtc, MR, 5);
        clock.advance(5000);
        assert!(!line.is_high());
        assert_eq!(read(&rtc, MIS), INT_MATCH);
        assert!(line.is_high());
        rtc.reset().unwrap();
        assert!(!line.is_high());
        assert_eq!(gic.next_deadline(), None);
        assert_eq!(read(&rtc, IMSC), 0);
    }

    #[test]
    fn identification_control_and_access_sizes() {
        let clock = FakeClock::with_frequency(HZ as u32);
        let gic = VirtualGic::new();
        let rtc = VirtualRtc::new(&clock, &Wall, gic.line(id()));
        let ids: [u32; 8] = core::array::from_fn(|n| read(&rtc, ID_BASE + 4 * n as u64));
        assert_eq!(ids, [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        write(&rtc, CR, 0);
        assert_eq!(read(&rtc, CR), 1, "always running");
        write(&rtc, DR, 5);
        assert_eq!(read(&rtc, DR), 1_767_225_600, "DR is read-only");
        assert_eq!(read(&rtc, 0x800), 0);
        assert_eq!(rtc.read(DR, AccessSize::Byte), Err(MmioError::BadSize));
        assert_eq!(rtc.read(0xff0, AccessSize::Byte), Ok(0x0d));
        assert_eq!(rtc.read(0xffc, AccessSize::Byte), Ok(0xb1));
        assert_eq!(rtc.read(0xffd, AccessSize::Byte), Ok(0));
        assert_eq!(
            rtc.read(0xff0, AccessSize::Halfword),
            Err(MmioError::BadSize)
        );
        assert_eq!(rtc.write(0x2, AccessSize::Word, 0), Err(MmioError::BadSize));
        assert_eq!(
            (rtc.name(), rtc.base(), rtc.size()),
            ("pl031", 0x0901_0000, 0x1000)
        );
    }
}
