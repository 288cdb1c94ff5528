// SPDX-License-Identifier: MIT OR Apache-2.0
//! The flash window's CFI commands, one sequence at a time, on the host.

extern crate std;

use super::*;
use hyp::dispatch::{dispatch, Action, GuestRegisters, HypercallDriver, Routes};
use hyp::trap::{FaultKind, GuestExit, Trap};
use std::vec::Vec;

/// A bank of `STORE_BYTES` in a vector, counting its mapping changes and
/// remembering what was reported written.
struct Bank {
    memory: Vec<Cell<u8>>,
    mapped: Cell<bool>,
    switches: Cell<u32>,
    written: Cell<Option<(usize, usize)>>,
}

impl Bank {
    fn new() -> Bank {
        Bank {
            memory: (0..STORE_BYTES).map(|_| Cell::new(0xff)).collect(),
            mapped: Cell::new(true),
            switches: Cell::new(0),
            written: Cell::new(None),
        }
    }

    fn bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        self.memory[offset..offset + len]
            .iter()
            .map(Cell::get)
            .collect()
    }
}

impl FlashBank for Bank {
    fn memory(&self) -> &[Cell<u8>] {
        &self.memory
    }
    fn set_mapped(&self, mapped: bool) {
        assert_ne!(mapped, self.mapped.get(), "a switch that changes nothing");
        self.mapped.set(mapped);
        self.switches.set(self.switches.get() + 1);
    }
    fn written(&self, offset: usize, len: usize) {
        assert!(offset + len <= self.memory.len());
        self.written.set(Some((offset, len)));
    }
}

/// Bank 1's base in the window.
const BANK1: u64 = FLASH_BANK_BYTES as u64;

/// A 32-bit store of `command` to both devices at bank-1 offset `offset`.
fn command(flash: &FlashWindow<'_>, offset: u64, command: u8) {
    let value = command as u32 | (command as u32) << 16;
    flash
        .write(BANK1 + offset, AccessSize::Word, value)
        .unwrap();
}

fn read(flash: &FlashWindow<'_>, offset: u64) -> u32 {
    flash.read(BANK1 + offset, AccessSize::Word).unwrap()
}

fn status(flash: &FlashWindow<'_>) -> u32 {
    command(flash, 0, 0x70);
    read(flash, 0)
}

const READY: u32 = 0x0080_0080;

#[test]
fn word_program_ands_into_the_store_and_status_reports_ready() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    command(&flash, 0x100, 0x40);
    assert!(!bank.mapped.get(), "unmapped in a command mode");
    flash
        .write(BANK1 + 0x100, AccessSize::Word, 0xdead_beef)
        .unwrap();
    assert_eq!(read(&flash, 0x100), READY, "status after program");
    assert_eq!(bank.bytes(0x100, 4), [0xef, 0xbe, 0xad, 0xde]);
    assert_eq!(bank.written.get(), Some((0x100, 4)));
    // Flash only clears bits: programming 0xff00_ff00 over it keeps the zeros.
    command(&flash, 0x100, 0x10);
    flash
        .write(BANK1 + 0x100, AccessSize::Word, 0xff00_ff00)
        .unwrap();
    command(&flash, 0, 0xff);
    assert!(bank.mapped.get(), "mapped again in read-array mode");
    assert_eq!(bank.switches.get(), 2, "one unmap, one map");
    assert_eq!(read(&flash, 0x100), 0xde00_be00);
    // Halfword and byte reads in read-array mode.
    assert_eq!(flash.read(BANK1 + 0x102, AccessSize::Halfword), Ok(0xde00));
    assert_eq!(flash.read(BANK1 + 0x101, AccessSize::Byte), Ok(0xbe));
}

