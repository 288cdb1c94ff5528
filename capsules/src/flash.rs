// SPDX-License-Identifier: MIT OR Apache-2.0
//! The flash window of a VM with a firmware: two read-only banks.
//!
//! The guest platform's flash window (`hyp::guest_platform::FLASH`, IPA
//! 0 to 0x0800_0000) holds two banks of 64 MiB, where QEMU's `virt` has its
//! two CFI flash banks. Under Capvisor both are read-only memory:
//!
//! | IPA | what the guest sees |
//! |---|---|
//! | 0x0000_0000 up | bank 0: the firmware, mapped read-only and executable in the VM's stage 2 (its pages, 2 MiB blocks) |
//! | past the firmware's pages to 0x03ff_ffff | all ones (erased flash), from this device |
//! | 0x0400_0000-0x041f_ffff | bank 1's first 2 MiB: all ones, mapped read-only (RAM of the VM's pool slice) |
//! | 0x0420_0000-0x07ff_ffff | all ones, from this device |
//!
//! A store anywhere in the window is dropped and the guest carries on, as
//! a ROM ignores writes: to the mapped parts it is a stage-2 permission
//! fault, which this device owns ([`MmioDevice::drops_read_only_stores`];
//! the CPU reports no address for it), elsewhere an emulated store this
//! device ignores. So no CFI command is answered: a probe writes its query
//! command, reads back memory without `QRY`, and finds no flash.
//!
//! Why bank 1's start is mapped rather than emulated: a firmware reads its
//! environment there with loads the hypervisor cannot emulate (U-Boot's
//! CRC-32 loads words with post-increment, which gives no syndrome), so
//! those reads must hit memory. Answering CFI commands as well would need
//! the bank unmapped while in a command mode and the address of a store to
//! a read-only page (the CPU gives none for a permission fault): not done.
//! What a firmware sees: U-Boot prints `Flash: 0 Bytes`, loads its default
//! environment (the erased bank fails its CRC), and `saveenv` fails
//! cleanly; `flinfo` reports no flash.
//!
//! ```
//! use capsules::flash::FlashWindow;
//! use hyp::dispatch::MmioDevice;
//! use hyp::trap::AccessSize;
//! let flash = FlashWindow::new();
//! flash.write(0x0400_00aa, AccessSize::Halfword, 0x98).unwrap(); // a CFI query: dropped
//! assert_eq!(flash.read(0x0420_0020, AccessSize::Halfword), Ok(0xffff));
//! assert!(flash.drops_read_only_stores());
//! ```

use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::{GuestDevice, FLASH};
use hyp::trap::AccessSize;

/// The device's row of the guest platform.
pub const ROW: GuestDevice = FLASH;

/// Bytes of bank 1 the board maps read-only (all ones) at its start, for
/// the loads that cannot be emulated.
pub const MAPPED_BANK1_BYTES: u32 = 0x0020_0000;

/// The flash window's device: the parts of both banks no stage-2 mapping
/// covers read erased; stores anywhere are dropped.
#[derive(Debug, Default)]
pub struct FlashWindow;

impl FlashWindow {
    /// The device.
    pub const fn new() -> FlashWindow {
        FlashWindow
    }
}

impl MmioDevice for FlashWindow {
    fn name(&self) -> &'static str {
        ROW.name
    }

    fn base(&self) -> u64 {
        ROW.base as u64
    }

    fn size(&self) -> u64 {
        ROW.size as u64
    }

    fn read(&self, _offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        match size {
            AccessSize::Doubleword => Err(MmioError::BadSize),
            size => Ok(u32::MAX >> (32 - 8 * size.bytes())),
        }
    }

    fn write(&self, _offset: u64, size: AccessSize, _value: u32) -> Result<(), MmioError> {
        match size {
            AccessSize::Doubleword => Err(MmioError::BadSize),
            _ => Ok(()),
        }
    }

    fn changes_interrupts(&self, _offset: u64, _write: bool) -> bool {
        false
    }

    /// Nothing to forget: the device keeps no state.
    fn reset(&self) -> Result<(), NotResettable> {
        Ok(())
    }

    fn drops_read_only_stores(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyp::dispatch::{dispatch, Action, GuestRegisters, HypercallDriver, Routes};
    use hyp::trap::{FaultKind, GuestExit, Trap};

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

    fn run(trap: Trap, registers: &mut Registers) -> Action {
        let flash = FlashWindow::new();
        let devices: [&dyn MmioDevice; 1] = [&flash];
        let services: [&dyn HypercallDriver; 0] = [];
        let routes = Routes::new(&devices, &services).unwrap();
        let exit = GuestExit {
            trap,
            instruction_bytes: 4,
        };
        dispatch(&exit, registers, &routes)
    }

    #[test]
    fn unmapped_parts_read_erased_at_every_size() {
        let flash = FlashWindow::new();
        assert_eq!(flash.read(0x0300_0000, AccessSize::Byte), Ok(0xff));
        assert_eq!(flash.read(0x0420_0020, AccessSize::Halfword), Ok(0xffff));
        assert_eq!(flash.read(0x07ff_fffc, AccessSize::Word), Ok(u32::MAX));
        assert_eq!(
            flash.read(0x0420_0000, AccessSize::Doubleword),
            Err(MmioError::BadSize)
        );
        assert_eq!((flash.base(), flash.size()), (0, 0x0800_0000));
        assert_eq!(MAPPED_BANK1_BYTES % 0x0020_0000, 0, "2 MiB blocks");
    }

    #[test]
    fn commands_change_nothing_a_probe_reads() {
        let flash = FlashWindow::new();
        // A CFI query, then read array, in bank 1 past its mapped start:
        // the reads stay erased (no QRY).
        flash
            .write(0x0420_00aa, AccessSize::Halfword, 0x98)
            .unwrap();
        assert_eq!(flash.read(0x0420_0020, AccessSize::Halfword), Ok(0xffff));
        flash
            .write(0x0420_0000, AccessSize::Halfword, 0xff)
            .unwrap();
        assert_eq!(flash.read(0x0420_0020, AccessSize::Halfword), Ok(0xffff));
        assert_eq!(flash.reset(), Ok(()));
        assert!(!flash.changes_interrupts(0, true));
    }

    #[test]
    fn stores_to_the_mapped_banks_are_dropped_and_the_guest_goes_on() {
        let mut registers = Registers {
            pc: 0x4000_1000,
            ..Default::default()
        };
        // `str r1, [r0]` to the firmware's pages: a permission fault.
        let store = Trap::DataAbort {
            va: 0x0000_00aa,
            ipa: None,
            write: true,
            kind: FaultKind::Permission { level: 2 },
            stage1_walk: false,
        };
        assert_eq!(run(store, &mut registers), Action::Resume);
        assert_eq!(registers.pc, 0x4000_1004);
        // An emulated store past the mapped parts: dropped too.
        let emulated = Trap::MmioWrite {
            ipa: 0x0500_0000,
            va: 0x0500_0000,
            size: AccessSize::Word,
            register: 1,
        };
        assert_eq!(run(emulated, &mut registers), Action::Resume);
        assert_eq!(registers.pc, 0x4000_1008);
        // A load there reads erased.
        let load = Trap::MmioRead {
            ipa: 0x0500_0000,
            va: 0x0500_0000,
            size: AccessSize::Word,
            sign_extend: false,
            register: 2,
        };
        assert_eq!(run(load, &mut registers), Action::Resume);
        assert_eq!(registers.r[2], u32::MAX);
    }
}
