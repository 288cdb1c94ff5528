// SPDX-License-Identifier: MIT OR Apache-2.0
//! The board disk's slices over a fake disk that completes when the test
//! says: sectors translated, refusals, round robin, mail and kicks,
//! errors and flushes.

extern crate std;

use super::*;
use crate::test_support::{leak_buffer, ManualDisk};
use core::cell::RefCell;
use hyp::hil::block::SECTOR_BYTES;
use hyp::kernel::OneCpu;
use std::boxed::Box;
use std::vec::Vec;

/// What a client heard: the operation, its buffer's first byte, the
/// result.
type Heard = (Kind, u8, Result<(), BlockError>);

#[derive(Default)]
struct Client {
    heard: RefCell<Vec<Heard>>,
}

impl BlockClient for Client {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.heard
            .borrow_mut()
            .push((Kind::Read, buffer[0], result));
    }
    fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.heard
            .borrow_mut()
            .push((Kind::Write, buffer[0], result));
    }
    fn flush_done(&self, result: Result<(), BlockError>) {
        self.heard.borrow_mut().push((Kind::Flush, 0, result));
    }
}

/// Records the CPUs kicked.
#[derive(Default)]
struct Kicks(std::sync::Mutex<Vec<usize>>);

impl CpuKick for Kicks {
    fn kick(&self, cpu: usize) {
        self.0.lock().unwrap().push(cpu);
    }
}

