// SPDX-License-Identifier: MIT OR Apache-2.0
//! A virtual PL011 UART: the guest's console.
//!
//! Its window and interrupt are the guest platform's PL011 row
//! (`hyp::guest_platform::UART`: 0x0900_0000, SPI 1). The UART drives its
//! interrupt line ([`InterruptLine`]) itself: high while its masked
//! interrupt status (MIS = RIS & IMSC) is non-zero, moved whenever that
//! can change (a received byte, a read of DR, a write).
//!
//! Guest-visible interface: the Arm PrimeCell UART (PL011) register file as
//! Linux's `amba-pl011` driver and its earlycon use it. Transmission is
//! instant (the transmit FIFO is always empty); received characters queue
//! in a receive FIFO (64 bytes; the real one has 16).
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | DR | write: send the low byte; read: pop the receive FIFO |
//! | 0x004 | RSR/ECR | reads 0 (no errors); writes clear (nothing to clear) |
//! | 0x018 | FR | TXFE always, RXFE/RXFF from the receive FIFO, never BUSY/TXFF |
//! | 0x020 | ILPR | stored (8 bits) |
//! | 0x024, 0x028 | IBRD, FBRD | stored (16 and 6 bits) |
//! | 0x02c | LCR_H | stored (8 bits) |
//! | 0x030 | CR | stored (16 bits), reset 0x0300 |
//! | 0x034 | IFLS | stored (6 bits), reset 0x12 |
//! | 0x038 | IMSC | interrupt mask (11 bits) |
//! | 0x03c | RIS | raw interrupts: RX (bit 4) while data waits, TX (bit 5) after a send |
//! | 0x040 | MIS | RIS & IMSC |
//! | 0x044 | ICR | write 1s to clear TX (and the latched error bits) |
//! | 0x048 | DMACR | stored (3 bits) |
//! | 0xfe0-0xffc | PeriphID0-3, PCellID0-3 | 0x11 0x10 0x14 0x00, 0x0d 0xf0 0x05 0xb1 |
//!
//! Any other offset reads as zero and ignores writes (reserved space of the
//! 4 KiB window); an access that is not aligned to its size is refused and
//! the guest takes an abort. Byte and halfword accesses see the low bytes of
//! a register (earlycon writes DR with single bytes).

use crate::virtual_gic::InterruptLine;
use core::cell::{Cell, RefCell};
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::{GuestDevice, UART};
use hyp::hil::console::ConsoleOutput;
use hyp::trap::AccessSize;

/// The UART's row of the guest platform: its name, window and interrupt.
pub const ROW: GuestDevice = UART;
/// Depth of the receive FIFO: 64 bytes, deeper than the PL011's 16,
/// because the console hands over a typed line at once rather than at the
/// pace of a serial line (the board also holds input back while the FIFO
/// is full, see [`VirtualUart::receive_room`]).
pub const RX_FIFO_DEPTH: usize = 64;

const DR: u64 = 0x000;
const RSR_ECR: u64 = 0x004;
const FR: u64 = 0x018;
const ILPR: u64 = 0x020;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;
const ID_BASE: u64 = 0xfe0;
const ID_BYTES: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// UARTCR at reset: transmit and receive enabled, the UART disabled.
const CR_RESET: u32 = 0x0300;
/// UARTIFLS at reset: both FIFO levels at half.
const IFLS_RESET: u32 = 0x12;
const FR_RXFE: u32 = 1 << 4;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
/// RIS/MIS/IMSC/ICR: receive interrupt.
pub const INT_RX: u32 = 1 << 4;
/// RIS/MIS/IMSC/ICR: transmit interrupt.
pub const INT_TX: u32 = 1 << 5;

/// One VM's virtual PL011.
pub struct VirtualUart<'a> {
    output: &'a dyn ConsoleOutput,
    line: InterruptLine<'a>,
    rx: RefCell<heapless::Deque<u8, RX_FIFO_DEPTH>>,
    rx_dropped: Cell<u32>,
    ilpr: Cell<u32>,
    ibrd: Cell<u32>,
    fbrd: Cell<u32>,
    lcr_h: Cell<u32>,
    cr: Cell<u32>,
    ifls: Cell<u32>,
    imsc: Cell<u32>,
    tx_interrupt: Cell<bool>,
    dmacr: Cell<u32>,
}

