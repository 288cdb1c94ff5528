// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest platform: every device a VM can see, one row each.
//!
//! Every VM sees the same machine, laid out as QEMU's `virt` (so a kernel
//! built for `virt` boots unchanged): Cortex-A15 vCPUs, a GICv2, the
//! architected timer, and the devices of [`DEVICES`]. Each row says
//! everything about one device that more than one place needs: the name a
//! system description claims it by, its window in guest-physical space,
//! its interrupt, and its device-tree node. Everything else reads the row:
//!
//! | reader | what it takes |
//! |---|---|
//! | the device's capsule (`capsules`) | its window ([`GuestDevice::base`], [`GuestDevice::size`]) and name |
//! | the boards (`components::devices`) | the line each device raises ([`GuestDevice::interrupt`]) |
//! | [`crate::config`] | what a board offers ([`crate::config::PLATFORM_DEVICES`]) |
//! | [`crate::system_image`] | the bit each device has in a VM entry: its index here |
//! | [`crate::device_tree`] | the node of each device a VM claims ([`DeviceTreeNode`]) |
//! | `tools/system` | the names a description may claim, and the default (all) |
//!
//! So a new device is a new row (at the end: a row's index is its bit in
//! packed system images, and images already packed must keep their
//! meaning) and its capsule; `docs/capsules.md` walks through one.
//!
//! The interrupt controller is part of the platform: its two windows are
//! rows (a VM claims them like any device), and the device-tree writer
//! writes its node itself (rows without a [`DeviceTreeNode`]). The
//! architected timer has no window; its interrupts are
//! [`TIMER_INTERRUPTS`], the guest's virtual timer [`VIRTUAL_TIMER`].
//!
//! ```
//! use hyp::guest_platform::{self, RTC, UART};
//! assert_eq!(UART.interrupt, Some(33)); // SPI 1
//! assert_eq!(guest_platform::index_of("pl031"), Some(3));
//! assert_eq!(guest_platform::by_name("pl031"), Some(&RTC));
//! ```

/// A device's node in the tree the hypervisor writes for a VM: named
/// `name@<base in hex>`, with `reg` = the window, `interrupts` = the
/// device's line (level-sensitive, active high), and `clocks` naming the
/// platform's one fixed clock ([`APB_CLOCK_HZ`]) once per entry of
/// `clock_names`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceTreeNode {
    /// The node's name before the `@`.
    pub name: &'static str,
    /// Its `compatible` strings, most specific first.
    pub compatible: &'static [&'static str],
    /// Its `clock-names` (an Arm PrimeCell needs `apb_pclk`).
    pub clock_names: &'static [&'static str],
    /// Whether it has `dma-coherent`: a device that reads and writes the
    /// guest's RAM itself (virtio) does so through the hypervisor's
    /// cacheable mapping, so the guest must map its buffers cacheable too
    /// (without it, Linux on 32-bit Arm maps virtqueues uncached and the
    /// two views of the RAM disagree).
    pub dma_coherent: bool,
}

/// One device of the guest platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestDevice {
    /// What a system description claims it by (`devices = [...]`).
    pub name: &'static str,
    /// Its first guest-physical address.
    pub base: u32,
    /// Its register window in bytes.
    pub size: u32,
    /// The GIC interrupt id of its line (SPI n is 32 + n), if it has one.
    pub interrupt: Option<u32>,
    /// Its device-tree node (`None`: written by the tree writer itself).
    pub node: Option<DeviceTreeNode>,
}

impl GuestDevice {
    /// The first address past its window.
    pub const fn end(&self) -> u64 {
        self.base as u64 + self.size as u64
    }
}

/// The first SPI's interrupt id.
pub const FIRST_SPI: u32 = 32;
/// The first PPI's interrupt id.
pub const FIRST_PPI: u32 = 16;

/// The GICv2 distributor (`arm,cortex-a15-gic`, first `reg` entry).
pub const GIC_DISTRIBUTOR: GuestDevice = GuestDevice {
    name: "gic-distributor",
    base: 0x0800_0000,
    size: 0x1000,
    interrupt: None,
    node: None,
};

