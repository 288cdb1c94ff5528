// SPDX-License-Identifier: MIT OR Apache-2.0
//! A VM's RAM as its devices reach it: copies to and from guest-physical
//! addresses, checked against the VM's RAM.
//!
//! A device that works on buffers the guest names by address (virtqueues,
//! DMA descriptors) never gets a pointer: it asks its VM's [`GuestRam`] to
//! copy bytes in or out, and every byte of the range must lie inside that
//! VM's RAM (never its device windows, another VM's RAM or the
//! hypervisor's memory), else nothing is copied and the device gets
//! [`GuestRamError`]. The guest's other vCPUs may write the same bytes at
//! the same time (the guest's race, not the hypervisor's): an implementation
//! copies with accesses the compiler cannot elide or tear into UB, and a
//! device reads what it needs once (into its own copy) before acting on it.

/// A guest-physical range that is not all inside the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRamError {
    /// Its first address.
    pub ipa: u64,
    /// Its length in bytes.
    pub len: usize,
}

/// One VM's RAM.
pub trait GuestRam {
    /// Its window in the VM's address space: first address and size.
    fn window(&self) -> (u64, u64);
    /// Copies `out.len()` bytes from guest-physical `ipa`.
    fn read(&self, ipa: u64, out: &mut [u8]) -> Result<(), GuestRamError>;
    /// Copies `data` to guest-physical `ipa`.
    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError>;
    /// Whether `len` bytes at `ipa` lie inside the RAM.
    fn contains(&self, ipa: u64, len: usize) -> bool {
        let (base, size) = self.window();
        ipa >= base
            && ipa
                .checked_add(len as u64)
                .is_some_and(|end| end <= base.saturating_add(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Window;

    impl GuestRam for Window {
        fn window(&self) -> (u64, u64) {
            (0x4000_0000, 0x1000)
        }
        fn read(&self, ipa: u64, out: &mut [u8]) -> Result<(), GuestRamError> {
            Err(GuestRamError {
                ipa,
                len: out.len(),
            })
        }
        fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError> {
            Err(GuestRamError {
                ipa,
                len: data.len(),
            })
        }
    }

    #[test]
    fn contains_means_every_byte_inside() {
        assert!(Window.contains(0x4000_0000, 0x1000));
        assert!(Window.contains(0x4000_0fff, 1));
        assert!(Window.contains(0x4000_1000, 0));
        assert!(!Window.contains(0x4000_0fff, 2));
        assert!(!Window.contains(0x3fff_ffff, 1));
        assert!(!Window.contains(u64::MAX, 1));
    }
}
