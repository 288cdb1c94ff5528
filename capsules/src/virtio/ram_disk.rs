// SPDX-License-Identifier: MIT OR Apache-2.0
//! A disk in memory: the image disk a system image carries, served as a
//! block HIL device.
//!
//! The board gives the bytes: a read-only slice ([`RamDisk::read_only`],
//! writes refused with [`BlockError::ReadOnly`]) or a writable one
//! ([`RamDisk::writable`]: writes change the bytes, and are kept as long
//! as the memory is, that is until the board powers off; a flush has
//! nothing to do). Its size is the whole sectors of the slice.
//!
//! Requests complete through the client like any disk's, never from
//! inside the call that starts them (which would re-enter the client):
//! the data moves at once, and the completion waits for the next
//! [`BlockDevice::poll`], which delivers it.
//!
//! ```
//! use capsules::virtio::ram_disk::RamDisk;
//! use hyp::hil::block::{BlockDevice, BlockError};
//! static IMAGE: [u8; 1024] = [7; 1024];
//! let disk = RamDisk::read_only(&IMAGE);
//! assert_eq!((disk.sectors(), disk.read_only()), (2, true));
//! assert_eq!(disk.flush(), Err(BlockError::ReadOnly));
//! ```

use core::cell::Cell;
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError, SECTOR_BYTES};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Read,
    Write,
    Flush,
}

/// A completed request, waiting for `poll`.
struct Done {
    operation: Operation,
    buffer: Option<&'static mut [u8]>,
    result: Result<(), BlockError>,
}

/// A disk whose sectors are a byte slice.
pub struct RamDisk<'a> {
    image: &'a [u8],
    writable: Cell<Option<&'a mut [u8]>>,
    read_only: bool,
    sectors: u64,
    client: Cell<Option<&'a dyn BlockClient>>,
    done: Cell<Option<Done>>,
}