#[test]
fn block_erase_fills_one_block_with_ones() {
    let bank = Bank::new();
    for cell in &bank.memory {
        cell.set(0);
    }
    let flash = FlashWindow::new(&bank);
    let block = BLOCK_BYTES as u64;
    command(&flash, block, 0x20);
    command(&flash, block + 0x40, 0xd0);
    assert_eq!(read(&flash, block), READY);
    assert_eq!(
        bank.written.get(),
        Some((block as usize, BLOCK_BYTES as usize))
    );
    assert!(bank
        .bytes(block as usize, BLOCK_BYTES as usize)
        .iter()
        .all(|&b| b == 0xff));
    assert_eq!(bank.bytes(block as usize - 1, 1), [0]);
    assert_eq!(bank.bytes(2 * block as usize, 1), [0]);
    // An erase not confirmed: a sequence error, nothing erased.
    command(&flash, 0, 0x20);
    command(&flash, 0, 0xff);
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
    assert_eq!(bank.bytes(0, 1), [0]);
}

#[test]
fn buffered_program_writes_at_the_confirm() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    // As U-Boot does: setup and count at the block, data at the target.
    command(&flash, 0, 0xe8);
    assert_eq!(read(&flash, 0), READY, "buffer available");
    command(&flash, 0, 3); // four stores
    for (i, word) in [0x1111_1111u32, 0x2222_2222, 0x3333_3333, 0x4444_4444]
        .iter()
        .enumerate()
    {
        flash
            .write(BANK1 + 0x810 + 4 * i as u64, AccessSize::Word, *word)
            .unwrap();
        assert_eq!(bank.bytes(0x810, 1), [0xff], "nothing before the confirm");
    }
    command(&flash, 0x810, 0xd0);
    assert_eq!(read(&flash, 0), READY);
    assert_eq!(bank.written.get(), Some((0x810, 16)));
    command(&flash, 0, 0xff);
    assert_eq!(read(&flash, 0x814), 0x2222_2222);
    assert_eq!(read(&flash, 0x81c), 0x4444_4444);
    assert_eq!(read(&flash, 0x820), u32::MAX);

    // A count past the buffer, a store outside the window, or a confirm
    // that is not 0xd0: a sequence error, nothing written.
    command(&flash, 0, 0xe8);
    flash
        .write(BANK1, AccessSize::Word, BUFFER_STORES | BUFFER_STORES << 16)
        .unwrap();
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
    command(&flash, 0, 0x50);
    command(&flash, 0, 0xe8);
    command(&flash, 0, 1);
    flash.write(BANK1 + 0x7fc, AccessSize::Word, 0).unwrap();
    flash.write(BANK1 + 0x800, AccessSize::Word, 0).unwrap();
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
    command(&flash, 0, 0x50);
    command(&flash, 0, 0xe8);
    command(&flash, 0, 0);
    flash.write(BANK1 + 0x900, AccessSize::Word, 0).unwrap();
    command(&flash, 0x900, 0xff);
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
    command(&flash, 0, 0xff);
    assert_eq!(read(&flash, 0x7fc), u32::MAX);
    assert_eq!(read(&flash, 0x900), u32::MAX);
}

#[test]
fn status_errors_stay_until_cleared() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    assert_eq!(status(&flash), READY);
    command(&flash, 0, 0xd0); // a confirm with nothing to confirm
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
    command(&flash, 0, 0x42); // not a command
    assert_eq!(status(&flash), 0x00b0_00b0);
    command(&flash, 0, 0x50);
    assert_eq!(read(&flash, 0), READY, "cleared, still in status mode");
    // Halfword and byte status reads give one device's status.
    assert_eq!(flash.read(BANK1, AccessSize::Halfword), Ok(0x80));
    assert_eq!(flash.read(BANK1 + 3, AccessSize::Byte), Ok(0x80));
    assert_eq!(
        flash.read(BANK1, AccessSize::Doubleword),
        Err(MmioError::BadSize)
    );
}

