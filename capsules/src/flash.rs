// SPDX-License-Identifier: MIT OR Apache-2.0
//! The flash window of a VM with a firmware: a ROM bank and a CFI flash bank.
//!
//! The guest platform's flash window (`hyp::guest_platform::FLASH`, IPA
//! 0 to 0x0800_0000) holds two banks of 64 MiB, where QEMU's `virt` has its
//! two CFI flash banks (Intel/Sharp command set, two 16-bit devices side by
//! side on a 32-bit bus, 256 KiB blocks):
//!
//! | IPA | what the guest sees |
//! |---|---|
//! | 0x0000_0000 up | bank 0: the firmware, mapped read-only and executable in the VM's stage 2 (its pages, 2 MiB blocks) |
//! | past the firmware's pages to 0x03ff_ffff | all ones (erased flash), from this device |
//! | 0x0400_0000-0x041f_ffff | bank 1's store: 2 MiB of the VM's pool slice ([`FlashBank`]), mapped read-only while the bank is in read-array mode |
//! | 0x0420_0000-0x07ff_ffff | the rest of bank 1: reads all ones in read-array mode, from this device |
//!
//! **Bank 0 is a ROM.** The firmware runs from it, so it never leaves
//! read-array mode: a store to it (a permission fault on its pages, which
//! the board translates to an address, or an emulated store past them) is
//! dropped and the guest carries on. A CFI probe of bank 0 reads the
//! firmware's own bytes back and finds no flash there.
//!
//! **Bank 1 is a writable CFI flash**, the firmware's variable or
//! environment store. In read-array mode the guest reads the store straight
//! from memory (firmware reads flash with `ldm` and post-indexed loads,
//! which give the hypervisor no syndrome to emulate); the first store to
//! the bank is a command, and any command but read array takes the store's
//! mapping away ([`FlashBank::set_mapped`]) so that every access reaches
//! this device until the guest writes read array (0xFF) again. The
//! commands, as EDK2's NorFlashDxe and U-Boot's CFI driver issue them (the
//! command is the low byte of the value; a 32-bit store carries the same
//! command for both 16-bit devices):
//!
//! | command | effect | reads afterwards |
//! |---|---|---|
//! | 0xFF | read array | the store |
//! | 0x70 | read status | status |
//! | 0x50 | clear status (errors) | as before |
//! | 0x98 | CFI query | the CFI table (below) |
//! | 0x90 | read identifier: manufacturer 0x89, device 0x18, the block's lock bit | identifier |
//! | 0x20, then 0xD0 in the block | block erase: the block reads all ones | status |
//! | 0x40 or 0x10, then the data | word program: the data is ANDed into the store (bits only go from 1 to 0, as in flash) | status |
//! | 0xE8, then N-1, then N data stores, then 0xD0 | buffered program of up to 512 stores inside one 2 KiB-aligned window, written at the confirm | status (bit 7: buffer ready) |
//! | 0x60, then 0x01 / 0xD0 / 0x2F | block lock / unlock / lock-down (kept as lock) | status |
//!
//! Status reads give `0x80` (ready) with error bits: 0x10 program error,
//! 0x20 erase error, both (0x30) for a bad command sequence, 0x02 for an
//! operation on a locked block. They stay until clear status (0x50). Every
//! other command, a confirm that is not 0xD0, a buffer count over 512, a
//! buffer store outside the window, or a program of zero bits past the
//! store's 2 MiB (which reads all ones and cannot keep anything) sets the
//! error bits and changes nothing else. Blocks start unlocked (as QEMU's);
//! a locked block refuses erase and program until it is unlocked.
//!
//! The CFI table (query mode, entry `n` read at `n * 4`, both devices'
//! bytes in a 32-bit load) is QEMU `pflash_cfi01`'s for this bank: `QRY`,
//! command set 0x0001 with its extended table at 0x31 (`PRI` 1.0), 32 MiB
//! per device (2^0x19), a 2^0x0A-byte write buffer per device, one erase
//! region of 256 blocks of 128 KiB per device (256 KiB per bank).
//!
//! The store lives as long as the VM: a restart (`reset`) puts the bank
//! back in read-array mode with its locks cleared and keeps its contents;
//! power off loses them (the board loads the bank's initial contents
//! again on the next power on).
//!
//! ```
//! use capsules::flash::FlashWindow;
//! use core::cell::Cell;
//! use hyp::dispatch::MmioDevice;
//! use hyp::hil::flash::FlashBank;
//! use hyp::trap::AccessSize;
//! struct Bank(Vec<Cell<u8>>, Cell<bool>);
//! impl FlashBank for Bank {
//!     fn memory(&self) -> &[Cell<u8>] { &self.0 }
//!     fn set_mapped(&self, mapped: bool) { self.1.set(mapped) }
//!     fn written(&self, _offset: usize, _len: usize) {}
//! }
//! let bank = Bank((0..0x4_0000).map(|_| Cell::new(0xff)).collect(), Cell::new(true));
//! let flash = FlashWindow::new(&bank);
//! flash.write(0x0400_0000, AccessSize::Word, 0x0040_0040).unwrap(); // word program
//! assert!(!bank.1.get(), "the bank traps while in a command mode");
//! flash.write(0x0400_0000, AccessSize::Word, 0x1234_5678).unwrap();
//! assert_eq!(flash.read(0x0400_0000, AccessSize::Word), Ok(0x0080_0080)); // ready
//! flash.write(0x0400_0000, AccessSize::Word, 0x00ff_00ff).unwrap(); // read array
//! assert!(bank.1.get());
//! assert_eq!(flash.read(0x0400_0000, AccessSize::Word), Ok(0x1234_5678));
//! ```