impl core::fmt::Debug for VirtualUart<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtualUart")
            .field("rx_waiting", &self.rx.borrow().len())
            .field("imsc", &self.imsc.get())
            .finish()
    }
}

impl<'a> VirtualUart<'a> {
    /// A UART in its reset state whose output goes to `output`, raising
    /// `line` (its VM's GIC, the row's interrupt).
    pub fn new(output: &'a dyn ConsoleOutput, line: InterruptLine<'a>) -> VirtualUart<'a> {
        VirtualUart {
            output,
            line,
            rx: RefCell::new(heapless::Deque::new()),
            rx_dropped: Cell::new(0),
            ilpr: Cell::new(0),
            ibrd: Cell::new(0),
            fbrd: Cell::new(0),
            lcr_h: Cell::new(0),
            cr: Cell::new(CR_RESET),
            ifls: Cell::new(IFLS_RESET),
            imsc: Cell::new(0),
            tx_interrupt: Cell::new(false),
            dmacr: Cell::new(0),
        }
    }

    /// Queues a character typed for this VM. Returns false (and counts it)
    /// when the FIFO is full, as a real UART would overrun.
    pub fn receive(&self, byte: u8) -> bool {
        let accepted = self.rx.borrow_mut().push_back(byte).is_ok();
        if !accepted {
            self.rx_dropped.set(self.rx_dropped.get() + 1);
        }
        self.update_line();
        accepted
    }

    /// How many more characters the receive FIFO takes now.
    pub fn receive_room(&self) -> usize {
        RX_FIFO_DEPTH - self.rx.borrow().len()
    }

    /// Characters lost to a full receive FIFO.
    pub fn dropped(&self) -> u32 {
        self.rx_dropped.get()
    }

    /// Raw interrupt status.
    pub fn raw_interrupts(&self) -> u32 {
        let rx = if self.rx.borrow().is_empty() {
            0
        } else {
            INT_RX
        };
        let tx = if self.tx_interrupt.get() { INT_TX } else { 0 };
        rx | tx
    }

    /// Whether the UART's interrupt is asserted (MIS is not zero).
    pub fn interrupt_pending(&self) -> bool {
        self.raw_interrupts() & self.imsc.get() != 0
    }

    /// Drives the line from MIS (a compare when it stays where it is).
    fn update_line(&self) {
        self.line.set(self.interrupt_pending());
    }

    fn register(&self, offset: u64) -> u32 {
        match offset {
            DR => self.rx.borrow_mut().pop_front().map_or(0, u32::from),
            FR => {
                let rx = self.rx.borrow();
                let mut flags = FR_TXFE;
                if rx.is_empty() {
                    flags |= FR_RXFE;
                }
                if rx.is_full() {
                    flags |= FR_RXFF;
                }
                flags
            }
            ILPR => self.ilpr.get(),
            IBRD => self.ibrd.get(),
            FBRD => self.fbrd.get(),
            LCR_H => self.lcr_h.get(),
            CR => self.cr.get(),
            IFLS => self.ifls.get(),
            IMSC => self.imsc.get(),
            RIS => self.raw_interrupts(),
            MIS => self.raw_interrupts() & self.imsc.get(),
            DMACR => self.dmacr.get(),
            ID_BASE..=0xffc if offset.is_multiple_of(4) => {
                ID_BYTES[((offset - ID_BASE) / 4) as usize]
            }
            _ => 0,
        }
    }

    fn set_register(&self, offset: u64, value: u32) {
        match offset {
            DR => {
                self.output.write(&[value as u8]);
                self.tx_interrupt.set(true);
            }
            RSR_ECR => {}
            ILPR => self.ilpr.set(value & 0xff),
            IBRD => self.ibrd.set(value & 0xffff),
            FBRD => self.fbrd.set(value & 0x3f),
            LCR_H => self.lcr_h.set(value & 0xff),
            CR => self.cr.set(value & 0xffff),
            IFLS => self.ifls.set(value & 0x3f),
            IMSC => self.imsc.set(value & 0x7ff),
            ICR if value & INT_TX != 0 => self.tx_interrupt.set(false),
            DMACR => self.dmacr.set(value & 0x7),
            // FR, RIS, MIS and the ID registers are read-only; the rest of
            // the window is reserved: writes are ignored.
            _ => {}
        }
    }
}

