// SPDX-License-Identifier: MIT OR Apache-2.0
//! QEMU's `virt` machine (GICv2, Cortex-A15): its addresses, its interrupts.
//!
//! The board for `virt` is built for one configuration of the machine:
//!
//! ```text
//! qemu-system-arm -M virt,virtualization=on,gic-version=2 -cpu cortex-a15 -m 1024
//! ```
//!
//! The constants below are that configuration's facts (PLATFORM.md, "QEMU
//! `virt` and `vexpress-a15`"). QEMU also describes the machine in the device
//! tree it leaves at the start of RAM; [`device_tree`] reads that tree at boot
//! and checks it against what the board was built for, so a machine started
//! with other options (a GICv3, `virtualization=off`, too little RAM) is
//! refused with one line naming the difference instead of failing later in
//! some unrelated way.
//!
//! | device | base | size | interrupt |
//! |---|---|---|---|
//! | GIC distributor (GICD) | 0x0800_0000 | 64 KiB | maintenance: PPI 9 = id 25 |
//! | GIC CPU interface (GICC) | 0x0801_0000 | 64 KiB | |
//! | GIC hypervisor interface (GICH) | 0x0803_0000 | 64 KiB | |
//! | GIC virtual CPU interface (GICV) | 0x0804_0000 | 64 KiB | |
//! | UART0 (PL011, 24 MHz clock) | 0x0900_0000 | 4 KiB | SPI 1 = id 33 |
//! | real-time clock (PL031) | 0x0901_0000 | 4 KiB | SPI 2 = id 34 (unused) |
//! | virtio-mmio transports 0-31 ([`disk`]: the board disk) | 0x0a00_0000 + n x 0x200 | 0x200 each | SPI 16 + n = id 48 + n |
//! | generic timer | (CP15) | | CNTHP 26, CNTV 27, CNTP 30, secure 29 |
//! | RAM | 0x4000_0000 | from `-m` | |
//!
//! ```
//! use qemu_virt::device_tree::{check, parse, Expected};
//! # let blob: &[u8] = include_bytes!("../tests/virt-gicv2.dtb");
//! // On the target: `let blob = unsafe { blob_at(DTB_ADDRESS, DTB_MAX_SIZE) }?;`
//! let machine = parse(blob).unwrap();
//! assert_eq!(check(&machine, &Expected::qemu_virt(1 << 30)), Ok(()));
//! assert_eq!(machine.cpus, 1);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod device_tree;
pub mod disk;

/// The GIC distributor (GICD).
pub const GICD_BASE: usize = 0x0800_0000;
/// The GIC CPU interface (GICC) the hypervisor itself uses.
pub const GICC_BASE: usize = 0x0801_0000;
/// The GIC hypervisor interface (GICH): list registers, maintenance status.
pub const GICH_BASE: usize = 0x0803_0000;
/// The GIC virtual CPU interface (GICV): what a guest sees as its GICC.
pub const GICV_BASE: usize = 0x0804_0000;
/// The size of each of the four GIC windows above.
pub const GIC_WINDOW: usize = 0x1_0000;

/// UART0, a PL011: the hypervisor's console.
pub const UART0_BASE: usize = 0x0900_0000;
/// UART0's interrupt: SPI 1.
pub const UART0_INTERRUPT: u32 = 33;
/// UART0's reference clock (`uartclk`), from which its baud divisors are
/// computed: QEMU's fixed 24 MHz `apb-pclk`. [`device_tree::parse`] reads it
/// from the tree; this is the value the board is built for.
pub const UART_CLOCK_HZ: u32 = 24_000_000;

/// The real-time clock, a PL031: read once at boot, if the device tree
/// lists it ([`device_tree::rtc_window`]).
pub const RTC_BASE: usize = 0x0901_0000;

/// The start of RAM; its size is QEMU's `-m`.
pub const RAM_BASE: usize = 0x4000_0000;
/// Where QEMU leaves the device tree: the start of RAM, as long as the
/// loaded ELF does not cover that address (link the image higher).
pub const DTB_ADDRESS: usize = 0x4000_0000;
/// The most the device tree may take: QEMU builds it in a 1 MiB buffer and
/// its header's `totalsize` is the whole buffer.
pub const DTB_MAX_SIZE: usize = 0x10_0000;

/// The GIC maintenance interrupt: PPI 9.
pub const MAINTENANCE_INTERRUPT: u32 = 25;
/// The Hyp physical timer (CNTHP): PPI 10.
pub const HYP_TIMER_INTERRUPT: u32 = 26;
/// The virtual timer (CNTV): PPI 11.
pub const VIRTUAL_TIMER_INTERRUPT: u32 = 27;
/// The secure physical timer: PPI 13. Never used (there is one security
/// state), but the device tree lists it and the check compares it.
pub const SECURE_PHYSICAL_TIMER_INTERRUPT: u32 = 29;
/// The non-secure physical timer (CNTP): PPI 14.
pub const PHYSICAL_TIMER_INTERRUPT: u32 = 30;

/// One device page: the PL011's register block fits in it.
pub const DEVICE_PAGE_SIZE: usize = 0x1000;