impl core::fmt::Debug for RamDisk<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RamDisk")
            .field("sectors", &self.sectors)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl<'a> RamDisk<'a> {
    /// A read-only disk of `image`'s whole sectors.
    pub fn read_only(image: &'a [u8]) -> RamDisk<'a> {
        RamDisk {
            image,
            writable: Cell::new(None),
            read_only: true,
            sectors: (image.len() / SECTOR_BYTES) as u64,
            client: Cell::new(None),
            done: Cell::new(None),
        }
    }

    /// A writable disk of `bytes`' whole sectors.
    pub fn writable(bytes: &'a mut [u8]) -> RamDisk<'a> {
        let sectors = (bytes.len() / SECTOR_BYTES) as u64;
        RamDisk {
            image: &[],
            writable: Cell::new(Some(bytes)),
            read_only: false,
            sectors,
            client: Cell::new(None),
            done: Cell::new(None),
        }
    }

    fn busy(&self) -> bool {
        let done = self.done.take();
        let busy = done.is_some();
        self.done.set(done);
        busy
    }

    /// Checks a transfer of `buffer` at `sector`; the byte offset.
    fn check(&self, sector: u64, buffer: &[u8]) -> Result<usize, BlockError> {
        if self.busy() {
            return Err(BlockError::Busy);
        }
        check_range(sector, buffer.len(), self.sectors)?;
        Ok(sector as usize * SECTOR_BYTES)
    }
}

impl<'a> BlockDevice<'a> for RamDisk<'a> {
    fn set_client(&self, client: &'a dyn BlockClient) {
        self.client.set(Some(client));
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        let start = match self.check(sector, buffer) {
            Ok(start) => start,
            Err(error) => return Err((error, buffer)),
        };
        let end = start + buffer.len();
        match self.writable.take() {
            Some(bytes) => {
                buffer.copy_from_slice(&bytes[start..end]);
                self.writable.set(Some(bytes));
            }
            None => buffer.copy_from_slice(&self.image[start..end]),
        }
        self.done.set(Some(Done {
            operation: Operation::Read,
            buffer: Some(buffer),
            result: Ok(()),
        }));
        Ok(())
    }

    fn write(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        if self.read_only {
            return Err((BlockError::ReadOnly, buffer));
        }
        let start = match self.check(sector, buffer) {
            Ok(start) => start,
            Err(error) => return Err((error, buffer)),
        };
        let Some(bytes) = self.writable.take() else {
            return Err((BlockError::Device, buffer));
        };
        bytes[start..start + buffer.len()].copy_from_slice(buffer);
        self.writable.set(Some(bytes));
        self.done.set(Some(Done {
            operation: Operation::Write,
            buffer: Some(buffer),
            result: Ok(()),
        }));
        Ok(())
    }

    fn flush(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        if self.busy() {
            return Err(BlockError::Busy);
        }
        self.done.set(Some(Done {
            operation: Operation::Flush,
            buffer: None,
            result: Ok(()),
        }));
        Ok(())
    }

    fn poll(&self) -> bool {
        let Some(done) = self.done.take() else {
            return false;
        };
        let Some(client) = self.client.get() else {
            // Nobody to tell: keep it until there is.
            self.done.set(Some(done));
            return true;
        };
        match (done.operation, done.buffer) {
            (Operation::Read, Some(buffer)) => client.read_done(buffer, done.result),
            (Operation::Write, Some(buffer)) => client.write_done(buffer, done.result),
            _ => client.flush_done(done.result),
        }
        // The client may have started its next request from the call.
        self.busy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::leak_buffer;
    use core::cell::RefCell;

    /// A completion: its operation, its buffer's first byte, its result.
    type Heard = (Operation, u8, Result<(), BlockError>);

    /// Records completions.
    #[derive(Default)]
    struct Client {
        heard: RefCell<std::vec::Vec<Heard>>,
    }
    extern crate std;

    impl BlockClient for Client {
        fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
            self.heard
                .borrow_mut()
                .push((Operation::Read, buffer[0], result));
        }
        fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
            self.heard
                .borrow_mut()
                .push((Operation::Write, buffer[0], result));
        }
        fn flush_done(&self, result: Result<(), BlockError>) {
            self.heard.borrow_mut().push((Operation::Flush, 0, result));
        }
    }

    #[test]
    fn completions_wait_for_poll_and_one_request_at_a_time() {
        let client = Client::default();
        let bytes = leak_buffer(4 * 512 + 100);
        bytes[512] = 9;
        let disk = RamDisk::writable(bytes);
        disk.set_client(&client);
        assert_eq!((disk.sectors(), disk.read_only()), (4, false));
        assert!(disk.read(1, leak_buffer(512)).is_ok());
        assert!(client.heard.borrow().is_empty(), "not from inside read");
        let (error, _) = disk.write(0, leak_buffer(512)).unwrap_err();
        assert_eq!(error, BlockError::Busy);
        assert_eq!(disk.flush(), Err(BlockError::Busy));
        assert!(!disk.poll());
        assert_eq!(client.heard.take(), [(Operation::Read, 9, Ok(()))]);
        assert!(!disk.poll(), "nothing left");
        let data = leak_buffer(1024);
        data[0] = 42;
        assert!(disk.write(2, data).is_ok());
        disk.poll();
        assert!(disk.read(2, leak_buffer(512)).is_ok());
        disk.poll();
        assert!(disk.flush().is_ok());
        disk.poll();
        assert_eq!(
            client.heard.take(),
            [
                (Operation::Write, 42, Ok(())),
                (Operation::Read, 42, Ok(())),
                (Operation::Flush, 0, Ok(()))
            ]
        );
        let (error, _) = disk.read(3, leak_buffer(1024)).unwrap_err();
        assert_eq!(
            error,
            BlockError::OutOfRange,
            "the partial sector is not the disk's"
        );
        let (error, _) = disk.read(0, leak_buffer(100)).unwrap_err();
        assert_eq!(error, BlockError::Unaligned);
    }

    #[test]
    fn a_read_only_disk_refuses_writes() {
        let image: &'static [u8] = leak_buffer(1024);
        let disk = RamDisk::read_only(image);
        let (error, _) = disk.write(0, leak_buffer(512)).unwrap_err();
        assert_eq!(error, BlockError::ReadOnly);
        assert_eq!(disk.flush(), Err(BlockError::ReadOnly));
        assert!(disk.read(1, leak_buffer(512)).is_ok());
        assert!(disk.poll(), "no client yet: kept");
    }
}
