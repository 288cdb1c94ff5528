// SPDX-License-Identifier: MIT OR Apache-2.0
//! RAM standing in for a GIC register block in host tests.
//!
//! A zeroed, page-aligned buffer large enough for any of the blocks. It is
//! plain memory: every word keeps what was last written, so a test checks
//! exactly what the driver wrote (a write of 1s to ICENABLER stays 1s), not
//! what a GIC would make of it. Reads a driver expects from the hardware
//! (TYPER, IAR, VTR, list registers) are set up with [`FakeRegisters::set_word`].

/// Bytes in the window: the largest block (GICC, GICV) is two pages.
const WINDOW_SIZE: usize = 0x2000;

#[repr(C, align(4096))]
struct Window([u32; WINDOW_SIZE / 4]);

/// A zeroed register window on the heap, freed on drop.
pub(crate) struct FakeRegisters {
    window: *mut Window,
}

impl FakeRegisters {
    /// A fresh window, every word zero.
    pub(crate) fn new() -> FakeRegisters {
        FakeRegisters {
            window: Box::into_raw(Box::new(Window([0; WINDOW_SIZE / 4]))),
        }
    }

    /// The window's address, for a driver's `new`. Declare the driver after
    /// the fake so it is dropped first.
    pub(crate) fn base(&self) -> usize {
        self.window as usize
    }

    fn word_pointer(&self, offset: usize) -> *mut u32 {
        assert!(
            offset.is_multiple_of(4) && offset < WINDOW_SIZE,
            "bad offset {offset:#x}"
        );
        // SAFETY: the offset is inside the window (checked above) and the
        // window is a live allocation.
        unsafe { self.window.cast::<u32>().add(offset / 4) }
    }

    /// The word at byte `offset`.
    pub(crate) fn word(&self, offset: usize) -> u32 {
        // SAFETY: an aligned pointer into the live window; drivers reach the
        // window only through shared references to interior-mutable cells.
        unsafe { self.word_pointer(offset).read_volatile() }
    }

    /// Stores `value` at byte `offset`, as if the GIC had put it there.
    pub(crate) fn set_word(&self, offset: usize, value: u32) {
        // SAFETY: as in `word`.
        unsafe { self.word_pointer(offset).write_volatile(value) }
    }

    /// The byte at `offset`.
    pub(crate) fn byte(&self, offset: usize) -> u8 {
        assert!(offset < WINDOW_SIZE, "bad offset {offset:#x}");
        // SAFETY: inside the live window (checked above); bytes need no
        // alignment.
        unsafe { self.window.cast::<u8>().add(offset).read_volatile() }
    }
}

impl Drop for FakeRegisters {
    fn drop(&mut self) {
        // SAFETY: `window` came from `Box::into_raw` in `new` and is freed
        // only here; drivers made from `base` are dropped before the fake.
        drop(unsafe { Box::from_raw(self.window) });
    }
}
