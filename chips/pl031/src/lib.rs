// SPDX-License-Identifier: MIT OR Apache-2.0
//! PL031 real-time clock: the board's calendar time, read once at boot.
//!
//! Register offsets and bits are those of the Arm PrimeCell Real Time Clock
//! (PL031) technical reference manual. The PL031 counts seconds in RTCDR,
//! from the value last written to RTCLR, while RTCCR's start bit is set;
//! on the boards Capvisor runs on (QEMU's Integrator/CP at 0x1500_0000 and
//! `virt` at 0x0901_0000) the count is seconds since 1970-01-01 UTC and the
//! clock always runs. The hypervisor only reads it: [`Pl031::read_seconds`]
//! checks that the block is a PL031 that runs and returns RTCDR; the board
//! pairs that with its counter (`hyp::hil::time::BootWallClock`) and never
//! touches the RTC again. Guests get their own, emulated PL031
//! (`capsules::virtual_rtc`), never this one.
//!
//! ```no_run
//! use pl031::Pl031;
//! // SAFETY: Integrator/CP's RTC is in the Hyp map and only read here.
//! let rtc = unsafe { Pl031::new(0x1500_0000) };
//! let seconds = rtc.read_seconds().unwrap();
//! ```

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;
use hyp::utilities::StaticRef;
use tock_registers::interfaces::Readable;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_structs! {
    /// The PL031 register block.
    pub Pl031Registers {
        (0x000 => dr: ReadOnly<u32>),
        (0x004 => mr: ReadWrite<u32>),
        (0x008 => lr: ReadWrite<u32>),
        (0x00c => cr: ReadWrite<u32, CONTROL::Register>),
        (0x010 => imsc: ReadWrite<u32, INTERRUPT::Register>),
        (0x014 => ris: ReadOnly<u32, INTERRUPT::Register>),
        (0x018 => mis: ReadOnly<u32, INTERRUPT::Register>),
        (0x01c => icr: WriteOnly<u32, INTERRUPT::Register>),
        (0x020 => _reserved),
        (0xfe0 => periph_id: [ReadOnly<u32>; 4]),
        (0xff0 => cell_id: [ReadOnly<u32>; 4]),
        (0x1000 => @END),
    }
}

register_bitfields! [u32,
    CONTROL [
        /// The counter runs (once set, only a reset clears it).
        START OFFSET(0) NUMBITS(1) []
    ],
    INTERRUPT [
        /// The counter reached RTCMR.
        MATCH OFFSET(0) NUMBITS(1) []
    ]
];

/// PeriphID0-3 of a PL031 (part 0x031, designer Arm 0x41, any revision):
/// the revision field (bits 20-23) is not compared.
pub const PERIPHERAL_ID: u32 = 0x0004_1031;
/// PCellID0-3 of every PrimeCell.
pub const PRIMECELL_ID: u32 = 0xb105_f00d;
/// The bits of the peripheral ID that name the part and designer.
const PERIPHERAL_ID_MASK: u32 = 0x000f_ffff;

/// Why the RTC's time was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pl031Error {
    /// The block's identification is not a PL031's.
    NotAPl031 {
        /// PeriphID0-3, assembled.
        peripheral_id: u32,
        /// PCellID0-3, assembled.
        cell_id: u32,
    },
    /// RTCCR's start bit is clear: the counter does not run (nothing ever
    /// started the clock, so its count is no time of day).
    Stopped,
}

impl fmt::Display for Pl031Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pl031Error::NotAPl031 {
                peripheral_id,
                cell_id,
            } => write!(
                f,
                "no PL031 there (peripheral ID {peripheral_id:#010x}, PrimeCell ID {cell_id:#010x})"
            ),
            Pl031Error::Stopped => f.write_str("the PL031 is stopped (RTCCR start bit clear)"),
        }
    }
}

/// A PL031, read-only.
#[derive(Debug)]
pub struct Pl031 {
    registers: StaticRef<Pl031Registers>,
}

/// The 32-bit ID assembled from four registers' low bytes, the first
/// register the lowest byte (how PrimeCell IDs are read).
fn assemble_id(registers: &[ReadOnly<u32>; 4]) -> u32 {
    registers.iter().enumerate().fold(0, |id, (i, register)| {
        id | ((register.get() & 0xff) << (8 * i))
    })
}

