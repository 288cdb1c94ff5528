// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VM tables: every VM Capvisor runs, declared once and checked as a
//! whole before any of them starts. The same tables serve every board: a
//! VM's host RAM is given as an offset in the board's guest RAM pool, and
//! its images by name, placed in the board's staging slots.
//!
//! Guest images are placed in host memory by QEMU's generic loader, one per
//! staging slot (`images.txt` names the slots; [`image_address`] reads it),
//! and copied into each VM's RAM by the hypervisor. Each VM gets its own
//! slice of the guest RAM pool, 2 MiB aligned, at IPA 0x4000_0000, and the
//! virtual devices of the guest platform (the GICv2 at 0x0800_0000, the
//! PL011 at 0x0900_0000, the virtual timer; PSCI and Capvisor's service by
//! hypercall).
//!
//! Which table is built depends on the cargo features: the default is the
//! demo (`make program`); the test-only features select the integration
//! test and benchmark sets.

use capsules::{virtual_gic, virtual_uart};
use hyp::config::{DeviceClaim, ImageConfig, ImageKind, VmConfig, GUEST_RAM_IPA};

/// What happens to a VM that cannot take its own faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Stop it; the others run on.
    Stop,
    /// Restart it up to this many times, then stop it.
    #[cfg_attr(not(feature = "test-fault-policy"), allow(dead_code))]
    Restart(u32),
}

/// One VM of the table.
#[derive(Clone, Copy, Debug)]
pub struct VmSpec {
    /// Its configuration (checked by `hyp::config::validate`).
    pub config: VmConfig,
    /// Its fault policy.
    pub policy: Policy,
}

/// Bytes per slot.
pub const SLOT_SIZE: u32 = 0x0100_0000;
/// Number of slots.
pub const SLOTS: u32 = 16;
/// The slot table, shared with the Makefile and the tests.
const IMAGES: &str = include_str!("../images.txt");

/// The host address the loader places image `name` at, from `images.txt`,
/// on a board whose first slot is at `staging`.
pub fn image_address(staging: u32, name: &str) -> Option<u32> {
    IMAGES
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let slot: u32 = fields.next()?.parse().ok()?;
            (fields.next()? == name && slot < SLOTS).then_some(staging + slot * SLOT_SIZE)
        })
        .next()
}

/// The virtual devices this board gives VMs, each at the one range where
/// it is emulated (the guest platform's GIC and PL011); every VM of these
/// tables claims them all.
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

/// RAM of a small VM (a test guest).
#[allow(dead_code)]
const SMALL_RAM: u32 = 0x0020_0000;

/// A VM with `SMALL_RAM` running test guest `image`, backed by host RAM at
/// `ram_host` (a staging address of 0 is resolved from `images.txt`).
#[allow(dead_code)]
const fn guest(name: &'static str, image: &'static str, ram_host: u64, policy: Policy) -> VmSpec {
    VmSpec {
        config: VmConfig {
            name,
            ram_ipa: GUEST_RAM_IPA,
            ram_size: SMALL_RAM,
            ram_host,
            kernel: ImageConfig {
                name: image,
                kind: ImageKind::Kernel,
                host_address: 0,
                load_offset: 0,
            },
            initrd: None,
            device_tree: None,
            bootargs: "",
            devices: DEVICES,
        },
        policy,
    }
}

/// Host RAM of the `n`th small VM, as an offset in the board's pool.
#[allow(dead_code)]
const fn ram(n: u64) -> u64 {
    n * SMALL_RAM as u64
}

/// Host RAM of a Linux VM: 240 MiB into the pool.
#[allow(dead_code)]
const LINUX_RAM: u64 = 0x0f00_0000;

/// The integration tests' guests: each checks one behaviour and reports.
#[cfg(feature = "test-guests")]
pub const VMS: &[VmSpec] = &[
    guest("hypercall", "hypercall", ram(0), Policy::Stop),
    guest("mmio", "mmio", ram(1), Policy::Stop),
    guest("exceptions", "exceptions", ram(2), Policy::Stop),
    guest("isolation-1", "isolation", ram(3), Policy::Stop),
    guest("isolation-2", "isolation", ram(4), Policy::Stop),
];

