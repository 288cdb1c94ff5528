// SPDX-License-Identifier: MIT OR Apache-2.0
//! The PL181's register block, its bits, and the bus the driver reads it by.
//!
//! The driver talks to the controller through [`Bus`], one 32-bit register
//! at a time, so that the host tests can put a model of the controller and
//! its card behind the same calls; on the board [`Mmio`] is the register
//! block itself, described with `tock-registers`.
//!
//! | offset | register | use here |
//! |---|---|---|
//! | 0x00 | POWER | power the card (ctrl = on) |
//! | 0x04 | CLOCK | clock divider, enable |
//! | 0x08 | ARGUMENT | the command's argument |
//! | 0x0c | COMMAND | index, response kind, enable |
//! | 0x14-0x20 | RESPONSE0-3 | short response in 0; long in 0 (bits 127:96) to 3 |
//! | 0x24 | DATATIMER | data timeout in card bus clocks |
//! | 0x28 | DATALENGTH | bytes of the transfer (16 bits) |
//! | 0x2c | DATACTRL | enable, direction, block size |
//! | 0x34 | STATUS | see [`status`] |
//! | 0x38 | CLEAR | write 1 to clear the static status bits 10:0 |
//! | 0x3c/0x40 | MASK0/MASK1 | interrupt masks of the two lines |
//! | 0x48 | FIFOCNT | words left to move |
//! | 0x80-0xbc | FIFO | the 16-word data FIFO |

use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// The PL181 register block.
    pub Pl181Registers {
        (0x00 => power: ReadWrite<u32>),
        (0x04 => clock: ReadWrite<u32>),
        (0x08 => argument: ReadWrite<u32>),
        (0x0c => command: ReadWrite<u32>),
        (0x10 => respcmd: ReadOnly<u32>),
        (0x14 => response: [ReadOnly<u32>; 4]),
        (0x24 => datatimer: ReadWrite<u32>),
        (0x28 => datalength: ReadWrite<u32>),
        (0x2c => datactrl: ReadWrite<u32>),
        (0x30 => datacnt: ReadOnly<u32>),
        (0x34 => status: ReadOnly<u32>),
        (0x38 => clear: WriteOnly<u32>),
        (0x3c => mask0: ReadWrite<u32>),
        (0x40 => mask1: ReadWrite<u32>),
        (0x44 => _reserved0),
        (0x48 => fifocnt: ReadOnly<u32>),
        (0x4c => _reserved1),
        (0x80 => fifo: ReadWrite<u32>),
        (0x84 => @END),
    }
}

/// The registers the driver uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    Power,
    Clock,
    Argument,
    Command,
    /// RESPONSE0-3.
    Response(usize),
    DataTimer,
    DataLength,
    DataCtrl,
    Status,
    Clear,
    Mask0,
    Mask1,
    FifoCnt,
    Fifo,
}

/// One 32-bit access at a time to the controller.
pub trait Bus {
    /// Reads `register` (reading STATUS or the FIFO may move data).
    fn read(&self, register: Register) -> u32;
    /// Writes `value` to `register` (writing COMMAND with
    /// [`command::ENABLE`] sends the command).
    fn write(&self, register: Register, value: u32);
}

/// The controller's register block in the Hyp map.
#[derive(Debug)]
pub struct Mmio {
    registers: StaticRef<Pl181Registers>,
}

impl Mmio {
    /// The block at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be a PL181's register block, mapped as device memory for
    /// as long as this exists, and driven by nothing else.
    pub const unsafe fn new(base: usize) -> Mmio {
        Mmio {
            // SAFETY: the caller promises `base` is the mapped block.
            registers: unsafe { StaticRef::new(base as *const Pl181Registers) },
        }
    }
}

