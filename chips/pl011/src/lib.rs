// SPDX-License-Identifier: MIT OR Apache-2.0
//! PL011 UART: the hypervisor's console output and input, by polling.
//!
//! Register offsets and bits are those of the Arm PrimeCell UART (PL011)
//! technical reference manual. Output waits while the transmit FIFO is full;
//! input returns a byte when the receive FIFO has one. Interrupt-driven
//! receive comes with the interrupt layer.
//!
//! ```no_run
//! use pl011::Pl011;
//! // SAFETY: the UART (here Integrator/CP's UART0) is mapped for the whole
//! // run and used only through this.
//! let uart = unsafe { Pl011::new(0x1600_0000) };
//! uart.init(14_745_600, 115_200);
//! uart.write_str_crlf("hello\n");
//! ```

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;
use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_structs! {
    /// The PL011 register block.
    pub Pl011Registers {
        (0x000 => dr: ReadWrite<u32, DATA::Register>),
        (0x004 => rsr_ecr: ReadWrite<u32>),
        (0x008 => _reserved0),
        (0x018 => fr: ReadOnly<u32, FLAG::Register>),
        (0x01c => _reserved1),
        (0x020 => ilpr: ReadWrite<u32>),
        (0x024 => ibrd: ReadWrite<u32>),
        (0x028 => fbrd: ReadWrite<u32>),
        (0x02c => lcr_h: ReadWrite<u32, LINE_CONTROL::Register>),
        (0x030 => cr: ReadWrite<u32, CONTROL::Register>),
        (0x034 => ifls: ReadWrite<u32>),
        (0x038 => imsc: ReadWrite<u32>),
        (0x03c => ris: ReadOnly<u32>),
        (0x040 => mis: ReadOnly<u32>),
        (0x044 => icr: WriteOnly<u32>),
        (0x048 => dmacr: ReadWrite<u32>),
        (0x04c => _reserved2),
        (0xfe0 => periph_id: [ReadOnly<u32>; 4]),
        (0xff0 => cell_id: [ReadOnly<u32>; 4]),
        (0x1000 => @END),
    }
}

register_bitfields! [u32,
    DATA [
        DATA OFFSET(0) NUMBITS(8) [],
        FRAMING_ERROR OFFSET(8) NUMBITS(1) [],
        PARITY_ERROR OFFSET(9) NUMBITS(1) [],
        BREAK_ERROR OFFSET(10) NUMBITS(1) [],
        OVERRUN_ERROR OFFSET(11) NUMBITS(1) []
    ],
    FLAG [
        CTS OFFSET(0) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) [],
        RXFE OFFSET(4) NUMBITS(1) [],
        TXFF OFFSET(5) NUMBITS(1) [],
        RXFF OFFSET(6) NUMBITS(1) [],
        TXFE OFFSET(7) NUMBITS(1) []
    ],
    LINE_CONTROL [
        BRK OFFSET(0) NUMBITS(1) [],
        PEN OFFSET(1) NUMBITS(1) [],
        EPS OFFSET(2) NUMBITS(1) [],
        STP2 OFFSET(3) NUMBITS(1) [],
        FEN OFFSET(4) NUMBITS(1) [],
        WLEN OFFSET(5) NUMBITS(2) [
            Bits5 = 0,
            Bits6 = 1,
            Bits7 = 2,
            Bits8 = 3
        ],
        SPS OFFSET(7) NUMBITS(1) []
    ],
    CONTROL [
        UARTEN OFFSET(0) NUMBITS(1) [],
        LBE OFFSET(7) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        RXE OFFSET(9) NUMBITS(1) [],
        RTS OFFSET(11) NUMBITS(1) []
    ]
];

/// The PL011 baud rate divisor for `clock_hz` and `baud`: the integer part
/// (IBRD) and the 6-bit fraction (FBRD), rounded to nearest. `None` when the
/// rate cannot be reached (integer divisor 0 or above 0xffff).
pub const fn baud_divisors(clock_hz: u32, baud: u32) -> Option<(u32, u32)> {
    if baud == 0 {
        return None;
    }
    // divisor * 64 = clock / (16 * baud) * 64 = clock * 4 / baud, rounded.
    let scaled = ((clock_hz as u64) * 4 + (baud as u64) / 2) / baud as u64;
    let integer = scaled / 64;
    let fraction = scaled % 64;
    if integer == 0 || integer > 0xffff {
        return None;
    }
    Some((integer as u32, fraction as u32))
}

