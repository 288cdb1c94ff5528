//! The Integrator/CP counter/timers (SP804-like, three of them).
//!
//! Each timer is a down-counter with a load value, a control register and an
//! interrupt. Timer 0 counts at about 40 MHz, timers 1 and 2 at 1 MHz. At boot
//! the hypervisor stops all three and clears their interrupts; the time layer
//! builds its clock and alarm on the same driver.
//!
//! | offset | register |
//! |---|---|
//! | 0x00 | LOAD |
//! | 0x04 | VALUE |
//! | 0x08 | CTRL: EN 0x80, PERIODIC 0x40, IE 0x20, 32BIT 0x02, ONESHOT 0x01 |
//! | 0x0c | INTCLR |
//! | 0x10 | RIS |
//! | 0x14 | MIS |
//! | 0x18 | BGLOAD |

use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_structs! {
    /// One timer's register block.
    pub TimerRegisters {
        (0x00 => load: ReadWrite<u32>),
        (0x04 => value: ReadOnly<u32>),
        (0x08 => ctrl: ReadWrite<u32, TIMER_CONTROL::Register>),
        (0x0c => intclr: WriteOnly<u32>),
        (0x10 => ris: ReadOnly<u32>),
        (0x14 => mis: ReadOnly<u32>),
        (0x18 => bgload: ReadWrite<u32>),
        (0x1c => @END),
    }
}

register_bitfields! [u32,
    TIMER_CONTROL [
        ONESHOT OFFSET(0) NUMBITS(1) [],
        SIZE_32BIT OFFSET(1) NUMBITS(1) [],
        PRESCALE OFFSET(2) NUMBITS(2) [],
        INTERRUPT_ENABLE OFFSET(5) NUMBITS(1) [],
        PERIODIC OFFSET(6) NUMBITS(1) [],
        ENABLE OFFSET(7) NUMBITS(1) []
    ]
];

/// Distance between consecutive timers' register blocks.
pub const TIMER_STRIDE: usize = 0x100;

/// One counter/timer.
#[derive(Debug)]
pub struct Timer {
    registers: StaticRef<TimerRegisters>,
}

impl Timer {
    /// A driver for the timer whose registers start at `base`.
    ///
    /// # Safety
    /// `base` must be a timer register block, mapped as Device memory
    /// whenever the driver is used.
    pub const unsafe fn new(base: usize) -> Timer {
        Timer {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const TimerRegisters) },
        }
    }

    /// Stops the counter and clears a pending interrupt.
    pub fn stop(&self) {
        self.registers.ctrl.set(0);
        self.registers.intclr.set(1);
    }

    /// Whether the timer is counting.
    pub fn is_running(&self) -> bool {
        self.registers.ctrl.is_set(TIMER_CONTROL::ENABLE)
    }

    /// The current counter value.
    pub fn value(&self) -> u32 {
        self.registers.value.get()
    }

    /// Whether the timer's interrupt is asserted (raw, before masking).
    pub fn interrupt_raised(&self) -> bool {
        self.registers.ris.get() & 1 != 0
    }
}