impl Bus for Mmio {
    fn read(&self, register: Register) -> u32 {
        let r = &self.registers;
        match register {
            Register::Power => r.power.get(),
            Register::Clock => r.clock.get(),
            Register::Argument => r.argument.get(),
            Register::Command => r.command.get(),
            Register::Response(index) => r.response[index & 3].get(),
            Register::DataTimer => r.datatimer.get(),
            Register::DataLength => r.datalength.get(),
            Register::DataCtrl => r.datactrl.get(),
            Register::Status => r.status.get(),
            Register::Clear => 0,
            Register::Mask0 => r.mask0.get(),
            Register::Mask1 => r.mask1.get(),
            Register::FifoCnt => r.fifocnt.get(),
            Register::Fifo => r.fifo.get(),
        }
    }

    fn write(&self, register: Register, value: u32) {
        let r = &self.registers;
        match register {
            Register::Power => r.power.set(value),
            Register::Clock => r.clock.set(value),
            Register::Argument => r.argument.set(value),
            Register::Command => r.command.set(value),
            Register::DataTimer => r.datatimer.set(value),
            Register::DataLength => r.datalength.set(value),
            Register::DataCtrl => r.datactrl.set(value),
            Register::Clear => r.clear.set(value),
            Register::Mask0 => r.mask0.set(value),
            Register::Mask1 => r.mask1.set(value),
            Register::Fifo => r.fifo.set(value),
            Register::Response(_) | Register::Status | Register::FifoCnt => {}
        }
    }
}

/// COMMAND bits.
pub mod command {
    /// The command index, bits 5:0.
    pub const INDEX: u32 = 0x3f;
    /// A response is expected.
    pub const RESPONSE: u32 = 1 << 6;
    /// The response is long (136 bits: R2).
    pub const LONG_RESPONSE: u32 = 1 << 7;
    /// Send the command.
    pub const ENABLE: u32 = 1 << 10;
}

/// DATACTRL bits.
pub mod data_control {
    /// Start the data path.
    pub const ENABLE: u32 = 1 << 0;
    /// From the card to the controller (a read).
    pub const FROM_CARD: u32 = 1 << 1;
    /// log2 of the block size, bits 7:4 (9: 512 bytes).
    pub const BLOCK_512: u32 = 9 << 4;
}

/// POWER values.
pub mod power {
    /// Power control: on.
    pub const ON: u32 = 0b11;
    /// Output voltage 3.3 V (the voltage field, bits 5:2).
    pub const VOLTAGE_3V3: u32 = 0xf << 2;
}

/// CLOCK bits.
pub mod clock {
    /// The card bus clock is on.
    pub const ENABLE: u32 = 1 << 8;
    /// The divider for the identification phase (at most 400 kHz from a
    /// reference of up to 100 MHz).
    pub const IDENTIFICATION_DIVIDER: u32 = 0x7f;
    /// The divider for data transfer.
    pub const TRANSFER_DIVIDER: u32 = 0x01;
}

/// STATUS bits.
pub mod status {
    pub const CMD_CRC_FAIL: u32 = 1 << 0;
    pub const DATA_CRC_FAIL: u32 = 1 << 1;
    pub const CMD_TIMEOUT: u32 = 1 << 2;
    pub const DATA_TIMEOUT: u32 = 1 << 3;
    pub const TX_UNDERRUN: u32 = 1 << 4;
    pub const RX_OVERRUN: u32 = 1 << 5;
    pub const CMD_RESPONSE_END: u32 = 1 << 6;
    pub const CMD_SENT: u32 = 1 << 7;
    pub const DATA_END: u32 = 1 << 8;
    pub const DATA_BLOCK_END: u32 = 1 << 10;
    pub const CMD_ACTIVE: u32 = 1 << 11;
    pub const TX_FIFO_FULL: u32 = 1 << 16;
    pub const RX_DATA_AVAILABLE: u32 = 1 << 21;
    /// The static bits CLEAR clears.
    pub const STATIC: u32 = 0x7ff;
    /// Data path errors.
    pub const DATA_ERRORS: u32 = DATA_CRC_FAIL | DATA_TIMEOUT | TX_UNDERRUN | RX_OVERRUN;
}
