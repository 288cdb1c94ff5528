// SPDX-License-Identifier: MIT OR Apache-2.0
//! Virtio devices over virtio-mmio: the transport, its queues, and the
//! block device with the disks it serves.
//!
//! | module | what |
//! |---|---|
//! | [`mmio`] | the virtio-mmio transport (version 2, virtio 1.x): registers, feature negotiation, status, queue setup, notification, interrupts |
//! | [`queue`] | split virtqueues in the guest's RAM, every index and range checked through `hyp::hil::guest_ram::GuestRam` |
//! | [`blk`] | virtio-blk on the transport, over a `hyp::hil::block::BlockDevice` |
//! | [`ram_disk`] | a `BlockDevice` over a byte slice (the image disk a system image carries) |
//!
//! The layering is Tock's: the device capsule ([`blk::VirtioBlk`]) speaks
//! the block HIL, and a disk (a chip driver for the board's own
//! controller, or [`ram_disk::RamDisk`]) implements it; the capsule never
//! names a chip. A guest reaches its disks at the guest platform's
//! virtio-mmio slots (`hyp::guest_platform::VIRTIO_MMIO`), where QEMU's
//! `virt` has its transports.

pub mod blk;
pub mod board_slice;
pub mod mmio;
pub mod queue;
pub mod ram_disk;