/// The GICv2 CPU interface (second `reg` entry of the GIC's node; GICC_DIR
/// is at 0x1000).
pub const GIC_CPU_INTERFACE: GuestDevice = GuestDevice {
    name: "gic-cpu-interface",
    base: 0x0801_0000,
    size: 0x2000,
    interrupt: None,
    node: None,
};

/// The console: an Arm PL011 UART, SPI 1.
pub const UART: GuestDevice = GuestDevice {
    name: "pl011",
    base: 0x0900_0000,
    size: 0x1000,
    interrupt: Some(FIRST_SPI + 1),
    node: Some(DeviceTreeNode {
        name: "pl011",
        compatible: &["arm,pl011", "arm,primecell"],
        clock_names: &["uartclk", "apb_pclk"],
        dma_coherent: false,
    }),
};

/// The real-time clock: an Arm PL031, SPI 2.
pub const RTC: GuestDevice = GuestDevice {
    name: "pl031",
    base: 0x0901_0000,
    size: 0x1000,
    interrupt: Some(FIRST_SPI + 2),
    node: Some(DeviceTreeNode {
        name: "pl031",
        compatible: &["arm,pl031", "arm,primecell"],
        clock_names: &["apb_pclk"],
        dma_coherent: false,
    }),
};

/// The flash window: two banks of 64 MiB each, where QEMU's `virt` has
/// its two CFI flash banks (no interrupt). A VM with a firmware has it, and
/// only such a VM. Bank 0 holds the firmware, read-only; bank 1 is a CFI
/// flash (Intel/Sharp commands) whose first 2 MiB keep what the guest
/// programs (`capsules::flash` says what is emulated). The tree describes
/// it as QEMU does: `cfi-flash`, one `reg` entry per bank, `bank-width`
/// 4.
pub const FLASH: GuestDevice = GuestDevice {
    name: "flash",
    base: 0,
    size: 0x0800_0000,
    interrupt: None,
    node: Some(DeviceTreeNode {
        name: "flash",
        compatible: &["cfi-flash"],
        clock_names: &[],
        dma_coherent: false,
    }),
};

/// Bytes of the flash banks' data bus (two 16-bit devices side by side).
pub const FLASH_BANK_WIDTH: u32 = 4;

/// Bytes of one flash bank (the firmware's bank is the first).
pub const FLASH_BANK_BYTES: u32 = FLASH.size / 2;

/// The window of one virtio-mmio transport: QEMU `virt`'s spacing.
pub const VIRTIO_MMIO_SIZE: u32 = 0x200;

/// The `n`th virtio-mmio transport of QEMU's `virt`: at 0x0a00_0000 +
/// n·0x200, SPI 16 + n.
const fn virtio_mmio(name: &'static str, n: u32) -> GuestDevice {
    GuestDevice {
        name,
        base: 0x0a00_0000 + n * VIRTIO_MMIO_SIZE,
        size: VIRTIO_MMIO_SIZE,
        interrupt: Some(FIRST_SPI + 16 + n),
        node: Some(DeviceTreeNode {
            name: "virtio_mmio",
            compatible: &["virtio,mmio"],
            clock_names: &[],
            dma_coherent: true,
        }),
    }
}

/// The virtio-mmio slots, where a VM's disks are (its first disk in slot
/// 0, its second in slot 1): QEMU `virt`'s first two transports. A slot
/// the VM claims without a disk answers as an empty transport (device
/// id 0), as QEMU's do.
pub const VIRTIO_MMIO: [GuestDevice; 2] = [
    virtio_mmio("virtio-mmio0", 0),
    virtio_mmio("virtio-mmio1", 1),
];

/// Every device, in the order of their bits in a packed VM entry (new
/// rows go at the end).
pub const DEVICES: [GuestDevice; 7] = [
    GIC_DISTRIBUTOR,
    GIC_CPU_INTERFACE,
    UART,
    RTC,
    FLASH,
    VIRTIO_MMIO[0],
    VIRTIO_MMIO[1],
];

