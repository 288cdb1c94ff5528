// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual devices every board gives VMs: the guest platform's.
//!
//! What each device is (name, window, interrupt, device-tree node) is its
//! row of `hyp::guest_platform`; a board offers every row
//! ([`DEVICES`]), and a VM gets those its system description claims
//! (`devices = [...]`, all by default). This module makes one VM's
//! device capsules ([`vm_devices`]): each given its row's interrupt line
//! in the VM's GIC. The GIC's own two windows are the board's interrupt
//! wiring (`crate::guests::InterruptWiring`), not made here.

use crate::leak;
use capsules::virtio::blk::VirtioBlk;
use capsules::virtio::mmio::EmptySlot;
use capsules::virtual_gic::{InterruptLine, VirtualGic};
use capsules::virtual_rtc::{self, VirtualRtc};
use capsules::virtual_uart::VirtualUart;
use hyp::config::DeviceClaim;
use hyp::dispatch::MmioDevice;
use hyp::guest_platform::{GuestDevice, VIRTIO_MMIO};
use hyp::hil::block::BlockDevice;
use hyp::hil::guest_ram::GuestRam;
use hyp::hil::time::{Clock, WallClock};

/// The devices a board offers, at their windows: every row of the guest
/// platform.
pub const DEVICES: &[DeviceClaim] = &hyp::config::PLATFORM_DEVICES;

/// The line of `row`'s interrupt in `gic`.
///
/// # Panics
///
/// If the row has no interrupt (a device that raises one must have it in
/// its row).
fn line(gic: &'static VirtualGic, row: &GuestDevice) -> InterruptLine<'static> {
    gic.line(
        row.interrupt
            .expect("a device with a line has it in its row"),
    )
}

/// Bytes of the bounce buffer each virtio disk gets from the boot heap
/// (a request moves through it in steps of at most half of it; a smaller
/// buffer costs more steps, not correctness).
pub const DISK_BOUNCE_BYTES: usize = 8 * 1024;

/// One VM's disks, by virtio-mmio slot, and its RAM, which they read and
/// write for the guest.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)] // trait objects without Debug
pub struct VmDisks {
    /// The VM's RAM as its devices reach it.
    pub ram: &'static dyn GuestRam,
    /// The disk in each slot, if any.
    pub disks: [Option<&'static dyn BlockDevice<'static>>; VIRTIO_MMIO.len()],
    /// The VM's name (each disk's GET_ID answer is `<name>-disk<n>`).
    pub vm: &'static str,
}

/// Makes one VM's devices, besides its GIC windows: its console UART
/// (`uart`, made by the caller, which also hands it console input) and
/// one capsule per other row, each on its row's line of the VM's `gic`.
/// The board says what time it is (`counter`, the hypervisor's monotonic
/// clock) and what calendar time it was when that clock read 0 (`wall`),
/// and which disks the VM has (`disks`): a virtio-blk device in each
/// slot with one (its bounce buffer, [`DISK_BOUNCE_BYTES`], from the boot
/// heap), an empty transport in the others. Also returns the virtio-blk
/// device of each slot with a disk (a board-disk slice's is polled by the
/// board).
pub fn vm_devices(
    gic: &'static VirtualGic,
    uart: &'static VirtualUart<'static>,
    counter: &'static dyn Clock,
    wall: &'static dyn WallClock,
    disks: VmDisks,
) -> (
    alloc::vec::Vec<&'static dyn MmioDevice>,
    [Option<&'static VirtioBlk<'static>>; VIRTIO_MMIO.len()],
) {
    let mut blks = [None; VIRTIO_MMIO.len()];
    let mut devices = alloc::vec![
        uart as &dyn MmioDevice,
        leak(VirtualRtc::new(counter, wall, line(gic, &virtual_rtc::ROW))) as &dyn MmioDevice,
    ];
    for (n, (row, disk)) in VIRTIO_MMIO.iter().zip(disks.disks).enumerate() {
        let Some(disk) = disk else {
            devices.push(leak(EmptySlot::new(*row)) as &dyn MmioDevice);
            continue;
        };
        let bounce = alloc::vec![0u8; DISK_BOUNCE_BYTES].leak();
        let id = alloc::format!("{}-disk{n}", disks.vm);
        let blk: &'static VirtioBlk<'static> = leak(VirtioBlk::new(
            *row,
            disks.ram,
            line(gic, row),
            disk,
            bounce,
            &id,
        ));
        disk.set_client(blk);
        devices.push(blk as &dyn MmioDevice);
        blks[n] = Some(blk);
    }
    (devices, blks)
}

/// The console UART of a VM: output to `port`, its row's line in `gic`.
pub fn uart(
    gic: &'static VirtualGic,
    port: &'static dyn hyp::hil::console::ConsoleOutput,
) -> VirtualUart<'static> {
    VirtualUart::new(port, line(gic, &capsules::virtual_uart::ROW))
}
