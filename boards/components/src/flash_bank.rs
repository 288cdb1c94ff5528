// SPDX-License-Identifier: MIT OR Apache-2.0
//! A firmware VM's second flash bank, kept in its pool slice.
//!
//! `capsules::flash` emulates the bank's CFI commands over memory this
//! module hands it ([`hyp::hil::flash::FlashBank`]): the
//! [`hyp::config::ERASED_BANK_BYTES`] after the firmware's pages in the
//! VM's slice of the guest pool, which the VM's stage 2 maps read-only at
//! IPA 0x0400_0000 with one 2 MiB block. Turning the mapping off and on is
//! writing that one block descriptor ([`armv7a::stage2::BlockSwitch`]);
//! what the capsule writes is cleaned to the point of coherency, since a
//! firmware may map its flash uncached.
//!
//! The bank's contents are loaded once, at the VM's first start (all
//! ones: erased flash), and kept across the VM's restarts; power off
//! loses them.

use armv7a::stage2::BlockSwitch;
use core::cell::{Cell, OnceCell};
use hyp::config::{VmConfig, ERASED_BANK_BYTES};
use hyp::hil::flash::FlashBank;

/// One VM's second flash bank.
pub struct PoolFlashBank {
    memory: &'static [Cell<u8>],
    switch: OnceCell<BlockSwitch>,
    loaded: Cell<bool>,
}

impl core::fmt::Debug for PoolFlashBank {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolFlashBank")
            .field("at", &self.memory.as_ptr())
            .field("loaded", &self.loaded.get())
            .finish()
    }
}

impl PoolFlashBank {
    /// The bank of `config`, a VM with a firmware whose pool slice
    /// `hyp::config::validate` has checked.
    ///
    /// # Safety
    /// Once per VM: the bank's bytes (its pool slice past RAM and
    /// firmware pages) are reached only through the bank from then on,
    /// and are mapped read-write in the Hyp map.
    pub unsafe fn new(config: &VmConfig<'_>) -> PoolFlashBank {
        let start = config.erased_bank_host() as usize as *mut u8;
        // SAFETY: the caller's contract: inside the pool slice `validate`
        // proved the VM's alone, mapped read-write, and nothing else holds
        // a reference to these bytes.
        let bytes: &'static mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(start, ERASED_BANK_BYTES as usize) };
        PoolFlashBank {
            memory: Cell::from_mut(bytes).as_slice_of_cells(),
            switch: OnceCell::new(),
            loaded: Cell::new(false),
        }
    }

    /// Gives the bank the switch of its stage-2 block (once, as the VM's
    /// stage 2 is built).
    pub fn attach(&self, switch: BlockSwitch) {
        let _ = self.switch.set(switch);
    }

    /// Loads the bank's initial contents (erased) at the VM's first
    /// start; later starts (restarts) keep what the guest wrote.
    pub fn load_once(&self) {
        if self.loaded.replace(true) {
            return;
        }
        for cell in self.memory {
            cell.set(0xff);
        }
        self.written(0, self.memory.len());
    }
}

impl FlashBank for PoolFlashBank {
    fn memory(&self) -> &[Cell<u8>] {
        self.memory
    }

    fn set_mapped(&self, mapped: bool) {
        if let Some(switch) = self.switch.get() {
            switch.set(mapped);
        }
    }

    fn written(&self, offset: usize, len: usize) {
        let len = len.min(self.memory.len().saturating_sub(offset));
        if len > 0 {
            armv7a::cache::clean_to_poc(self.memory.as_ptr() as usize + offset, len);
        }
    }
}