#[test]
fn cfi_query_answers_as_qemus_pflash_cfi01_for_virt() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    command(&flash, 0x55 * 4, 0x98);
    let entry = |n: u64| read(&flash, n * 4);
    assert_eq!(
        [entry(0x10), entry(0x11), entry(0x12)],
        [0x0051_0051, 0x0052_0052, 0x0059_0059]
    );
    assert_eq!(entry(0x13), 0x0001_0001, "Intel/Sharp command set");
    assert_eq!(entry(0x27), 0x0019_0019, "32 MiB per device");
    assert_eq!(entry(0x2a), 0x000a_000a, "1 KiB buffer per device");
    assert_eq!(entry(0x2c), 0x0001_0001, "one erase region");
    let blocks = (entry(0x2d) & 0xff) | (entry(0x2e) & 0xff) << 8;
    let block = ((entry(0x2f) & 0xff) | (entry(0x30) & 0xff) << 8) * 256;
    // Two devices: the bank's geometry is twice each device's.
    assert_eq!((blocks + 1) * block * 2, FLASH_BANK_BYTES);
    assert_eq!(block * 2, BLOCK_BYTES);
    assert_eq!(
        [entry(0x31), entry(0x32), entry(0x33)],
        [0x0050_0050, 0x0052_0052, 0x0049_0049]
    );
    assert_eq!(entry(0x1000), 0, "past the table");
    assert_eq!(flash.read(BANK1 + 0x40, AccessSize::Halfword), Ok(0x51));
    command(&flash, 0, 0xff);
    assert_eq!(read(&flash, 0x40), u32::MAX, "the store again");
}

#[test]
fn read_identifier_and_block_locks() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    let block = BLOCK_BYTES as u64;
    command(&flash, 0, 0x90);
    assert_eq!(read(&flash, 0), 0x0089_0089);
    assert_eq!(read(&flash, 4), 0x0018_0018);
    assert_eq!(read(&flash, block + 8), 0, "unlocked");
    // Lock block 1: erase and program there fail, block 0 still works.
    command(&flash, block, 0x60);
    command(&flash, block, 0x01);
    command(&flash, 0, 0x90);
    assert_eq!(read(&flash, block + 8), 0x0001_0001, "locked");
    assert_eq!(read(&flash, 8), 0);
    command(&flash, block, 0x20);
    command(&flash, block, 0xd0);
    assert_eq!(read(&flash, 0), 0x00a2_00a2, "erase error, locked");
    command(&flash, 0, 0x50);
    command(&flash, block, 0x40);
    flash.write(BANK1 + block, AccessSize::Word, 0).unwrap();
    assert_eq!(read(&flash, 0), 0x0092_0092, "program error, locked");
    assert_eq!(bank.bytes(block as usize, 4), [0xff; 4]);
    command(&flash, 0, 0x50);
    command(&flash, 0, 0x40);
    flash.write(BANK1, AccessSize::Word, 0).unwrap();
    assert_eq!(read(&flash, 0), READY);
    // Unlock, then the program goes through; a bad lock confirm fails.
    command(&flash, block, 0x60);
    command(&flash, block, 0xd0);
    command(&flash, block, 0x40);
    flash.write(BANK1 + block, AccessSize::Word, 0).unwrap();
    assert_eq!(read(&flash, 0), READY);
    assert_eq!(bank.bytes(block as usize, 4), [0; 4]);
    command(&flash, block, 0x60);
    command(&flash, block, 0x20);
    assert_eq!(read(&flash, 0), 0x00b0_00b0);
}

#[test]
fn past_the_store_reads_erased_and_keeps_nothing() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    let past = STORE_BYTES as u64;
    assert_eq!(read(&flash, past), u32::MAX);
    command(&flash, past, 0x20);
    command(&flash, past, 0xd0);
    assert_eq!(read(&flash, past), READY, "erasing erased bytes works");
    command(&flash, past, 0x40);
    flash
        .write(BANK1 + past, AccessSize::Word, u32::MAX)
        .unwrap();
    assert_eq!(read(&flash, past), READY, "programming ones works");
    command(&flash, past, 0x40);
    flash.write(BANK1 + past, AccessSize::Word, 0).unwrap();
    assert_eq!(read(&flash, past), 0x0090_0090, "zeros cannot be kept");
    // A buffered program past the store keeps nothing either; the
    // store's last word before it is untouched.
    command(&flash, 0, 0x50);
    command(&flash, past, 0xe8);
    command(&flash, past, 1);
    flash
        .write(BANK1 + past + 0x10, AccessSize::Word, u32::MAX)
        .unwrap();
    flash
        .write(BANK1 + past + 0x14, AccessSize::Word, 0)
        .unwrap();
    command(&flash, past, 0xd0);
    assert_eq!(read(&flash, 0), 0x0090_0090);
    command(&flash, 0, 0xff);
    assert_eq!(read(&flash, past + 0x14), u32::MAX);
    assert_eq!(read(&flash, past - 4), u32::MAX);
}

