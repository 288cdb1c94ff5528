// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Integrator/CP primary interrupt controller (PIC).
//!
//! A level-sensitive controller with one IRQ and one FIQ output; lines are
//! enabled and disabled through set/clear registers. At boot the hypervisor
//! masks every line so nothing fires before it is ready; the interrupt layer
//! builds on the same driver.
//!
//! | offset | register |
//! |---|---|
//! | 0x00 | IRQ_STATUS (pending and enabled) |
//! | 0x04 | IRQ_RAWSTAT (pending) |
//! | 0x08 | IRQ_ENABLESET (write: enable; read: enabled mask) |
//! | 0x0c | IRQ_ENABLECLR |
//! | 0x10/0x14 | soft interrupt set/clear |
//! | 0x20-0x2c | the same four for FIQ |

use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// The PIC register block.
    pub PicRegisters {
        (0x00 => irq_status: ReadOnly<u32>),
        (0x04 => irq_rawstat: ReadOnly<u32>),
        (0x08 => irq_enableset: ReadWrite<u32>),
        (0x0c => irq_enableclr: WriteOnly<u32>),
        (0x10 => int_softset: WriteOnly<u32>),
        (0x14 => int_softclr: WriteOnly<u32>),
        (0x18 => _reserved0),
        (0x20 => fiq_status: ReadOnly<u32>),
        (0x24 => fiq_rawstat: ReadOnly<u32>),
        (0x28 => fiq_enableset: ReadWrite<u32>),
        (0x2c => fiq_enableclr: WriteOnly<u32>),
        (0x30 => @END),
    }
}

/// Interrupt line numbers on the Integrator/CP PIC.
pub mod lines {
    /// UART0 receive/transmit.
    pub const UART0: u32 = 1;
    /// UART1.
    pub const UART1: u32 = 2;
    /// Counter/timer 0 (about 40 MHz).
    pub const TIMER0: u32 = 5;
    /// Counter/timer 1 (1 MHz).
    pub const TIMER1: u32 = 6;
    /// Counter/timer 2 (1 MHz).
    pub const TIMER2: u32 = 7;
    /// Real-time clock (PL031).
    pub const RTC: u32 = 8;
}

/// The primary interrupt controller.
#[derive(Debug)]
pub struct Pic {
    registers: StaticRef<PicRegisters>,
}

impl Pic {
    /// A driver for the PIC at `base`.
    ///
    /// # Safety
    /// `base` must be the PIC's register block, mapped as Device memory
    /// whenever the driver is used.
    pub const unsafe fn new(base: usize) -> Pic {
        Pic {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const PicRegisters) },
        }
    }

    /// Masks every IRQ and FIQ line and clears soft interrupts.
    pub fn disable_all(&self) {
        self.registers.irq_enableclr.set(u32::MAX);
        self.registers.fiq_enableclr.set(u32::MAX);
        self.registers.int_softclr.set(u32::MAX);
    }

    /// Enables IRQ `line` (0-31).
    pub fn enable(&self, line: u32) {
        self.registers.irq_enableset.set(1 << (line & 31));
    }

    /// Disables IRQ `line` (0-31).
    pub fn disable(&self, line: u32) {
        self.registers.irq_enableclr.set(1 << (line & 31));
    }

    /// The mask of enabled IRQ lines.
    pub fn enabled(&self) -> u32 {
        self.registers.irq_enableset.get()
    }

    /// The mask of lines that are pending and enabled.
    pub fn pending(&self) -> u32 {
        self.registers.irq_status.get()
    }

    /// The mask of lines that are asserted, enabled or not.
    pub fn raw_pending(&self) -> u32 {
        self.registers.irq_rawstat.get()
    }

    /// The mask of enabled FIQ lines.
    pub fn fiq_enabled(&self) -> u32 {
        self.registers.fiq_enableset.get()
    }

    /// FIQ lines pending and enabled.
    pub fn fiq_pending(&self) -> u32 {
        self.registers.fiq_status.get()
    }

    /// Raises soft interrupt `line` (for tests of the interrupt path).
    pub fn raise_soft(&self, line: u32) {
        self.registers.int_softset.set(1 << (line & 31));
    }
}

impl hyp::hil::interrupt::InterruptController for Pic {
    fn enable(&self, line: u32) {
        Pic::enable(self, line);
    }

    fn disable(&self, line: u32) {
        Pic::disable(self, line);
    }

    /// The lowest enabled, asserted line. The PIC has no active state: a
    /// line stays asserted until its device is serviced, so ending and
    /// deactivating are no-ops, as are priorities (the lowest line wins).
    fn acknowledge(&self) -> Option<hyp::hil::interrupt::Acknowledged> {
        lowest_line(self.pending())
            .map(|line| hyp::hil::interrupt::Acknowledged { line, token: line })
    }
}

/// The lowest line set in a status word.
const fn lowest_line(status: u32) -> Option<u32> {
    if status == 0 {
        None
    } else {
        Some(status.trailing_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_pending_line_first() {
        assert_eq!(lowest_line(0), None);
        assert_eq!(
            lowest_line(1 << lines::TIMER1 | 1 << lines::UART0),
            Some(lines::UART0)
        );
        assert_eq!(lowest_line(1 << 31), Some(31));
    }
}