/// The devices' names, in [`DEVICES`]' order.
pub const NAMES: [&str; DEVICES.len()] = {
    let mut names = [""; DEVICES.len()];
    let mut index = 0;
    while index < DEVICES.len() {
        names[index] = DEVICES[index].name;
        index += 1;
    }
    names
};

/// The architected timer's interrupts, as the timer's device-tree node
/// lists them: secure physical (PPI 13), non-secure physical (PPI 14),
/// virtual (PPI 11), hypervisor (PPI 10). Each is per vCPU.
pub const TIMER_INTERRUPTS: [u32; 4] = [
    FIRST_PPI + 13,
    FIRST_PPI + 14,
    VIRTUAL_TIMER,
    FIRST_PPI + 10,
];

/// The guest's virtual timer (CNTV) interrupt: PPI 11.
pub const VIRTUAL_TIMER: u32 = FIRST_PPI + 11;

/// The rate of the one fixed clock the tree describes (the PL011's
/// reference and every PrimeCell's bus clock; the PL011's divisors are
/// emulated, so any rate works: 24 MHz, as on QEMU's `virt`).
pub const APB_CLOCK_HZ: u32 = 24_000_000;

/// The row of the device called `name`.
pub fn by_name(name: &str) -> Option<&'static GuestDevice> {
    DEVICES.iter().find(|device| device.name == name)
}

/// The index (packed bit) of the device called `name`.
pub fn index_of(name: &str) -> Option<usize> {
    DEVICES.iter().position(|device| device.name == name)
}

// The table is consistent: windows apart, names and interrupts unique,
// every line an SPI the virtual GIC has (ids below 64), and a bit for each
// device in a 32-bit set. A window is whole pages, page-aligned, or a
// power of two smaller than a page aligned to its size (the virtio-mmio
// transports, 0x200 apart as on QEMU's `virt`): several devices may share
// a page because no device window is mapped at stage 2 (every access
// traps, and `hyp::dispatch` routes it by address range, not by page).
const _: () = {
    assert!(DEVICES.len() <= 32);
    let mut a = 0;
    while a < DEVICES.len() {
        let device = &DEVICES[a];
        let whole_pages = device.base.is_multiple_of(0x1000)
            && device.size.is_multiple_of(0x1000)
            && device.size > 0;
        let sub_page = device.size.is_power_of_two()
            && device.size < 0x1000
            && device.size >= 4
            && device.base.is_multiple_of(device.size);
        assert!(
            whole_pages || sub_page,
            "a window is whole pages or a small aligned block"
        );
        if let Some(id) = device.interrupt {
            assert!(
                id >= FIRST_SPI && id < 64,
                "a device's line is an SPI of the virtual GIC"
            );
        }
        let mut b = a + 1;
        while b < DEVICES.len() {
            let other = &DEVICES[b];
            assert!(device.end() <= other.base as u64 || other.end() <= device.base as u64);
            assert!(!same(device.name, other.name), "device names are unique");
            if let (Some(x), Some(y)) = (device.interrupt, other.interrupt) {
                assert!(x != y, "each device has its own line");
            }
            b += 1;
        }
        a += 1;
    }
};

/// `a == b`, in a constant.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rows_and_look_up_both_ways() {
        for (index, device) in DEVICES.iter().enumerate() {
            assert_eq!(NAMES[index], device.name);
            assert_eq!(index_of(device.name), Some(index));
            assert_eq!(by_name(device.name), Some(device));
        }
        assert_eq!(index_of("virtio-net"), None);
        assert_eq!(VIRTUAL_TIMER, 27);
        assert_eq!(TIMER_INTERRUPTS[2], VIRTUAL_TIMER);
    }

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("pl011", "pl011"));
        assert!(!same("pl011", "pl01"));
        assert!(!same("pl011", "pl031"));
    }
}