impl Pl031 {
    /// A driver for the PL031 at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL031 register block that stays
    /// mapped (identity, Device memory) whenever the driver is used.
    pub const unsafe fn new(base: usize) -> Pl031 {
        Pl031 {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const Pl031Registers) },
        }
    }

    /// PeriphID0-3 (0x00041031 for a PL031 r0).
    pub fn peripheral_id(&self) -> u32 {
        assemble_id(&self.registers.periph_id)
    }

    /// PCellID0-3 (0xb105f00d).
    pub fn cell_id(&self) -> u32 {
        assemble_id(&self.registers.cell_id)
    }

    /// Whether the counter runs (RTCCR's start bit).
    pub fn is_running(&self) -> bool {
        self.registers.cr.is_set(CONTROL::START)
    }

    /// RTCDR: the counter, in seconds (since 1970 where the board set it
    /// so), unchecked.
    pub fn seconds(&self) -> u32 {
        self.registers.dr.get()
    }

    /// The counter in seconds, once the identification says this is a
    /// PL031 and RTCCR says it runs.
    pub fn read_seconds(&self) -> Result<u32, Pl031Error> {
        let (peripheral_id, cell_id) = (self.peripheral_id(), self.cell_id());
        if peripheral_id & PERIPHERAL_ID_MASK != PERIPHERAL_ID || cell_id != PRIMECELL_ID {
            return Err(Pl031Error::NotAPl031 {
                peripheral_id,
                cell_id,
            });
        }
        if !self.is_running() {
            return Err(Pl031Error::Stopped);
        }
        Ok(self.seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    /// A register block in host memory, as words: what the driver reads is
    /// what was put at each offset.
    struct FakeBlock {
        words: [u32; 0x400],
    }

    impl FakeBlock {
        /// A running PL031 r1 whose counter reads `seconds`.
        fn pl031(seconds: u32) -> FakeBlock {
            let mut block = FakeBlock { words: [0; 0x400] };
            block.set(0x000, seconds);
            block.set(0x00c, 1);
            for (n, byte) in [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]
                .into_iter()
                .enumerate()
            {
                block.set(0xfe0 + 4 * n, byte);
            }
            block
        }

        fn set(&mut self, offset: usize, value: u32) {
            self.words[offset / 4] = value;
        }

        fn driver(&self) -> Pl031 {
            // SAFETY: the block outlives the driver in each test and is
            // as large as the register block; the driver only reads it.
            unsafe { Pl031::new(self.words.as_ptr() as usize) }
        }
    }

    #[test]
    fn the_register_block_has_the_manuals_layout() {
        assert_eq!(size_of::<Pl031Registers>(), 0x1000);
        assert_eq!(size_of::<FakeBlock>(), 0x1000);
    }

    #[test]
    fn a_running_pl031_gives_its_seconds() {
        let block = FakeBlock::pl031(1_796_685_612);
        let rtc = block.driver();
        assert_eq!(rtc.peripheral_id(), 0x0014_1031, "revision 1 kept");
        assert_eq!(rtc.cell_id(), PRIMECELL_ID);
        assert!(rtc.is_running());
        assert_eq!(rtc.read_seconds(), Ok(1_796_685_612));
        let unset = FakeBlock::pl031(0);
        assert_eq!(
            unset.driver().read_seconds(),
            Ok(0),
            "an unset clock reads 0"
        );
    }

    #[test]
    fn a_stopped_clock_or_another_device_is_refused() {
        let mut block = FakeBlock::pl031(42);
        block.set(0x00c, 0);
        assert_eq!(block.driver().read_seconds(), Err(Pl031Error::Stopped));
        // A PL011's identification at the same place.
        let mut uart = FakeBlock::pl031(42);
        uart.set(0xfe0, 0x11);
        let refused = uart.driver().read_seconds().unwrap_err();
        assert_eq!(
            refused,
            Pl031Error::NotAPl031 {
                peripheral_id: 0x0014_1011,
                cell_id: PRIMECELL_ID
            }
        );
        extern crate std;
        assert_eq!(
            std::format!("{refused}"),
            "no PL031 there (peripheral ID 0x00141011, PrimeCell ID 0xb105f00d)"
        );
        let nothing = FakeBlock { words: [0; 0x400] };
        assert!(matches!(
            nothing.driver().read_seconds(),
            Err(Pl031Error::NotAPl031 { cell_id: 0, .. })
        ));
    }
}