use core::cell::Cell;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::{GuestDevice, FLASH, FLASH_BANK_BYTES};
use hyp::hil::flash::FlashBank;
use hyp::trap::AccessSize;

/// The device's row of the guest platform.
pub const ROW: GuestDevice = FLASH;

/// Bytes of bank 1 backed by the VM's pool slice (the rest reads erased).
pub const STORE_BYTES: u32 = hyp::config::ERASED_BANK_BYTES;

/// Bytes of one erase block of the bank (two devices' 128 KiB blocks).
pub const BLOCK_BYTES: u32 = 0x0004_0000;

/// Blocks in one bank.
const BLOCKS: u32 = FLASH_BANK_BYTES / BLOCK_BYTES;

/// Bytes of the write buffer of the bank (two devices' 1 KiB buffers).
pub const BUFFER_BYTES: usize = 2048;

/// The most data stores one buffered program takes (32-bit stores filling
/// the buffer); the count the guest writes is this minus one at most.
pub const BUFFER_STORES: u32 = (BUFFER_BYTES / 4) as u32;

/// Status register bits.
mod status {
    /// The device is ready (always: operations complete at once).
    pub const READY: u8 = 0x80;
    /// Erase failed.
    pub const ERASE_ERROR: u8 = 0x20;
    /// Program failed.
    pub const PROGRAM_ERROR: u8 = 0x10;
    /// Both: an invalid command sequence.
    pub const SEQUENCE_ERROR: u8 = ERASE_ERROR | PROGRAM_ERROR;
    /// The operation met a locked block.
    pub const LOCKED: u8 = 0x02;
}

/// What reads of bank 1 return and what the next store means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Reads give the store.
    ReadArray,
    /// Reads give the status.
    Status,
    /// Reads give the CFI table.
    Query,
    /// Reads give the identifier codes.
    Identifier,
    /// The next store is data to program.
    Program,
    /// The next store must confirm (0xD0) an erase.
    Erase,
    /// The next store sets a lock bit (0x01, 0xD0, 0x2F).
    Lock,
    /// The next store is the buffered program's count.
    BufferCount,
    /// `remaining` more data stores for the buffer at `window`, having
    /// written bytes `low..high` of it.
    BufferData {
        window: u32,
        remaining: u32,
        low: usize,
        high: usize,
    },
    /// The next store must confirm (0xD0) the buffered program.
    BufferConfirm {
        window: u32,
        low: usize,
        high: usize,
    },
}

