// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual devices every board gives VMs, each at the one window of
//! the guest platform where it is emulated (the `virt` machine's layout:
//! the GICv2 distributor at 0x0800_0000, its CPU interface at 0x0801_0000,
//! the PL011 at 0x0900_0000). A VM claims them by name in its system
//! description (`hyp::system_image::DEVICES`, a bit each in the packed
//! table); `hyp::config::validate` checks each claim against this list.

use capsules::{virtual_gic, virtual_uart};
use hyp::config::DeviceClaim;

/// The devices a board offers, at their windows.
pub const DEVICES: &[DeviceClaim] = &[
    DeviceClaim {
        name: virtual_gic::DISTRIBUTOR_NAME,
        ipa: virtual_gic::DISTRIBUTOR_BASE as u32,
        size: virtual_gic::DISTRIBUTOR_SIZE as u32,
    },
    DeviceClaim {
        name: virtual_gic::CPU_INTERFACE_NAME,
        ipa: virtual_gic::CPU_INTERFACE_BASE as u32,
        size: virtual_gic::CPU_INTERFACE_SIZE as u32,
    },
    DeviceClaim {
        name: virtual_uart::NAME,
        ipa: virtual_uart::BASE as u32,
        size: virtual_uart::SIZE as u32,
    },
];

// The names the packed table's device bits stand for are these devices'.
const _: () = {
    let names = hyp::system_image::DEVICES;
    assert!(names.len() == DEVICES.len());
    let mut index = 0;
    while index < names.len() {
        let (a, b) = (names[index].as_bytes(), DEVICES[index].name.as_bytes());
        assert!(a.len() == b.len());
        let mut byte = 0;
        while byte < a.len() {
            assert!(a[byte] == b[byte], "hyp::system_image::DEVICES and components::devices::DEVICES name the same devices in the same order");
            byte += 1;
        }
        index += 1;
    }
};