/// A guest that faults in its own vectors, restarted twice then stopped,
/// beside one that works.
#[cfg(feature = "test-fault-policy")]
pub const VMS: &[VmSpec] = &[
    guest("worker", "isolation", ram(0), Policy::Stop),
    guest("faulty", "faulty", ram(1), Policy::Restart(2)),
];

/// The benchmark guest and its peer for the VM switch.
#[cfg(feature = "bench")]
pub const VMS: &[VmSpec] = &[
    guest("bench", "bench", ram(0), Policy::Stop),
    guest("bench-peer", "bench", ram(1), Policy::Stop),
];

/// Virtual-timer interrupts through the virtual GIC, beside a guest
/// that abuses the GIC.
#[cfg(feature = "test-interrupts")]
pub const VMS: &[VmSpec] = &[
    guest("vtimer", "vtimer", ram(0), Policy::Stop),
    guest("gic-sweep", "gic-sweep", ram(1), Policy::Stop),
];

/// Two CPU-bound VMs sharing the CPU by time slices, and one that sleeps.
/// The sleeper has the console's focus, so the spinners' reports arrive as
/// whole (prefixed) lines whenever they are preempted.
#[cfg(feature = "test-scheduling")]
pub const VMS: &[VmSpec] = &[
    guest("sleeper", "spinner", ram(2), Policy::Stop),
    guest("spinner-a", "spinner", ram(0), Policy::Stop),
    guest("spinner-b", "spinner", ram(1), Policy::Stop),
];

/// Two VMs reading the console through their UART's receive interrupt.
#[cfg(feature = "test-console")]
pub const VMS: &[VmSpec] = &[
    guest("echo-1", "echo", ram(0), Policy::Stop),
    guest("echo-2", "echo", ram(1), Policy::Stop),
];

/// The Linux VM's kernel command line: `CAPVISOR_BOOTARGS` at build time
/// (`make program BOOTARGS=...`), or the console on the PL011.
const BOOTARGS: &str = match option_env!("CAPVISOR_BOOTARGS") {
    Some(bootargs) => bootargs,
    None => "console=ttyAMA0 earlycon",
};

/// Linux: Debian's armmp kernel with a busybox initramfs
/// (`tools/linux-images.sh` makes both), 256 MiB of RAM.
#[allow(dead_code)]
const fn linux(name: &'static str, ram_host: u64) -> VmSpec {
    VmSpec {
        config: VmConfig {
            name,
            ram_ipa: GUEST_RAM_IPA,
            ram_size: 0x1000_0000,
            ram_host,
            // Where QEMU's own -kernel puts a zImage; it relocates itself
            // out of the way while it decompresses.
            kernel: ImageConfig {
                name: "linux-zImage",
                kind: ImageKind::Kernel,
                host_address: 0,
                load_offset: 0x0001_0000,
            },
            initrd: Some(ImageConfig {
                name: "linux-initrd",
                kind: ImageKind::Raw,
                host_address: 0,
                load_offset: 0x0800_0000,
            }),
            device_tree: None,
            bootargs: BOOTARGS,
            devices: DEVICES,
        },
        policy: Policy::Stop,
    }
}

/// Linux on its own.
#[cfg(feature = "linux")]
pub const VMS: &[VmSpec] = &[linux("linux", LINUX_RAM)];

/// The demo (`make program`): Linux with its shell on the console, and a
/// small VM beside it that prints its uptime now and then.
#[cfg(not(any(
    feature = "test-guests",
    feature = "test-fault-policy",
    feature = "test-interrupts",
    feature = "test-scheduling",
    feature = "test-console",
    feature = "test-hello",
    feature = "test-hostile",
    feature = "linux",
    feature = "bench",
    feature = "test-bad-ram-overlap",
    feature = "test-bad-ram-misaligned",
    feature = "test-bad-device-twice",
    feature = "test-too-many-vms"
)))]
pub const VMS: &[VmSpec] = &[
    linux("linux", LINUX_RAM),
    guest("ticker", "ticker", ram(0), Policy::Stop),
];