#[test]
fn bank_0_is_a_rom_and_reset_keeps_the_store() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    // A CFI query to bank 0: dropped, it reads erased past the firmware.
    flash
        .write(0x0300_00aa, AccessSize::Halfword, 0x98)
        .unwrap();
    assert_eq!(flash.read(0x0300_0020, AccessSize::Halfword), Ok(0xffff));
    assert_eq!(bank.switches.get(), 0, "bank 1 untouched");
    // Program bank 1, lock a block, leave it in a command mode, reset.
    command(&flash, 0, 0x40);
    flash.write(BANK1, AccessSize::Word, 0x1234_5678).unwrap();
    command(&flash, 0, 0x60);
    command(&flash, 0, 0x01);
    command(&flash, 0, 0x42);
    assert!(!bank.mapped.get());
    assert_eq!(flash.reset(), Ok(()));
    assert!(bank.mapped.get(), "reset maps the store again");
    assert_eq!(read(&flash, 0), 0x1234_5678, "the store survives");
    assert_eq!(status(&flash), READY, "errors forgotten");
    command(&flash, 0, 0x90);
    assert_eq!(read(&flash, 8), 0, "locks forgotten");
    assert!(!flash.changes_interrupts(0, true));
    assert_eq!((flash.base(), flash.size()), (0, 0x0800_0000));
}

#[derive(Default)]
struct Registers {
    r: [u32; 15],
    pc: u32,
}

impl GuestRegisters for Registers {
    fn register(&self, n: u8) -> u32 {
        self.r[n as usize]
    }
    fn set_register(&mut self, n: u8, value: u32) {
        self.r[n as usize] = value;
    }
    fn pc(&self) -> u32 {
        self.pc
    }
    fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
    }
}

#[test]
fn stores_without_a_syndrome_are_dropped_and_emulated_ones_are_commands() {
    let bank = Bank::new();
    let flash = FlashWindow::new(&bank);
    let devices: [&dyn MmioDevice; 1] = [&flash];
    let services: [&dyn HypercallDriver; 0] = [];
    let routes = Routes::new(&devices, &services).unwrap();
    let mut registers = Registers {
        pc: 0x4000_1000,
        ..Default::default()
    };
    let run = |trap, registers: &mut Registers| {
        dispatch(
            &GuestExit {
                trap,
                instruction_bytes: 4,
            },
            registers,
            &routes,
        )
    };
    // `stm` to the mapped store: a permission fault with no syndrome and
    // no address: dropped.
    let store = Trap::DataAbort {
        va: 0x0400_0000,
        ipa: None,
        write: true,
        kind: FaultKind::Permission { level: 2 },
        stage1_walk: false,
    };
    assert_eq!(run(store, &mut registers), Action::Resume);
    assert_eq!(registers.pc, 0x4000_1004);
    // `str r1, [r0]` of the read-status command (its address found by
    // the board): the bank's mode changes.
    registers.r[1] = 0x0070_0070;
    let status_command = Trap::MmioWrite {
        ipa: 0x0400_0000,
        va: 0x0400_0000,
        size: AccessSize::Word,
        register: 1,
    };
    assert_eq!(run(status_command, &mut registers), Action::Resume);
    let load = Trap::MmioRead {
        ipa: 0x0400_0000,
        va: 0x0400_0000,
        size: AccessSize::Word,
        sign_extend: false,
        register: 2,
    };
    assert_eq!(run(load, &mut registers), Action::Resume);
    assert_eq!(registers.r[2], READY);
    assert!(!bank.mapped.get());
}