impl Kicks {
    fn take(&self) -> Vec<usize> {
        core::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// A board disk of `sectors` cut into `specs`, each slice with its own
/// client; the disk, the shared view, the slices and their clients.
#[allow(clippy::type_complexity)]
fn board(
    sectors: usize,
    specs: &[SliceSpec],
) -> (
    &'static ManualDisk<'static>,
    &'static BoardDisk<'static, OneCpu>,
    Vec<&'static BoardSlice<'static, OneCpu>>,
    Vec<&'static Client>,
    &'static Kicks,
) {
    let disk: &'static ManualDisk<'static> = leak(ManualDisk::new(sectors));
    let mux: &'static BoardDiskMux<'static> = leak(BoardDiskMux::new(disk, specs));
    disk.set_client(mux);
    let kicks: &'static Kicks = leak(Kicks::default());
    let shared: &'static BoardDisk<'static, OneCpu> =
        leak(BoardDisk::new(OneCpu::new().guard(mux), specs, kicks));
    let slices: Vec<&'static BoardSlice<'static, OneCpu>> = (0..specs.len())
        .map(|index| leak(shared.slice(index).unwrap()))
        .collect();
    let clients: Vec<&'static Client> = slices
        .iter()
        .map(|slice| {
            let client: &'static Client = leak(Client::default());
            slice.set_client(client);
            client
        })
        .collect();
    (disk, shared, slices, clients, kicks)
}

fn spec(first: u64, sectors: u64, read_only: bool, cpu: usize) -> SliceSpec {
    SliceSpec {
        first,
        sectors,
        read_only,
        cpu,
    }
}

fn filled(sectors: usize, byte: u8) -> &'static mut [u8] {
    let buffer = leak_buffer(sectors * SECTOR_BYTES);
    buffer.fill(byte);
    buffer
}

#[test]
fn a_slice_is_its_sectors_of_the_board_disk_and_refuses_what_is_not() {
    let (disk, shared, slices, clients, kicks) =
        board(64, &[spec(8, 8, false, 0), spec(16, 4, true, 2)]);
    assert_eq!((slices[0].sectors(), slices[0].read_only()), (8, false));
    assert_eq!((slices[1].sectors(), slices[1].read_only()), (4, true));
    // Slice 0's sector 1 is the disk's sector 9.
    slices[0].write(1, filled(2, 0xa1)).unwrap();
    assert_eq!(disk.started.get(), 1, "started at once: the disk was free");
    let (error, _) = slices[0].read(0, filled(1, 0)).unwrap_err();
    assert_eq!(error, BlockError::Busy, "one request per slice");
    assert!(disk.complete(None));
    assert!(
        clients[0].heard.borrow().is_empty(),
        "not from the interrupt"
    );
    assert!(!shared.service(), "the disk is free again");
    assert!(shared.has_mail(0) && !shared.has_mail(1));
    assert_eq!(kicks.take(), [0], "slice 0's CPU is kicked");
    assert!(!slices[0].poll());
    assert_eq!(clients[0].heard.take(), [(Kind::Write, 0xa1, Ok(()))]);
    assert!(!shared.has_mail(0));
    let bytes = disk.bytes.borrow();
    assert!(bytes[8 * SECTOR_BYTES..9 * SECTOR_BYTES]
        .iter()
        .all(|&b| b == 0));
    assert!(bytes[9 * SECTOR_BYTES..11 * SECTOR_BYTES]
        .iter()
        .all(|&b| b == 0xa1));
    drop(bytes);
    // Past the slice's end, though inside the disk: refused, nothing
    // started; a read-only slice refuses writes and flushes.
    let (error, _) = slices[0].read(7, filled(2, 0)).unwrap_err();
    assert_eq!(error, BlockError::OutOfRange);
    let (error, _) = slices[1].write(0, filled(1, 0)).unwrap_err();
    assert_eq!(error, BlockError::ReadOnly);
    assert_eq!(slices[1].flush(), Err(BlockError::ReadOnly));
    let (error, _) = slices[0].read(0, leak_buffer(100)).unwrap_err();
    assert_eq!(error, BlockError::Unaligned);
    assert_eq!(disk.started.get(), 1);
    // The read-only slice reads the disk's sectors 16..20.
    disk.bytes.borrow_mut()[16 * SECTOR_BYTES] = 0x77;
    slices[1].read(0, filled(1, 0)).unwrap();
    assert!(disk.complete(None));
    shared.service();
    assert_eq!(kicks.take(), [2]);
    slices[1].poll();
    assert_eq!(clients[1].heard.take(), [(Kind::Read, 0x77, Ok(()))]);
}

#[test]
fn requests_of_different_slices_are_served_in_turn() {
    let specs = [
        spec(0, 8, false, 0),
        spec(8, 8, false, 1),
        spec(16, 8, false, 2),
    ];
    let (disk, shared, slices, clients, _) = board(32, &specs);
    // Slice 0 gets the disk; 1 and 2 wait.
    slices[0].write(0, filled(1, 0x10)).unwrap();
    slices[1].write(0, filled(1, 0x11)).unwrap();
    slices[2].write(0, filled(1, 0x12)).unwrap();
    assert_eq!(disk.started.get(), 1);
    let mut order = Vec::new();
    // Slice 0 asks again as soon as it hears; still 1 and 2 come first.
    for _ in 0..5 {
        assert!(disk.complete(None));
        shared.service();
        for (index, slice) in slices.iter().enumerate() {
            slice.poll();
            for (_, byte, result) in clients[index].heard.take() {
                assert_eq!(result, Ok(()));
                order.push(byte);
                if index == 0 {
                    slice.write(1, filled(1, 0x20)).unwrap();
                }
            }
        }
    }
    assert_eq!(order, [0x10, 0x11, 0x12, 0x20, 0x20]);
    assert_eq!(disk.started.get(), 6, "the sixth, slice 0's third, is held");
}

#[test]
fn device_errors_and_refusals_reach_the_slice_with_its_buffer() {
    // Slice 1 lies past the disk's end (the boot check refuses that; the
    // multiplexer must still not lose the buffer).
    let (disk, shared, slices, clients, _) =
        board(16, &[spec(0, 8, false, 0), spec(12, 8, false, 0)]);
    slices[0].write(0, filled(1, 0x33)).unwrap();
    slices[1].read(4, filled(1, 0x44)).unwrap();
    assert!(disk.complete(Some(BlockError::Device)));
    shared.service();
    // Slice 1's request was started after slice 0's failed, and the disk
    // refused it at once.
    slices[0].poll();
    slices[1].poll();
    assert_eq!(
        clients[0].heard.take(),
        [(Kind::Write, 0x33, Err(BlockError::Device))]
    );
    assert_eq!(
        clients[1].heard.take(),
        [(Kind::Read, 0x44, Err(BlockError::OutOfRange))]
    );
    assert_eq!(disk.started.get(), 1);
    // The slices take requests again.
    slices[1].read(0, filled(1, 0)).unwrap();
    assert!(disk.complete(None));
    shared.service();
    slices[1].poll();
    assert_eq!(clients[1].heard.take(), [(Kind::Read, 0, Ok(()))]);
}

#[test]
fn a_flush_completes_when_the_board_disk_completed_it() {
    let (disk, shared, slices, clients, kicks) =
        board(16, &[spec(0, 8, false, 1), spec(8, 8, false, 3)]);
    slices[1].write(0, filled(1, 5)).unwrap();
    slices[0].flush().unwrap();
    let (error, _) = slices[0].write(0, filled(1, 0)).unwrap_err();
    assert_eq!(error, BlockError::Busy, "the flush is slice 0's request");
    assert!(disk.complete(None));
    shared.service();
    assert_eq!(kicks.take(), [3]);
    // The flush is with the disk now, not done: slice 0 hears nothing.
    assert!(slices[0].poll());
    assert!(clients[0].heard.borrow().is_empty());
    assert!(disk.complete(Some(BlockError::Device)));
    assert!(!shared.service());
    assert_eq!(kicks.take(), [1]);
    assert!(!slices[0].poll());
    assert_eq!(
        clients[0].heard.take(),
        [(Kind::Flush, 0, Err(BlockError::Device))]
    );
    slices[0].flush().unwrap();
    assert!(disk.complete(None));
    slices[0].poll();
    assert_eq!(clients[0].heard.take(), [(Kind::Flush, 0, Ok(()))]);
}

#[test]
fn a_completion_waits_for_a_client() {
    let disk: &'static ManualDisk<'static> = leak(ManualDisk::new(8));
    let specs = [spec(0, 8, false, 0)];
    let mux: &'static BoardDiskMux<'static> = leak(BoardDiskMux::new(disk, &specs));
    disk.set_client(mux);
    let shared: &'static BoardDisk<'static, OneCpu> = leak(BoardDisk::new(
        OneCpu::new().guard(mux),
        &specs,
        &hyp::kernel::NoKick,
    ));
    let slice = leak(shared.slice(0).unwrap());
    assert!(shared.slice(1).is_none());
    slice.read(0, filled(1, 9)).unwrap();
    assert!(disk.complete(None));
    assert!(slice.poll(), "kept: nobody to tell");
    let client: &'static Client = leak(Client::default());
    slice.set_client(client);
    assert!(!slice.poll());
    assert_eq!(client.heard.take(), [(Kind::Read, 0, Ok(()))]);
}