/// A PL011 UART driven by polling.
#[derive(Debug)]
pub struct Pl011 {
    registers: StaticRef<Pl011Registers>,
}

impl Pl011 {
    /// A driver for the PL011 at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a PL011 register block that stays
    /// mapped (identity, Device memory) whenever the driver is used.
    pub const unsafe fn new(base: usize) -> Pl011 {
        Pl011 {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const Pl011Registers) },
        }
    }

    /// Programs 8 data bits, no parity, one stop bit, FIFOs on, at `baud`
    /// from a `clock_hz` reference clock, and enables transmit and receive.
    /// An unreachable rate keeps the current divisors.
    pub fn init(&self, clock_hz: u32, baud: u32) {
        let regs = &*self.registers;
        regs.cr.set(0);
        while regs.fr.is_set(FLAG::BUSY) {}
        if let Some((integer, fraction)) = baud_divisors(clock_hz, baud) {
            regs.ibrd.set(integer);
            regs.fbrd.set(fraction);
        }
        regs.lcr_h
            .write(LINE_CONTROL::WLEN::Bits8 + LINE_CONTROL::FEN::SET);
        regs.imsc.set(0);
        regs.icr.set(0x7ff);
        regs.cr
            .write(CONTROL::UARTEN::SET + CONTROL::TXE::SET + CONTROL::RXE::SET);
    }

    /// Sends one byte, waiting for room in the transmit FIFO.
    pub fn write_byte(&self, byte: u8) {
        let regs = &*self.registers;
        while regs.fr.is_set(FLAG::TXFF) {}
        regs.dr.set(byte as u32);
    }

    /// Sends `text`, turning each `\n` into `\r\n` for terminals in raw mode.
    pub fn write_str_crlf(&self, text: &str) {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
    }

    /// Waits until every byte has left the transmitter.
    pub fn flush(&self) {
        while self.registers.fr.is_set(FLAG::BUSY) {}
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        let regs = &*self.registers;
        if regs.fr.is_set(FLAG::RXFE) {
            None
        } else {
            Some(regs.dr.read(DATA::DATA) as u8)
        }
    }

    /// Enables or disables the receive interrupts: RXIM (bit 4, the FIFO
    /// reached its trigger level) and RTIM (bit 6, receive timeout: data
    /// waited in the FIFO below the level). The line stays asserted while
    /// received data waits; reading it empty deasserts it.
    pub fn set_receive_interrupts(&self, enabled: bool) {
        const RECEIVE: u32 = (1 << 4) | (1 << 6);
        let regs = &*self.registers;
        let mask = regs.imsc.get();
        regs.imsc.set(if enabled {
            mask | RECEIVE
        } else {
            mask & !RECEIVE
        });
    }

    /// The PrimeCell peripheral ID (0x00041011 for a PL011 r1p5).
    pub fn peripheral_id(&self) -> u32 {
        let regs = &*self.registers;
        (0..4).fold(0, |id, i| {
            id | ((regs.periph_id[i].get() & 0xff) << (8 * i))
        })
    }
}

impl fmt::Write for &Pl011 {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write_str_crlf(text);
        Ok(())
    }
}

impl hyp::hil::console::ConsoleOutput for Pl011 {
    fn write(&self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_byte(byte);
        }
    }
}

impl hyp::hil::console::ConsoleReceive for Pl011 {
    fn read_byte(&self) -> Option<u8> {
        Pl011::read_byte(self)
    }

    fn set_receive_interrupts(&self, enabled: bool) {
        Pl011::set_receive_interrupts(self, enabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrator_clock_gives_exact_divisor_at_115200() {
        // 14.7456 MHz / (16 * 115200) = 8 exactly.
        assert_eq!(baud_divisors(14_745_600, 115_200), Some((8, 0)));
    }

    #[test]
    fn fractional_divisor_is_rounded() {
        // 24 MHz / (16 * 115200) = 13.0208 -> 13 + round(0.0208 * 64) = 1.
        assert_eq!(baud_divisors(24_000_000, 115_200), Some((13, 1)));
    }

    #[test]
    fn unreachable_rates_are_refused() {
        assert_eq!(baud_divisors(14_745_600, 0), None);
        assert_eq!(baud_divisors(1_000, 115_200), None);
        assert_eq!(baud_divisors(u32::MAX, 1), None);
    }
}
