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
use capsules::virtual_gic::{InterruptLine, VirtualGic};
use capsules::virtual_rtc::{self, VirtualRtc};
use capsules::virtual_uart::VirtualUart;
use hyp::config::DeviceClaim;
use hyp::dispatch::MmioDevice;
use hyp::guest_platform::GuestDevice;
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

/// Makes one VM's devices, besides its GIC windows: its console UART
/// (`uart`, made by the caller, which also hands it console input) and
/// one capsule per other row, each on its row's line of the VM's `gic`.
/// The board says what time it is (`counter`, the hypervisor's monotonic
/// clock) and what calendar time it was when that clock read 0 (`wall`).
pub fn vm_devices(
    gic: &'static VirtualGic,
    uart: &'static VirtualUart<'static>,
    counter: &'static dyn Clock,
    wall: &'static dyn WallClock,
) -> alloc::vec::Vec<&'static dyn MmioDevice> {
    alloc::vec![
        uart as &dyn MmioDevice,
        leak(VirtualRtc::new(counter, wall, line(gic, &virtual_rtc::ROW))),
    ]
}

/// The console UART of a VM: output to `port`, its row's line in `gic`.
pub fn uart(
    gic: &'static VirtualGic,
    port: &'static dyn hyp::hil::console::ConsoleOutput,
) -> VirtualUart<'static> {
    VirtualUart::new(port, line(gic, &capsules::virtual_uart::ROW))
}