/// The flash window's device: bank 0 a ROM, bank 1 a CFI flash over
/// `bank`'s memory.
pub struct FlashWindow<'a> {
    bank: &'a dyn FlashBank,
    mode: Cell<Mode>,
    status: Cell<u8>,
    /// Whether the store is mapped (the board's state, as last set).
    mapped: Cell<bool>,
    /// Lock bits, one per block.
    locks: [Cell<u32>; (BLOCKS / 32) as usize],
    /// The buffered program's data, all ones where not written.
    buffer: [Cell<u8>; BUFFER_BYTES],
}

impl core::fmt::Debug for FlashWindow<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlashWindow")
            .field("mode", &self.mode.get())
            .field("status", &self.status.get())
            .finish()
    }
}

impl<'a> FlashWindow<'a> {
    /// The device, its second bank stored in `bank`'s memory (mapped into
    /// the VM when the device is made: read-array mode).
    pub fn new(bank: &'a dyn FlashBank) -> FlashWindow<'a> {
        FlashWindow {
            bank,
            mode: Cell::new(Mode::ReadArray),
            status: Cell::new(status::READY),
            mapped: Cell::new(true),
            locks: [const { Cell::new(0) }; (BLOCKS / 32) as usize],
            buffer: [const { Cell::new(0xff) }; BUFFER_BYTES],
        }
    }

    /// Bytes of bank 1 kept in memory: the store, at most [`STORE_BYTES`].
    fn store_bytes(&self) -> usize {
        self.bank.memory().len().min(STORE_BYTES as usize)
    }

    fn locked(&self, block: u32) -> bool {
        self.locks[(block / 32) as usize].get() & (1 << (block % 32)) != 0
    }

    fn set_lock(&self, block: u32, locked: bool) {
        let cell = &self.locks[(block / 32) as usize];
        let bit = 1 << (block % 32);
        cell.set(if locked {
            cell.get() | bit
        } else {
            cell.get() & !bit
        });
    }

    fn fail(&self, bits: u8) {
        self.status.set(self.status.get() | bits);
        self.mode.set(Mode::Status);
    }

    /// Bank 1's byte at `offset` in read-array mode.
    fn array_byte(&self, offset: usize) -> u8 {
        self.bank.memory()[..self.store_bytes()]
            .get(offset)
            .map_or(0xff, Cell::get)
    }

    /// ANDs `data` into the store at `offset`: false (nothing written)
    /// when a zero bit falls past the store.
    fn program(&self, offset: usize, data: &[u8]) -> bool {
        let store = &self.bank.memory()[..self.store_bytes()];
        let kept = store.len().saturating_sub(offset).min(data.len());
        if data[kept..].iter().any(|&byte| byte != 0xff) {
            return false;
        }
        for (cell, &byte) in store[offset.min(store.len())..].iter().zip(&data[..kept]) {
            cell.set(cell.get() & byte);
        }
        if kept > 0 {
            self.bank.written(offset, kept);
        }
        true
    }

    fn erase(&self, block: u32) {
        let start = (block * BLOCK_BYTES) as usize;
        let store = &self.bank.memory()[..self.store_bytes()];
        if start < store.len() {
            let end = (start + BLOCK_BYTES as usize).min(store.len());
            for cell in &store[start..end] {
                cell.set(0xff);
            }
            self.bank.written(start, end - start);
        }
    }

    /// A store of `value` (`size` bytes) at `offset` into bank 1.
    fn bank1_write(&self, offset: u32, size: AccessSize, value: u32) {
        let command = value as u8;
        let block = offset / BLOCK_BYTES;
        let bytes = &value.to_le_bytes()[..size.bytes() as usize];
        match self.mode.get() {
            Mode::Program => {
                if self.locked(block) {
                    self.fail(status::PROGRAM_ERROR | status::LOCKED);
                } else if !self.program(offset as usize, bytes) {
                    self.fail(status::PROGRAM_ERROR);
                } else {
                    self.mode.set(Mode::Status);
                }
            }
            Mode::Erase if command == 0xd0 => {
                if self.locked(block) {
                    self.fail(status::ERASE_ERROR | status::LOCKED);
                } else {
                    self.erase(block);
                    self.mode.set(Mode::Status);
                }
            }
            Mode::Lock if matches!(command, 0x01 | 0x2f | 0xd0) => {
                self.set_lock(block, command != 0xd0);
                self.mode.set(Mode::Status);
            }
            Mode::BufferCount => {
                // The count of 16-bit words per device, less one: both
                // devices take one word from each 32-bit store.
                let stores = (value & 0xffff) + 1;
                if stores > BUFFER_STORES {
                    self.fail(status::SEQUENCE_ERROR);
                } else {
                    for cell in &self.buffer {
                        cell.set(0xff);
                    }
                    self.mode.set(Mode::BufferData {
                        window: offset & !(BUFFER_BYTES as u32 - 1),
                        remaining: stores,
                        low: BUFFER_BYTES,
                        high: 0,
                    });
                }
            }
            Mode::BufferData {
                window,
                remaining,
                low,
                high,
            } => {
                // The window is set by the first data store.
                let window = if high == 0 {
                    offset & !(BUFFER_BYTES as u32 - 1)
                } else {
                    window
                };
                let start = offset.wrapping_sub(window) as usize;
                if start + bytes.len() > BUFFER_BYTES {
                    self.fail(status::SEQUENCE_ERROR);
                    return;
                }
                for (cell, &byte) in self.buffer[start..].iter().zip(bytes) {
                    cell.set(byte);
                }
                let (low, high) = (low.min(start), high.max(start + bytes.len()));
                self.mode.set(if remaining <= 1 {
                    Mode::BufferConfirm { window, low, high }
                } else {
                    Mode::BufferData {
                        window,
                        remaining: remaining - 1,
                        low,
                        high,
                    }
                });
            }
            Mode::BufferConfirm { window, low, high } if command == 0xd0 => {
                let data: [u8; BUFFER_BYTES] = core::array::from_fn(|i| self.buffer[i].get());
                if self.locked(window / BLOCK_BYTES) {
                    self.fail(status::PROGRAM_ERROR | status::LOCKED);
                } else if !self.program(window as usize + low, &data[low..high]) {
                    self.fail(status::PROGRAM_ERROR);
                } else {
                    self.mode.set(Mode::Status);
                }
            }
            Mode::Erase | Mode::Lock | Mode::BufferConfirm { .. } => {
                self.fail(status::SEQUENCE_ERROR);
            }
            Mode::ReadArray | Mode::Status | Mode::Query | Mode::Identifier => {
                self.command(command);
            }
        }
    }

    /// A command written in one of the read modes.
    fn command(&self, command: u8) {
        let mode = match command {
            0xff => Mode::ReadArray,
            0x70 => Mode::Status,
            0x50 => {
                self.status.set(status::READY);
                self.mode.get()
            }
            0x98 => Mode::Query,
            0x90 => Mode::Identifier,
            0x40 | 0x10 => Mode::Program,
            0x20 => Mode::Erase,
            0x60 => Mode::Lock,
            0xe8 => Mode::BufferCount,
            _ => {
                self.fail(status::SEQUENCE_ERROR);
                return;
            }
        };
        self.mode.set(mode);
    }

    /// Maps or unmaps the store to match the mode.
    fn follow_mode(&self) {
        let mapped = self.mode.get() == Mode::ReadArray;
        if mapped != self.mapped.get() {
            self.bank.set_mapped(mapped);
            self.mapped.set(mapped);
        }
    }

    /// Bank 1's answer for a read of `size` at `offset`.
    fn bank1_read(&self, offset: u32, size: AccessSize) -> u32 {
        let per_device = |byte: u8| -> u32 {
            let byte = byte as u32;
            match size {
                AccessSize::Word => byte | byte << 16,
                _ => byte,
            }
        };
        let index = (offset >> 2) as usize;
        match self.mode.get() {
            Mode::ReadArray => (0..size.bytes() as usize).fold(0, |value, i| {
                value | (self.array_byte(offset as usize + i) as u32) << (8 * i)
            }),
            Mode::Query => per_device(cfi_entry(index)),
            Mode::Identifier => per_device(match index % (BLOCK_BYTES as usize / 4) {
                0 => MANUFACTURER,
                1 => DEVICE,
                2 => self.locked(offset / BLOCK_BYTES) as u8,
                _ => 0,
            }),
            _ => per_device(self.status.get()),
        }
    }
}

/// Intel's manufacturer code, as QEMU's `virt` reports it.
const MANUFACTURER: u8 = 0x89;
/// The device code QEMU's `virt` reports.
const DEVICE: u8 = 0x18;

/// Entry `index` of the CFI table of one 16-bit device of the bank.
fn cfi_entry(index: usize) -> u8 {
    const TABLE: [u8; 0x40] = {
        let mut table = [0u8; 0x40];
        // "QRY", the Intel/Sharp command set, its extended table at 0x31.
        table[0x10] = b'Q';
        table[0x11] = b'R';
        table[0x12] = b'Y';
        table[0x13] = 0x01;
        table[0x15] = 0x31;
        // Voltages: Vcc 4.5-5.5 V, no Vpp.
        table[0x1b] = 0x45;
        table[0x1c] = 0x55;
        // Typical timeouts: word 2^7 us, buffer 2^7 us, block 2^10 ms;
        // maximum: 2^4 times those.
        table[0x1f] = 0x07;
        table[0x20] = 0x07;
        table[0x21] = 0x0a;
        table[0x23] = 0x04;
        table[0x24] = 0x04;
        table[0x25] = 0x04;
        // 2^25 bytes per device, x8/x16 interface, 2^10-byte buffer.
        table[0x27] = 0x19;
        table[0x28] = 0x02;
        table[0x2a] = 0x0a;
        // One erase region: 256 blocks of 512 * 256 bytes.
        table[0x2c] = 0x01;
        table[0x2d] = (BLOCKS - 1) as u8;
        table[0x2e] = ((BLOCKS - 1) >> 8) as u8;
        table[0x2f] = ((BLOCK_BYTES / 2 / 256) & 0xff) as u8;
        table[0x30] = ((BLOCK_BYTES / 2 / 256) >> 8) as u8;
        // The primary extended table: "PRI" 1.0, no optional features.
        table[0x31] = b'P';
        table[0x32] = b'R';
        table[0x33] = b'I';
        table[0x34] = b'1';
        table[0x35] = b'0';
        table
    };
    TABLE.get(index).copied().unwrap_or(0)
}

impl MmioDevice for FlashWindow<'_> {
    fn name(&self) -> &'static str {
        ROW.name
    }

    fn base(&self) -> u64 {
        ROW.base as u64
    }

    fn size(&self) -> u64 {
        ROW.size as u64
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        if size == AccessSize::Doubleword {
            return Err(MmioError::BadSize);
        }
        match offset.checked_sub(FLASH_BANK_BYTES as u64) {
            Some(offset) => Ok(self.bank1_read(offset as u32, size)),
            // Bank 0 past the firmware's pages: erased.
            None => Ok(u32::MAX >> (32 - 8 * size.bytes())),
        }
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        if size == AccessSize::Doubleword {
            return Err(MmioError::BadSize);
        }
        // Bank 0 is a ROM: stores are dropped.
        if let Some(offset) = offset.checked_sub(FLASH_BANK_BYTES as u64) {
            self.bank1_write(offset as u32, size, value);
            self.follow_mode();
        }
        Ok(())
    }

    fn changes_interrupts(&self, _offset: u64, _write: bool) -> bool {
        false
    }

    /// Back to read-array mode with every block unlocked and no error;
    /// the store keeps its contents.
    fn reset(&self) -> Result<(), NotResettable> {
        self.mode.set(Mode::ReadArray);
        self.status.set(status::READY);
        for cell in &self.locks {
            cell.set(0);
        }
        self.follow_mode();
        Ok(())
    }

    fn drops_read_only_stores(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