/// A hostile guest beside a victim that must keep making progress.
#[cfg(feature = "test-hostile")]
pub const VMS: &[VmSpec] = &[
    guest("hostile", "hostile", ram(0), Policy::Stop),
    guest("victim", "spinner", ram(1), Policy::Stop),
];

/// Two small VMs taking turns on the console (the boot test's table).
#[cfg(feature = "test-hello")]
pub const VMS: &[VmSpec] = &[
    guest("hello-1", "hello", ram(0), Policy::Stop),
    guest("hello-2", "hello", ram(1), Policy::Stop),
];

/// Tables the hypervisor must refuse before any VM starts (one
/// configuration error each; `tests/tests/guests.rs`). Two VMs backed by
/// the same host RAM:
#[cfg(feature = "test-bad-ram-overlap")]
pub const VMS: &[VmSpec] = &[
    guest("first", "hello", ram(0), Policy::Stop),
    guest("second", "hello", ram(0), Policy::Stop),
];

/// RAM that is not 2 MiB aligned in the host.
#[cfg(feature = "test-bad-ram-misaligned")]
pub const VMS: &[VmSpec] = &[guest("misaligned", "hello", ram(0) + 0x1000, Policy::Stop)];

/// A VM claiming the PL011 twice.
#[cfg(feature = "test-bad-device-twice")]
pub const VMS: &[VmSpec] = &[claiming(
    guest("greedy", "hello", ram(0), Policy::Stop),
    GREEDY,
)];
#[cfg(feature = "test-bad-device-twice")]
const GREEDY: &[DeviceClaim] = &[DEVICES[0], DEVICES[1], DEVICES[2], DEVICES[2]];

/// More VMs than the hypervisor has room for: refused when the board is
/// built (nine VMs; `hyp::config::MAX_VMS` is 8).
#[cfg(feature = "test-too-many-vms")]
pub const VMS: &[VmSpec] = &[
    guest("vm-1", "hello", ram(0), Policy::Stop),
    guest("vm-2", "hello", ram(1), Policy::Stop),
    guest("vm-3", "hello", ram(2), Policy::Stop),
    guest("vm-4", "hello", ram(3), Policy::Stop),
    guest("vm-5", "hello", ram(4), Policy::Stop),
    guest("vm-6", "hello", ram(5), Policy::Stop),
    guest("vm-7", "hello", ram(6), Policy::Stop),
    guest("vm-8", "hello", ram(7), Policy::Stop),
    guest("vm-9", "hello", ram(8), Policy::Stop),
];

/// `spec` with its device claims replaced by `devices`.
#[allow(dead_code)]
const fn claiming(mut spec: VmSpec, devices: &'static [DeviceClaim]) -> VmSpec {
    spec.config.devices = devices;
    spec
}

/// How many of the VM-table features are on (at most one may be).
const TABLES: usize = cfg!(feature = "test-guests") as usize
    + cfg!(feature = "test-fault-policy") as usize
    + cfg!(feature = "test-interrupts") as usize
    + cfg!(feature = "test-scheduling") as usize
    + cfg!(feature = "test-console") as usize
    + cfg!(feature = "test-hello") as usize
    + cfg!(feature = "test-hostile") as usize
    + cfg!(feature = "linux") as usize
    + cfg!(feature = "bench") as usize
    + cfg!(feature = "test-bad-ram-overlap") as usize
    + cfg!(feature = "test-bad-ram-misaligned") as usize
    + cfg!(feature = "test-bad-device-twice") as usize
    + cfg!(feature = "test-too-many-vms") as usize;
const _: () = assert!(
    matches!(TABLES, 0 | 1),
    "the test-* VM tables and bench exclude each other: pick one"
);
