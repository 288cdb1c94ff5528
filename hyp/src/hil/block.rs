// SPDX-License-Identifier: MIT OR Apache-2.0
//! Block storage: a disk of 512-byte sectors that the hypervisor drives.
//!
//! A virtual disk capsule (virtio-blk, say) reaches its storage through
//! [`BlockDevice`]; a chip implements it for a board's own controller (the
//! PL181 and its SD card on Integrator/CP, a QEMU virtio-blk device on
//! `virt`), and a capsule can implement it over another (a slice of a
//! board disk given to one VM, a RAM disk packed in the system image).
//!
//! Requests are split-phase, as in Tock: [`BlockDevice::read`],
//! [`BlockDevice::write`] and [`BlockDevice::flush`] start one request and
//! return at once; the device calls its [`BlockClient`] when it completes,
//! from the board's interrupt service for a controller that interrupts, or
//! from a later call of [`BlockDevice::poll`] for one that does not. A
//! device holds one request at a time: a second one while the first is in
//! flight is refused with [`BlockError::Busy`], and the caller's buffer
//! comes back with the error. The buffer travels with the request, so no
//! one else touches it meanwhile.
//!
//! A completed write is on the device; a completed flush means every write
//! that completed before it survives a power cut of the board.
//!
//! ```
//! use hyp::hil::block::{sectors_in, BlockError, SECTOR_BYTES};
//! assert_eq!(sectors_in(4096), Ok(8));
//! assert_eq!(sectors_in(100), Err(BlockError::Unaligned));
//! assert_eq!(SECTOR_BYTES, 512);
//! ```

/// The size of a sector, the unit of addresses and lengths.
pub const SECTOR_BYTES: usize = 512;

/// Why a request was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// It reaches past the device's last sector.
    OutOfRange,
    /// A write or flush to a device that is read-only.
    ReadOnly,
    /// A buffer that is not a whole number of sectors, or empty.
    Unaligned,
    /// Another request is in flight.
    Busy,
    /// The device reported an error (a controller or card error, a
    /// timeout); the data of a failed write is undefined.
    Device,
}

/// The number of sectors `bytes` holds, if it is a non-zero whole number.
pub const fn sectors_in(bytes: usize) -> Result<u64, BlockError> {
    if bytes == 0 || !bytes.is_multiple_of(SECTOR_BYTES) {
        Err(BlockError::Unaligned)
    } else {
        Ok((bytes / SECTOR_BYTES) as u64)
    }
}

/// Checks a request of `bytes` at `sector` against a device of `sectors`.
pub const fn check_range(sector: u64, bytes: usize, sectors: u64) -> Result<(), BlockError> {
    let count = match sectors_in(bytes) {
        Ok(count) => count,
        Err(error) => return Err(error),
    };
    match sector.checked_add(count) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(BlockError::OutOfRange),
    }
}

/// What a [`BlockDevice`] tells when a request completes.
pub trait BlockClient {
    /// A read completed (`Ok`: `buffer` holds the sectors) or failed.
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>);
    /// A write completed or failed; `buffer` comes back unchanged.
    fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>);
    /// A flush completed or failed.
    fn flush_done(&self, result: Result<(), BlockError>);
}

/// A disk the hypervisor drives, one request at a time.
pub trait BlockDevice<'a> {
    /// Who hears of completions.
    fn set_client(&self, client: &'a dyn BlockClient);
    /// Its size in sectors.
    fn sectors(&self) -> u64;
    /// Whether it refuses writes.
    fn read_only(&self) -> bool;
    /// Starts reading `buffer.len()` bytes (whole sectors) from `sector`.
    fn read(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])>;
    /// Starts writing `buffer` (whole sectors) at `sector`.
    fn write(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])>;
    /// Starts making every completed write durable.
    fn flush(&self) -> Result<(), BlockError>;
    /// Moves a request on without an interrupt (a controller that has
    /// none, or a caller that must not wait for one); the client hears of
    /// a completion from inside this call. Returns whether a request is
    /// still in flight.
    fn poll(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_whole_sectors_inside_the_device() {
        assert_eq!(check_range(0, 512, 1), Ok(()));
        assert_eq!(check_range(1, 512, 1), Err(BlockError::OutOfRange));
        assert_eq!(check_range(0, 1024, 1), Err(BlockError::OutOfRange));
        assert_eq!(check_range(0, 0, 8), Err(BlockError::Unaligned));
        assert_eq!(check_range(0, 513, 8), Err(BlockError::Unaligned));
        assert_eq!(
            check_range(u64::MAX, 512, u64::MAX),
            Err(BlockError::OutOfRange)
        );
        assert_eq!(check_range(7, 512, 8), Ok(()));
    }
}