impl MmioDevice for VirtualUart<'_> {
    fn name(&self) -> &'static str {
        ROW.name
    }

    /// Back to the state `new` gives: FIFO empty, registers at their reset
    /// values, no interrupt.
    fn reset(&self) -> Result<(), NotResettable> {
        self.rx.borrow_mut().clear();
        self.rx_dropped.set(0);
        for (register, value) in [
            (&self.ilpr, 0),
            (&self.ibrd, 0),
            (&self.fbrd, 0),
            (&self.lcr_h, 0),
            (&self.cr, CR_RESET),
            (&self.ifls, IFLS_RESET),
            (&self.imsc, 0),
            (&self.dmacr, 0),
        ] {
            register.set(value);
        }
        self.tx_interrupt.set(false);
        self.update_line();
        Ok(())
    }

    fn base(&self) -> u64 {
        u64::from(ROW.base)
    }

    fn size(&self) -> u64 {
        u64::from(ROW.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        let bytes = size.bytes() as u64;
        if !offset.is_multiple_of(bytes) || bytes > 4 {
            return Err(MmioError::BadSize);
        }
        let word = offset & !3;
        let shift = (offset & 3) * 8;
        // A sub-word read of DR at offset 0 pops the FIFO like a word read;
        // a read of DR's upper bytes does not.
        let value = if word == DR && shift != 0 {
            0
        } else {
            self.register(word)
        };
        if word == DR && shift == 0 {
            // The FIFO popped.
            self.update_line();
        }
        Ok(match size {
            AccessSize::Byte => (value >> shift) & 0xff,
            AccessSize::Halfword => (value >> shift) & 0xffff,
            _ => value,
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        let bytes = size.bytes() as u64;
        if !offset.is_multiple_of(bytes) || bytes > 4 {
            return Err(MmioError::BadSize);
        }
        // Writes narrower than a register land in its low bytes; writes to
        // a register's upper bytes are ignored.
        if offset & 3 == 0 {
            self.set_register(offset, value);
            self.update_line();
        }
        Ok(())
    }

    /// The line (RIS & IMSC) moves only when DR is read (the receive FIFO
    /// pops), DR is written with the transmit interrupt unmasked (TX is
    /// raised), or IMSC or ICR is written. Status, configuration and ID
    /// accesses leave it alone: the guest's polling of FR costs no look
    /// at its interrupts.
    fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
        match (offset, write) {
            (DR, false) | (IMSC | ICR, true) => true,
            (DR, true) => self.imsc.get() & INT_TX != 0,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    use crate::test_support::Recorder;
    use crate::virtual_gic::VirtualGic;

    /// The UART's interrupt id.
    fn id() -> u32 {
        ROW.interrupt.unwrap()
    }

    fn word(uart: &VirtualUart, offset: u64) -> u32 {
        uart.read(offset, AccessSize::Word).unwrap()
    }

    #[test]
    fn transmit_by_word_and_by_byte() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        uart.write(DR, AccessSize::Word, 0x0000_0148).unwrap(); // 'H', high bits dropped
        uart.write(DR, AccessSize::Byte, b'i' as u32).unwrap();
        assert_eq!(&*out.0.borrow(), b"Hi");
        assert_eq!(word(&uart, FR) & (FR_TXFE | FR_RXFE), FR_TXFE | FR_RXFE);
    }

    #[test]
    fn receive_fifo_and_flags() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        assert!(uart.receive(b'a'));
        assert_eq!(word(&uart, FR) & FR_RXFE, 0);
        assert_eq!(word(&uart, DR), b'a' as u32);
        assert_ne!(word(&uart, FR) & FR_RXFE, 0);
        assert_eq!(word(&uart, DR), 0, "empty FIFO reads 0");
        for n in 0..RX_FIFO_DEPTH as u8 {
            assert!(uart.receive(n));
        }
        assert_ne!(word(&uart, FR) & FR_RXFF, 0);
        assert!(!uart.receive(0xff));
        assert_eq!(uart.dropped(), 1);
        assert_eq!(word(&uart, DR), 0, "first in, first out");
    }

    #[test]
    fn only_accesses_that_can_move_the_line_say_so() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        for offset in [FR, CR, LCR_H, IBRD, RIS, MIS, IMSC, ID_BASE] {
            assert!(!uart.changes_interrupts(offset, false), "read {offset:#x}");
        }
        for offset in [CR, LCR_H, IBRD, FBRD, IFLS, DMACR] {
            assert!(!uart.changes_interrupts(offset, true), "write {offset:#x}");
        }
        assert!(
            uart.changes_interrupts(DR, false),
            "a read of DR pops the FIFO"
        );
        assert!(uart.changes_interrupts(IMSC, true));
        assert!(uart.changes_interrupts(ICR, true));
        assert!(
            !uart.changes_interrupts(DR, true),
            "TX masked: no line moves"
        );
        uart.write(IMSC, AccessSize::Word, INT_TX).unwrap();
        assert!(uart.changes_interrupts(DR, true), "TX unmasked");
    }

    #[test]
    fn interrupts_follow_mask_and_clear_and_the_line_follows_them() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        let line = gic.line(id());
        assert!(!uart.interrupt_pending());
        uart.receive(b'x');
        assert_eq!(word(&uart, RIS), INT_RX);
        assert!(!uart.interrupt_pending(), "masked");
        assert!(!line.is_high());
        uart.write(IMSC, AccessSize::Word, INT_RX | INT_TX).unwrap();
        assert!(uart.interrupt_pending());
        assert!(line.is_high(), "unmasked: the line rises");
        assert_eq!(word(&uart, MIS), INT_RX);
        word(&uart, DR);
        assert!(!uart.interrupt_pending(), "RX clears when the FIFO drains");
        assert!(!line.is_high());
        uart.write(DR, AccessSize::Word, b'y' as u32).unwrap();
        assert_eq!(word(&uart, MIS), INT_TX);
        assert!(line.is_high(), "TX");
        uart.write(ICR, AccessSize::Word, INT_TX).unwrap();
        assert_eq!(word(&uart, RIS), 0);
        assert!(!line.is_high());
        // A byte received between exits raises it too, and a reset lowers
        // it.
        uart.receive(b'z');
        assert!(line.is_high());
        uart.reset().unwrap();
        assert!(!line.is_high());
    }

    #[test]
    fn identification_and_reset_values() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        let ids: Vec<u32> = (0..8).map(|i| word(&uart, 0xfe0 + 4 * i)).collect();
        assert_eq!(ids, ID_BYTES);
        assert_eq!((word(&uart, CR), word(&uart, IFLS)), (0x0300, 0x12));
        assert_eq!(uart.read(0xfe0, AccessSize::Byte), Ok(0x11));
    }

    #[test]
    fn stored_registers_keep_their_width() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        for (offset, mask) in [
            (IBRD, 0xffff),
            (FBRD, 0x3f),
            (LCR_H, 0xff),
            (CR, 0xffff),
            (IMSC, 0x7ff),
        ] {
            uart.write(offset, AccessSize::Word, u32::MAX).unwrap();
            assert_eq!(word(&uart, offset), mask, "{offset:#x}");
        }
    }

    #[test]
    fn read_only_reserved_and_odd_accesses() {
        let out = Recorder::default();
        let gic = VirtualGic::new();
        let uart = VirtualUart::new(&out, gic.line(id()));
        uart.write(FR, AccessSize::Word, 0).unwrap();
        assert_eq!(word(&uart, FR) & FR_TXFE, FR_TXFE, "FR is read-only");
        uart.write(0x800, AccessSize::Word, 0x1234).unwrap();
        assert_eq!(word(&uart, 0x800), 0, "reserved reads as zero");
        assert_eq!(
            uart.read(0x1, AccessSize::Halfword),
            Err(MmioError::BadSize)
        );
        assert_eq!(
            uart.write(0x2, AccessSize::Word, 0),
            Err(MmioError::BadSize)
        );
        assert_eq!(
            uart.read(0x0, AccessSize::Doubleword),
            Err(MmioError::BadSize)
        );
        uart.receive(b'z');
        assert_eq!(
            uart.read(0x1, AccessSize::Byte),
            Ok(0),
            "upper DR byte does not pop"
        );
        assert_eq!(word(&uart, DR), b'z' as u32);
        assert!(out.0.borrow().is_empty());
    }
}
