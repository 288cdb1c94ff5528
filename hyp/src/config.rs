// SPDX-License-Identifier: MIT OR Apache-2.0
//! The declarative description of a board's VMs, checked before any starts.
//!
//! Every VM is declared once, in one table of [`VmConfig`]s, made from the
//! entries of the packed system image ([`VmConfig::from_table`]; this
//! module builds on [`crate::system_image`], never the other way): its
//! name, its RAM (where the guest sees it and which slice of the host's
//! guest pool backs it),
//! its vCPUs and the physical CPU each runs on, the images in host memory it boots (kernel, optional initrd
//! and device tree; or a firmware, mapped read-only at IPA 0, and an
//! optional device tree), and the virtual devices it claims. [`validate`]
//! checks the whole table against the board before the first VM runs and
//! names the first problem it finds; the board refuses to boot on an
//! error, so a bad configuration never half-starts.
//!
//! ```
//! use hyp::config::{validate, BoardOffer, DeviceClaim, DeviceSet, ImageConfig, ImageKind, VmConfig, GUEST_RAM_IPA};
//! use hyp::memory::{MemoryType, Permissions, Region};
//! let pool = Region::new("guest-ram", 0x8000_0000, 0x4000_0000, MemoryType::Normal, Permissions::ReadWrite);
//! let vm = VmConfig {
//!     name: "linux",
//!     ram_ipa: GUEST_RAM_IPA,
//!     ram_size: 0x0800_0000,
//!     ram_host: 0x8000_0000,
//!     vcpus: 1,
//!     cpus: [0, 0xff, 0xff, 0xff], // vCPU 0 on CPU 0
//!     kernel: Some(ImageConfig { name: "kernel", kind: ImageKind::Zimage, host_address: 0x0100_0000, size: 0x40_0000, load_offset: 0x8000 }),
//!     firmware: None,
//!     entry_offset: 0x8000,
//!     initrd: None,
//!     device_tree: None,
//!     bootargs: "",
//!     devices: DeviceSet(0b100), // pl011
//! };
//! // What the board has for VMs: RAM, VMIDs, vCPUs, the CPUs online and
//! // its virtual devices.
//! let offer = BoardOffer {
//!     pool: &pool,
//!     vmids: 255,
//!     vcpus: 1,
//!     cpus: 1,
//!     devices: &[DeviceClaim { name: "pl011", ipa: 0x0900_0000, size: 0x1000 }],
//! };
//! // The probe checks each image's own header and gives its size.
//! assert_eq!(validate(&[vm], &offer, |_, image| Ok(image.size)), Ok(()));
//! ```

use crate::memory::{Region, Size};
use core::fmt;

/// Where every VM's RAM starts in its own address space (the `virt`
/// machine's memory map; 128 MiB aligned as the zImage decompressor needs).
pub const GUEST_RAM_IPA: u32 = 0x4000_0000;
/// The alignment guest RAM must have, in both address spaces.
pub const GUEST_RAM_ALIGNMENT: u32 = 0x0020_0000;
/// The alignment of the guest-physical RAM base (zImage places the kernel at
/// `pc & 0xf800_0000`).
pub const GUEST_RAM_IPA_ALIGNMENT: u32 = 0x0800_0000;
/// How many VMs the table may hold (as many as a system image holds).
pub const MAX_VMS: usize = crate::system_image::MAX_VMS;
/// The most physical CPUs Capvisor runs on: the per-CPU tables (stacks,
/// fault state, boards' per-CPU work) have this many entries.
pub const MAX_CPUS: usize = 4;
/// The most vCPUs one VM may have (each runs on its own physical CPU; no
/// board has more than 4; a system image's CPU map has a byte for each).
pub const MAX_VCPUS: usize = crate::system_image::MAX_VCPUS;
/// The CPU-map byte for no CPU ([`VmConfig::cpus`] past the vCPUs).
pub const NO_CPU: u8 = crate::system_image::NO_CPU;

/// Where a VM's firmware is mapped: IPA 0, the start of the guest
/// platform's first flash bank (`crate::guest_platform::FLASH`).
pub const FIRMWARE_IPA: u32 = 0;
/// The largest firmware: one flash bank.
pub const FIRMWARE_BANK_BYTES: u32 = crate::system_image::FIRMWARE_BANK_BYTES;
/// A firmware VM's pool slice holds, after its RAM, its firmware's pages
/// (the firmware's size rounded up to this, so stage 2 maps them in
/// blocks) and then the erased start of its second flash bank.
pub const FIRMWARE_GRANULE: u32 = GUEST_RAM_ALIGNMENT;
/// Bytes at the start of the second flash bank (IPA 0x0400_0000, where
/// U-Boot keeps its environment and EDK2 its variables) kept in a firmware
/// VM's pool slice: the bank's store, erased at the VM's first start and
/// written by the guest's CFI commands (`capsules::flash`).
pub const ERASED_BANK_BYTES: u32 = 0x0020_0000;

/// An image's format, which says what the hypervisor checks in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// A Linux zImage (or a test guest with its header): the header is
    /// checked against the image's size and load address.
    Zimage,
    /// Bytes copied as they are (a raw kernel, an ELF's segments joined by
    /// the host tool, an initrd, a device tree).
    Raw,
}

/// An image of a VM, in host memory where the loader placed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Name for messages (`kernel`, `initrd`, `device tree`).
    pub name: &'static str,
    /// Its format.
    pub kind: ImageKind,
    /// Host-physical address of its first byte.
    pub host_address: u32,
    /// Its size in bytes.
    pub size: u32,
    /// Where in the VM's RAM it is copied (offset from the RAM base).
    pub load_offset: u32,
}

/// A virtual device a board can give a VM, at a guest-physical range
/// ([`BoardOffer`]); [`PLATFORM_DEVICES`] are the guest platform's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceClaim {
    /// Device name, one of [`crate::guest_platform::DEVICES`].
    pub name: &'static str,
    /// First guest-physical address.
    pub ipa: u32,
    /// Length in bytes.
    pub size: u32,
}

impl DeviceClaim {
    const fn end(&self) -> u64 {
        self.ipa as u64 + self.size as u64
    }

    /// The claim of a guest-platform device, at its window.
    pub const fn of(device: &GuestDevice) -> DeviceClaim {
        DeviceClaim {
            name: device.name,
            ipa: device.base,
            size: device.size,
        }
    }
}

/// The virtual devices a VM claims (the system image's device bits).
pub use crate::system_image::DeviceSet;

/// Every device of the guest platform ([`crate::guest_platform::DEVICES`])
/// at its window: what a board that emulates them all offers.
pub const PLATFORM_DEVICES: [DeviceClaim; guest_platform::DEVICES.len()] = {
    let mut claims = [DeviceClaim::of(&guest_platform::DEVICES[0]); guest_platform::DEVICES.len()];
    let mut index = 0;
    while index < claims.len() {
        claims[index] = DeviceClaim::of(&guest_platform::DEVICES[index]);
        index += 1;
    }
    claims
};

use crate::guest_platform::{self, GuestDevice, NAMES as DEVICE_NAMES};

/// One VM of the board's table, with names borrowed for `'a` (from the
/// system image, which lives as long as the hypervisor runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig<'a> {
    /// Name, unique on the board; prefixes the VM's console output.
    pub name: &'a str,
    /// Guest-physical base of RAM (normally [`GUEST_RAM_IPA`]).
    pub ram_ipa: u32,
    /// RAM size in bytes.
    pub ram_size: u32,
    /// Host-physical base of the slice of the guest pool backing the RAM.
    pub ram_host: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// The physical CPU each vCPU runs on: `cpus[i]` for vCPU `i` below
    /// `vcpus` ([`VmConfig::cpu_of`]), [`NO_CPU`] past them. A VM's vCPUs
    /// are on different CPUs; VMs may share a CPU.
    pub cpus: [u8; MAX_VCPUS],
    /// The kernel image (a VM has a kernel or a firmware, not both).
    pub kernel: Option<ImageConfig>,
    /// The firmware image, mapped read-only at [`FIRMWARE_IPA`] (its
    /// `load_offset` is 0: the start of the flash bank).
    pub firmware: Option<ImageConfig>,
    /// Where the vCPU starts, as an offset into RAM, or into the firmware
    /// for a VM with one ([`VmConfig::entry_ipa`]).
    pub entry_offset: u32,
    /// An optional initial RAM disk.
    pub initrd: Option<ImageConfig>,
    /// An optional device tree (without one, the hypervisor may write one).
    pub device_tree: Option<ImageConfig>,
    /// The kernel command line for the device tree the hypervisor writes.
    pub bootargs: &'a str,
    /// Virtual devices the VM claims.
    pub devices: DeviceSet,
}

impl<'a> VmConfig<'a> {
    const fn ram_ipa_end(&self) -> u64 {
        self.ram_ipa as u64 + self.ram_size as u64
    }

    /// The end of the VM's slice of the pool: its RAM, then for a VM with
    /// a firmware the firmware's pages and its flash store.
    const fn ram_host_end(&self) -> u64 {
        self.ram_host + self.pool_bytes() as u64
    }

    /// Bytes of the pool the VM takes: its RAM, and for a VM with a
    /// firmware the firmware's size rounded up to [`FIRMWARE_GRANULE`]
    /// and [`ERASED_BANK_BYTES`] for its second flash bank.
    pub const fn pool_bytes(&self) -> u32 {
        match self.firmware {
            Some(_) => self
                .ram_size
                .saturating_add(self.firmware_span())
                .saturating_add(ERASED_BANK_BYTES),
            None => self.ram_size,
        }
    }

    /// Bytes of the firmware's pages (its size rounded up to
    /// [`FIRMWARE_GRANULE`]; 0 without a firmware).
    pub const fn firmware_span(&self) -> u32 {
        match self.firmware {
            Some(firmware) => firmware
                .size
                .saturating_add(FIRMWARE_GRANULE - 1)
                .wrapping_div(FIRMWARE_GRANULE)
                .saturating_mul(FIRMWARE_GRANULE),
            None => 0,
        }
    }

    /// Host address of the firmware's pages: right after the VM's RAM in
    /// its pool slice.
    pub const fn firmware_host(&self) -> u64 {
        self.ram_host + self.ram_size as u64
    }

    /// Host address of the memory behind the second flash bank's first
    /// [`ERASED_BANK_BYTES`]: right after the firmware's pages.
    pub const fn erased_bank_host(&self) -> u64 {
        self.firmware_host() + self.firmware_span() as u64
    }

    /// The guest-physical address the vCPU starts at.
    pub const fn entry_ipa(&self) -> u32 {
        match self.firmware {
            Some(_) => FIRMWARE_IPA.wrapping_add(self.entry_offset),
            None => self.ram_ipa.wrapping_add(self.entry_offset),
        }
    }

    /// The physical CPU vCPU `vcpu` runs on; for a vCPU the VM does not
    /// have, [`NO_CPU`] (255, which no board has).
    pub fn cpu_of(&self, vcpu: usize) -> usize {
        match self.cpus.get(vcpu) {
            Some(&cpu) if vcpu < self.vcpus as usize => cpu as usize,
            _ => NO_CPU as usize,
        }
    }

    /// The images the VM copies into its RAM (not its firmware, which is
    /// mapped at IPA 0).
    pub fn images(&self) -> impl Iterator<Item = &ImageConfig> {
        self.kernel
            .iter()
            .chain(self.initrd.as_ref())
            .chain(self.device_tree.as_ref())
    }

    /// VM `entry` of `table`, a system image whose first byte is at host
    /// address `image_base`, its RAM placed in a pool starting at
    /// `pool_start`; its RAM at [`GUEST_RAM_IPA`]. Checked by [`validate`],
    /// like any table.
    pub fn from_table(
        table: &SystemTable<'a>,
        entry: &VmEntry<'a>,
        image_base: u32,
        pool_start: u32,
    ) -> VmConfig<'a> {
        let image = |role: Role, name: &'static str| {
            entry.image(role).map(|image| ImageConfig {
                name,
                kind: match (role, entry.format) {
                    (Role::Kernel, KernelFormat::Zimage) => ImageKind::Zimage,
                    _ => ImageKind::Raw,
                },
                host_address: image_base.wrapping_add(table.data_offset(image)),
                size: image.size(),
                load_offset: image.load_offset,
            })
        };
        VmConfig {
            name: entry.name,
            ram_ipa: GUEST_RAM_IPA,
            ram_size: entry.ram_size,
            ram_host: pool_start as u64 + entry.ram_offset as u64,
            vcpus: entry.vcpus,
            cpus: entry.cpus,
            kernel: image(Role::Kernel, "kernel"),
            firmware: image(Role::Firmware, "firmware"),
            entry_offset: entry.entry_offset,
            initrd: image(Role::Initrd, "initrd"),
            device_tree: image(Role::DeviceTree, "device tree"),
            bootargs: entry.bootargs,
            devices: DeviceSet(entry.devices),
        }
    }
}

use crate::system_image::{BoardSlice, KernelFormat, Role, SystemTable, VmEntry};

/// Why an image cannot be used, as the board's probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageProblem {
    /// Nothing recognisable at its address (not loaded, or not that kind of
    /// image).
    Missing,
    /// A header that does not make sense (sizes, magic).
    Malformed,
    /// Its address is outside the board's image staging area.
    OutsideStaging,
    /// An image linked to run at an address other than where it is loaded.
    WrongAddress,
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageProblem::Missing => "is not a zImage (no zImage header at its start)",
            ImageProblem::Malformed => {
                "is malformed (its zImage header makes no sense, or claims more bytes than were packed)"
            }
            ImageProblem::OutsideStaging => "is not inside the image staging area",
            ImageProblem::WrongAddress => {
                "is linked to run at another address than its load address"
            }
        })
    }
}

/// The first problem in a VM table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// No VM declared.
    NoVms,
    /// More VMs than VMIDs or table slots.
    TooManyVms { count: usize, max: usize },
    /// Two VMs with one name.
    DuplicateName { name: &'a str },
    /// RAM of size 0.
    EmptyRam { vm: &'a str },
    /// RAM base or size not aligned.
    MisalignedRam { vm: &'a str, alignment: u32 },
    /// RAM not inside the host's guest pool.
    RamOutsidePool { vm: &'a str },
    /// Two VMs backed by overlapping host RAM.
    RamOverlap { vm: &'a str, other: &'a str },
    /// An image the probe rejected.
    BadImage {
        vm: &'a str,
        image: &'static str,
        problem: ImageProblem,
    },
    /// An image that does not fit in RAM at its load offset.
    ImageTooLarge {
        vm: &'a str,
        image: &'static str,
        size: u32,
        room: u32,
    },
    /// Two images overlapping once copied into RAM.
    ImagesOverlap {
        vm: &'a str,
        image: &'static str,
        other: &'static str,
    },
    /// A device the board does not offer.
    UnknownDevice { vm: &'a str, device: &'static str },
    /// More vCPUs than the board gives a VM (or none).
    TooManyVcpus { vm: &'a str, vcpus: u32, max: u32 },
    /// A vCPU on a CPU that is not online on this boot (`cpus` are, from
    /// CPU 0).
    CpuOffline {
        vm: &'a str,
        vcpu: usize,
        cpu: usize,
        cpus: u32,
    },
    /// Two vCPUs of one VM on one CPU.
    CpuTwice {
        vm: &'a str,
        vcpu: usize,
        other: usize,
        cpu: usize,
    },
    /// A device claim overlapping another claim or the RAM.
    DeviceConflict {
        vm: &'a str,
        device: &'static str,
        other: &'static str,
    },
    /// Not exactly one of a kernel and a firmware, or a firmware with an
    /// initrd.
    BootImage { vm: &'a str, problem: &'static str },
    /// A firmware larger than the flash bank it is mapped in.
    FirmwareTooLarge { vm: &'a str, size: u32 },
    /// The flash window claimed without a firmware, or a firmware without
    /// its flash window (`firmware` says which VM has one).
    FlashClaim { vm: &'a str, firmware: bool },
    /// A writable disk whose copy is not inside the guest pool.
    DiskOutsidePool { vm: &'a str, disk: usize },
    /// A writable disk's copy overlapping a VM's RAM or another copy.
    DiskOverlap {
        vm: &'a str,
        disk: usize,
        other: &'a str,
    },
    /// A disk in a virtio-mmio slot the VM does not claim.
    DiskSlotUnclaimed {
        vm: &'a str,
        disk: usize,
        slot: &'static str,
    },
    /// Two slices of the board disk sharing sectors.
    BoardSliceOverlap {
        vm: &'a str,
        disk: usize,
        slice: BoardSlice,
        other: &'a str,
        other_disk: usize,
        other_slice: BoardSlice,
    },
    /// A slice of the board disk reaching past its end (`disk_sectors`).
    BoardSliceBeyondDisk {
        vm: &'a str,
        disk: usize,
        slice: BoardSlice,
        disk_sectors: u64,
    },
    /// A slice of the board disk on a board that has none attached.
    NoBoardDisk {
        vm: &'a str,
        disk: usize,
        slice: BoardSlice,
    },
}

impl<'a> ConfigError<'a> {
    /// The VM the problem is with, if it is with one VM.
    pub fn vm(&self) -> Option<&'a str> {
        match *self {
            ConfigError::NoVms | ConfigError::TooManyVms { .. } => None,
            ConfigError::DuplicateName { name } => Some(name),
            ConfigError::EmptyRam { vm }
            | ConfigError::MisalignedRam { vm, .. }
            | ConfigError::RamOutsidePool { vm }
            | ConfigError::RamOverlap { vm, .. }
            | ConfigError::BadImage { vm, .. }
            | ConfigError::ImageTooLarge { vm, .. }
            | ConfigError::ImagesOverlap { vm, .. }
            | ConfigError::UnknownDevice { vm, .. }
            | ConfigError::TooManyVcpus { vm, .. }
            | ConfigError::CpuOffline { vm, .. }
            | ConfigError::CpuTwice { vm, .. }
            | ConfigError::DeviceConflict { vm, .. }
            | ConfigError::BootImage { vm, .. }
            | ConfigError::FirmwareTooLarge { vm, .. }
            | ConfigError::FlashClaim { vm, .. } => Some(vm),
            ConfigError::DiskOutsidePool { vm, .. }
            | ConfigError::DiskOverlap { vm, .. }
            | ConfigError::DiskSlotUnclaimed { vm, .. }
            | ConfigError::BoardSliceOverlap { vm, .. }
            | ConfigError::BoardSliceBeyondDisk { vm, .. }
            | ConfigError::NoBoardDisk { vm, .. } => Some(vm),
        }
    }
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::NoVms => write!(f, "no VMs are configured"),
            ConfigError::TooManyVms { count, max } => {
                write!(f, "{count} VMs configured, at most {max} are supported")
            }
            ConfigError::DuplicateName { name } => write!(f, "two VMs are named '{name}'"),
            ConfigError::EmptyRam { vm } => write!(f, "VM '{vm}': RAM size is 0"),
            ConfigError::MisalignedRam { vm, alignment } => write!(
                f,
                "VM '{vm}': RAM base and size must be multiples of {alignment:#x}"
            ),
            ConfigError::RamOutsidePool { vm } => {
                write!(f, "VM '{vm}': RAM is not inside the host's guest pool")
            }
            ConfigError::RamOverlap { vm, other } => {
                write!(f, "VM '{vm}': RAM overlaps the RAM of VM '{other}'")
            }
            ConfigError::BadImage { vm, image, problem } => {
                write!(f, "VM '{vm}': image '{image}' {problem}")
            }
            ConfigError::ImageTooLarge {
                vm,
                image,
                size,
                room,
            } => write!(
                f,
                "VM '{vm}': image '{image}' is {size} bytes but only {room} bytes of RAM remain at its load offset"
            ),
            ConfigError::ImagesOverlap { vm, image, other } => {
                write!(f, "VM '{vm}': images '{image}' and '{other}' overlap in RAM")
            }
            ConfigError::UnknownDevice { vm, device } => {
                write!(f, "VM '{vm}': the board offers no device '{device}'")
            }
            ConfigError::TooManyVcpus { vm, vcpus, max } => {
                write!(f, "VM '{vm}': {vcpus} vCPUs, the board gives a VM at most {max}")
            }
            ConfigError::CpuOffline {
                vm,
                vcpu,
                cpu,
                cpus,
            } => {
                write!(f, "VM '{vm}': vCPU {vcpu} runs on CPU {cpu}, but ")?;
                match cpus {
                    0 => write!(f, "no CPU is online"),
                    1 => write!(f, "only CPU 0 is online"),
                    _ => write!(f, "only CPUs 0 to {} are online", cpus - 1),
                }
            }
            ConfigError::CpuTwice {
                vm,
                vcpu,
                other,
                cpu,
            } => write!(
                f,
                "VM '{vm}': vCPUs {other} and {vcpu} both run on CPU {cpu}; each vCPU needs its own CPU"
            ),
            ConfigError::DeviceConflict { vm, device, other } => {
                write!(f, "VM '{vm}': device '{device}' overlaps '{other}'")
            }
            ConfigError::BootImage { vm, problem } => write!(f, "VM '{vm}': {problem}"),
            ConfigError::FirmwareTooLarge { vm, size } => write!(
                f,
                "VM '{vm}': its firmware is {size} bytes, more than the {FIRMWARE_BANK_BYTES} bytes of the flash bank it is mapped in"
            ),
            ConfigError::FlashClaim { vm, firmware: true } => write!(
                f,
                "VM '{vm}': has a firmware but does not claim device '{}', the window it is mapped in",
                guest_platform::FLASH.name
            ),
            ConfigError::FlashClaim { vm, firmware: false } => write!(
                f,
                "VM '{vm}': claims device '{}', which only a VM with a firmware has",
                guest_platform::FLASH.name
            ),
            ConfigError::DiskOutsidePool { vm, disk } => write!(
                f,
                "VM '{vm}': the copy of writable disk {disk} is not inside the host's guest pool"
            ),
            ConfigError::DiskOverlap { vm, disk, other } => write!(
                f,
                "VM '{vm}': the copy of writable disk {disk} overlaps the RAM or a disk of VM '{other}'"
            ),
            ConfigError::DiskSlotUnclaimed { vm, disk, slot } => write!(
                f,
                "VM '{vm}': disk {disk} is in slot '{slot}', which the VM does not claim"
            ),
            ConfigError::BoardSliceOverlap {
                vm,
                disk,
                slice,
                other,
                other_disk,
                other_slice,
            } => write!(
                f,
                "VM '{vm}': disk {disk}, {}, overlaps disk {other_disk} of VM '{other}', {}",
                SliceText(slice),
                SliceText(other_slice)
            ),
            ConfigError::BoardSliceBeyondDisk {
                vm,
                disk,
                slice,
                disk_sectors,
            } => write!(
                f,
                "VM '{vm}': disk {disk}, {}, reaches past the end of the board disk, which is {} ({disk_sectors} sectors)",
                SliceText(slice),
                Size(disk_sectors * SECTOR_BYTES),
            ),
            ConfigError::NoBoardDisk { vm, disk, slice } => write!(
                f,
                "VM '{vm}': disk {disk}, {}, but the board has no disk attached (0 bytes; give QEMU one: the runner's --disk)",
                SliceText(slice)
            ),
        }
    }
}

/// What a board has to give its VMs: the one description of it, for the
/// board at boot and for the host tool (`tools/system`) before it packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardOffer<'a> {
    /// The host RAM pool every VM's RAM must come from.
    pub pool: &'a Region,
    /// How many VMIDs the board can give out.
    pub vmids: usize,
    /// The most vCPUs a VM may have (at most [`MAX_VCPUS`] are taken).
    pub vcpus: u32,
    /// How many physical CPUs are online on this boot, CPUs 0 to
    /// `cpus - 1`: every vCPU must run on one of them.
    pub cpus: u32,
    /// The virtual devices a VM may claim, each at the one range where the
    /// board emulates it.
    pub devices: &'a [DeviceClaim],
}

/// Checks the table against what the board offers: VM count (VMIDs and
/// [`MAX_VMS`]) and names, vCPUs (1 to what the board gives a VM, each on
/// its own CPU, each CPU online), RAM alignment, placement in the pool and
/// disjointness, each image (as `probe` sizes it, given the VM and the
/// image) fitting its VM's RAM without overlapping another image, and
/// device claims: each a device of the board at its range, claimed once,
/// overlapping neither another claim nor RAM.
pub fn validate<'a>(
    vms: &[VmConfig<'a>],
    offer: &BoardOffer<'_>,
    probe: impl Fn(&VmConfig<'a>, &ImageConfig) -> Result<u32, ImageProblem>,
) -> Result<(), ConfigError<'a>> {
    let max = offer.vmids.min(MAX_VMS);
    if vms.is_empty() {
        return Err(ConfigError::NoVms);
    }
    if vms.len() > max {
        return Err(ConfigError::TooManyVms {
            count: vms.len(),
            max,
        });
    }
    for (index, vm) in vms.iter().enumerate() {
        if let Some(twin) = vms[..index].iter().find(|other| other.name == vm.name) {
            return Err(ConfigError::DuplicateName { name: twin.name });
        }
        check_vcpus(vm, offer)?;
        check_ram(vm, offer.pool)?;
        if let Some(other) = vms[..index]
            .iter()
            .find(|other| vm.ram_host < other.ram_host_end() && other.ram_host < vm.ram_host_end())
        {
            return Err(ConfigError::RamOverlap {
                vm: vm.name,
                other: other.name,
            });
        }
        check_boot(vm)?;
        check_images(vm, &probe)?;
        check_devices(vm, offer.devices)?;
    }
    Ok(())
}

/// A kernel or a firmware, not both; a firmware within its flash bank,
/// without an initrd, and the flash window claimed exactly when there is
/// one.
fn check_boot<'a>(vm: &VmConfig<'a>) -> Result<(), ConfigError<'a>> {
    let problem = match (&vm.kernel, &vm.firmware, &vm.initrd) {
        (None, None, _) => Some("has neither a kernel nor a firmware"),
        (Some(_), Some(_), _) => Some("has both a kernel and a firmware"),
        (None, Some(_), Some(_)) => {
            Some("has an initrd and a firmware (the firmware loads what it boots)")
        }
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(ConfigError::BootImage {
            vm: vm.name,
            problem,
        });
    }
    if let Some(firmware) = vm.firmware {
        if firmware.size == 0 || firmware.size > FIRMWARE_BANK_BYTES {
            return Err(ConfigError::FirmwareTooLarge {
                vm: vm.name,
                size: firmware.size,
            });
        }
    }
    let firmware = vm.firmware.is_some();
    if vm.devices.has(guest_platform::FLASH.name) != firmware {
        return Err(ConfigError::FlashClaim {
            vm: vm.name,
            firmware,
        });
    }
    Ok(())
}

/// Bytes of a sector of the board disk.
const SECTOR_BYTES: u64 = crate::system_image::DISK_SECTOR as u64;

/// "a slice of the board disk of 128 MiB at 64 MiB (sectors
/// 131072..393216)".
struct SliceText(BoardSlice);

impl fmt::Display for SliceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slice = self.0;
        write!(
            f,
            "a slice of the board disk of {} at {} (sectors {}..{})",
            Size(slice.sectors as u64 * SECTOR_BYTES),
            Size(slice.first as u64 * SECTOR_BYTES),
            slice.first,
            slice.end()
        )
    }
}

/// A VM's disk: in host memory, the image the description packed and,
/// for a writable disk, where the board copies it to serve it; or a slice
/// of the board disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    /// Host-physical address of the packed image (in the staging area).
    pub host_address: u32,
    /// Its size in bytes (whole 512-byte sectors).
    pub size: u32,
    /// For a writable disk, the host-physical address of its copy in the
    /// guest pool; `None` for a read-only one, served where it lies
    /// (and for a board-disk slice).
    pub copy: Option<u64>,
    /// For a slice of the board disk (no image: address and size 0):
    /// where it lies on the board disk.
    pub board: Option<BoardSlice>,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

impl DiskConfig {
    /// The first host address past its copy, if it has one.
    fn copy_range(&self) -> Option<(u64, u64)> {
        self.copy.map(|start| (start, start + self.size as u64))
    }

    /// The disks of VM `entry` of `table` (placed as
    /// [`VmConfig::from_table`] places its images), in slot order.
    pub fn from_table(
        table: &SystemTable<'_>,
        entry: &VmEntry<'_>,
        image_base: u32,
        pool_start: u32,
    ) -> [Option<DiskConfig>; MAX_DISKS] {
        let mut disks = [None; MAX_DISKS];
        for (slot, image) in disks.iter_mut().zip(entry.disks()) {
            *slot = Some(DiskConfig {
                host_address: match image.slice {
                    Some(_) => 0,
                    None => image_base.wrapping_add(table.data_offset(image)),
                },
                size: image.size(),
                copy: (image.role == Role::WritableDisk)
                    .then_some(pool_start as u64 + image.load_offset as u64),
                board: image.slice,
                read_only: matches!(image.role, Role::Disk | Role::ReadOnlyBoardDisk),
            });
        }
        disks
    }
}

/// The most disks a VM has: one per virtio-mmio slot.
pub const MAX_DISKS: usize = crate::system_image::MAX_DISKS;

/// Checks each VM's disks (`disks[i]` are VM `i`'s, slot order) against
/// the table: each in a slot its VM claims, and the copy of a writable
/// one inside `pool`, clear of every VM's RAM and of every other copy.
pub fn validate_disks<'a>(
    vms: &[VmConfig<'a>],
    disks: &[[Option<DiskConfig>; MAX_DISKS]],
    pool: &Region,
) -> Result<(), ConfigError<'a>> {
    let copies = || {
        vms.iter().zip(disks).flat_map(|(vm, disks)| {
            disks
                .iter()
                .enumerate()
                .filter_map(move |(n, disk)| Some((vm.name, n, disk.as_ref()?.copy_range()?)))
        })
    };
    for (vm, disks) in vms.iter().zip(disks) {
        for (n, disk) in disks.iter().enumerate() {
            let Some(disk) = disk else { continue };
            let slot = guest_platform::VIRTIO_MMIO[n].name;
            if !vm.devices.has(slot) {
                return Err(ConfigError::DiskSlotUnclaimed {
                    vm: vm.name,
                    disk: n,
                    slot,
                });
            }
            let Some((start, end)) = disk.copy_range() else {
                continue;
            };
            if start < pool.start as u64 || end > pool.end() {
                return Err(ConfigError::DiskOutsidePool {
                    vm: vm.name,
                    disk: n,
                });
            }
            let overlaps =
                |(other_start, other_end): (u64, u64)| start < other_end && other_start < end;
            if let Some(other) = vms
                .iter()
                .find(|other| overlaps((other.ram_host, other.ram_host_end())))
            {
                return Err(ConfigError::DiskOverlap {
                    vm: vm.name,
                    disk: n,
                    other: other.name,
                });
            }
            if let Some((other, _, _)) = copies().find(|&(other, other_n, range)| {
                (other, other_n) != (vm.name, n) && overlaps(range)
            }) {
                return Err(ConfigError::DiskOverlap {
                    vm: vm.name,
                    disk: n,
                    other,
                });
            }
        }
    }
    Ok(())
}

/// What is known of the board disk when its slices are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardDiskSize {
    /// Nothing (the host tool, not told): only overlaps are checked.
    Unknown,
    /// The board has none: any slice is refused.
    Absent,
    /// It has this many sectors: slices must end inside.
    Sectors(u64),
}

/// Checks the VMs' slices of the board disk (`disks[i]` are VM `i`'s,
/// slot order): no two share a sector (two read-only ones neither: a
/// slice is one VM's), and each lies inside the board disk as far as
/// `board` tells. Names the first problem, with both VMs and disks or
/// both sizes.
pub fn validate_board_slices<'a>(
    vms: &[VmConfig<'a>],
    disks: &[[Option<DiskConfig>; MAX_DISKS]],
    board: BoardDiskSize,
) -> Result<(), ConfigError<'a>> {
    let slices = || {
        vms.iter().zip(disks).flat_map(|(vm, disks)| {
            disks
                .iter()
                .enumerate()
                .filter_map(move |(n, disk)| Some((vm.name, n, disk.as_ref()?.board?)))
        })
    };
    for (index, (vm, disk, slice)) in slices().enumerate() {
        match board {
            BoardDiskSize::Absent => return Err(ConfigError::NoBoardDisk { vm, disk, slice }),
            BoardDiskSize::Sectors(sectors) if slice.end() > sectors => {
                return Err(ConfigError::BoardSliceBeyondDisk {
                    vm,
                    disk,
                    slice,
                    disk_sectors: sectors,
                })
            }
            _ => {}
        }
        if let Some((other, other_disk, other_slice)) = slices()
            .take(index)
            .find(|(_, _, other)| other.overlaps(&slice))
        {
            return Err(ConfigError::BoardSliceOverlap {
                vm,
                disk,
                slice,
                other,
                other_disk,
                other_slice,
            });
        }
    }
    Ok(())
}

fn check_vcpus<'a>(vm: &VmConfig<'a>, offer: &BoardOffer<'_>) -> Result<(), ConfigError<'a>> {
    let max = offer.vcpus.min(MAX_VCPUS as u32);
    if vm.vcpus == 0 || vm.vcpus > max {
        return Err(ConfigError::TooManyVcpus {
            vm: vm.name,
            vcpus: vm.vcpus,
            max,
        });
    }
    for vcpu in 0..vm.vcpus as usize {
        let cpu = vm.cpu_of(vcpu);
        if cpu >= offer.cpus as usize {
            return Err(ConfigError::CpuOffline {
                vm: vm.name,
                vcpu,
                cpu,
                cpus: offer.cpus,
            });
        }
        if let Some(other) = (0..vcpu).find(|&other| vm.cpu_of(other) == cpu) {
            return Err(ConfigError::CpuTwice {
                vm: vm.name,
                vcpu,
                other,
                cpu,
            });
        }
    }
    Ok(())
}

fn check_ram<'a>(vm: &VmConfig<'a>, pool: &Region) -> Result<(), ConfigError<'a>> {
    if vm.ram_size == 0 {
        return Err(ConfigError::EmptyRam { vm: vm.name });
    }
    if !vm.ram_ipa.is_multiple_of(GUEST_RAM_IPA_ALIGNMENT) {
        return Err(ConfigError::MisalignedRam {
            vm: vm.name,
            alignment: GUEST_RAM_IPA_ALIGNMENT,
        });
    }
    if !vm.ram_size.is_multiple_of(GUEST_RAM_ALIGNMENT)
        || !vm.ram_host.is_multiple_of(GUEST_RAM_ALIGNMENT as u64)
    {
        return Err(ConfigError::MisalignedRam {
            vm: vm.name,
            alignment: GUEST_RAM_ALIGNMENT,
        });
    }
    if vm.ram_ipa_end() > 1 << 32
        || vm.ram_host < pool.start as u64
        || vm.ram_host_end() > pool.end()
    {
        return Err(ConfigError::RamOutsidePool { vm: vm.name });
    }
    Ok(())
}

fn check_images<'a>(
    vm: &VmConfig<'a>,
    probe: &impl Fn(&VmConfig<'a>, &ImageConfig) -> Result<u32, ImageProblem>,
) -> Result<(), ConfigError<'a>> {
    let mut placed: [Option<(&'static str, u64, u64)>; 3] = [None; 3];
    for (slot, image) in vm.images().enumerate() {
        let size = probe(vm, image).map_err(|problem| ConfigError::BadImage {
            vm: vm.name,
            image: image.name,
            problem,
        })?;
        let room = vm.ram_size.saturating_sub(image.load_offset);
        if size > room {
            return Err(ConfigError::ImageTooLarge {
                vm: vm.name,
                image: image.name,
                size,
                room,
            });
        }
        let (start, end) = (
            image.load_offset as u64,
            image.load_offset as u64 + size as u64,
        );
        if let Some((other, _, _)) = placed
            .iter()
            .flatten()
            .find(|(_, other_start, other_end)| start < *other_end && *other_start < end)
        {
            return Err(ConfigError::ImagesOverlap {
                vm: vm.name,
                image: image.name,
                other,
            });
        }
        placed[slot] = Some((image.name, start, end));
    }
    Ok(())
}

fn check_devices<'a>(vm: &VmConfig<'a>, offered: &[DeviceClaim]) -> Result<(), ConfigError<'a>> {
    let mut claimed: [Option<&DeviceClaim>; DEVICE_NAMES.len()] = [None; DEVICE_NAMES.len()];
    for (index, name) in vm.devices.names().enumerate() {
        let Some(device) = offered.iter().find(|device| device.name == name) else {
            return Err(ConfigError::UnknownDevice {
                vm: vm.name,
                device: name,
            });
        };
        let overlaps_ram =
            (device.ipa as u64) < vm.ram_ipa_end() && (vm.ram_ipa as u64) < device.end();
        if overlaps_ram || device.size == 0 {
            return Err(ConfigError::DeviceConflict {
                vm: vm.name,
                device: device.name,
                other: "RAM",
            });
        }
        if let Some(other) = claimed
            .iter()
            .flatten()
            .find(|other| (device.ipa as u64) < other.end() && (other.ipa as u64) < device.end())
        {
            return Err(ConfigError::DeviceConflict {
                vm: vm.name,
                device: device.name,
                other: other.name,
            });
        }
        claimed[index] = Some(device);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::memory::{MemoryType, Permissions};
    use std::format;

    const POOL: Region = Region::new(
        "guest-ram",
        0x8000_0000,
        0x4000_0000,
        MemoryType::Normal,
        Permissions::ReadWrite,
    );
    const DEVICES: &[DeviceClaim] = &PLATFORM_DEVICES;

    fn vm(name: &'static str, ram_host: u64) -> VmConfig<'static> {
        VmConfig {
            name,
            ram_ipa: GUEST_RAM_IPA,
            ram_size: 0x0800_0000,
            ram_host,
            vcpus: 1,
            cpus: [0, NO_CPU, NO_CPU, NO_CPU],
            kernel: Some(ImageConfig {
                name: "zImage",
                kind: ImageKind::Zimage,
                host_address: 0x0100_0000,
                size: 0x0010_0000,
                load_offset: 0x8000,
            }),
            firmware: None,
            entry_offset: 0x8000,
            initrd: Some(ImageConfig {
                name: "initrd",
                kind: ImageKind::Raw,
                host_address: 0x0200_0000,
                size: 0x0010_0000,
                load_offset: 0x0400_0000,
            }),
            device_tree: None,
            bootargs: "",
            devices: KERNEL_DEVICES,
        }
    }

    /// Every device but the flash window (which only a firmware has).
    const KERNEL_DEVICES: DeviceSet = DeviceSet(DeviceSet::ALL.0 & !FLASH_BIT);
    const FLASH_BIT: u32 = 1 << 4;

    fn sized(_: &VmConfig, _: &ImageConfig) -> Result<u32, ImageProblem> {
        Ok(0x0010_0000)
    }

    /// The board of these tests: POOL, 255 VMIDs, a vCPU per VM on one CPU,
    /// DEVICES.
    fn offer(vmids: usize) -> BoardOffer<'static> {
        BoardOffer {
            pool: &POOL,
            vmids,
            vcpus: 1,
            cpus: 1,
            devices: DEVICES,
        }
    }

    fn check<'a>(vms: &[VmConfig<'a>]) -> Result<(), ConfigError<'a>> {
        validate(vms, &offer(255), sized)
    }

    #[test]
    fn a_good_two_vm_table_passes() {
        assert_eq!(
            check(&[vm("linux", 0x8000_0000), vm("small", 0x8800_0000)]),
            Ok(())
        );
    }

    #[test]
    fn counts_and_names() {
        assert_eq!(check(&[]), Err(ConfigError::NoVms));
        let many = [
            vm("a", 0x8000_0000),
            vm("b", 0x8800_0000),
            vm("c", 0x9000_0000),
        ];
        let error = validate(&many, &offer(2), sized).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "3 VMs configured, at most 2 are supported"
        );
        let error = check(&[vm("a", 0x8000_0000), vm("a", 0x8800_0000)]).unwrap_err();
        assert_eq!(format!("{error}"), "two VMs are named 'a'");
    }

    #[test]
    fn ram_alignment_and_placement() {
        let mut odd = vm("odd", 0x8000_0000);
        odd.ram_host = 0x8000_1000;
        assert_eq!(
            check(&[odd]),
            Err(ConfigError::MisalignedRam {
                vm: "odd",
                alignment: 0x20_0000
            })
        );
        let mut odd_ipa = vm("odd-ipa", 0x8000_0000);
        odd_ipa.ram_ipa = 0x4020_0000;
        assert_eq!(
            check(&[odd_ipa]),
            Err(ConfigError::MisalignedRam {
                vm: "odd-ipa",
                alignment: 0x0800_0000
            })
        );
        let mut empty = vm("empty", 0x8000_0000);
        empty.ram_size = 0;
        assert_eq!(check(&[empty]), Err(ConfigError::EmptyRam { vm: "empty" }));
        let outside = vm("outside", 0xbc00_0000); // runs past 0xc000_0000
        let error = check(&[outside]).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'outside': RAM is not inside the host's guest pool"
        );
    }

    #[test]
    fn overlapping_ram_names_both_vms() {
        let error = check(&[vm("first", 0x8000_0000), vm("second", 0x87e0_0000)]).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'second': RAM overlaps the RAM of VM 'first'"
        );
    }

    #[test]
    fn missing_and_oversized_images() {
        let missing = |_: &VmConfig, image: &ImageConfig| {
            if image.name == "initrd" {
                Err(ImageProblem::Missing)
            } else {
                Ok(0x1000)
            }
        };
        let error = validate(&[vm("linux", 0x8000_0000)], &offer(255), missing).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'linux': image 'initrd' is not a zImage (no zImage header at its start)"
        );

        let huge = |_: &VmConfig, _: &ImageConfig| Ok(0x0800_0000);
        let error = validate(&[vm("linux", 0x8000_0000)], &offer(255), huge).unwrap_err();
        assert_eq!(
            error,
            ConfigError::ImageTooLarge {
                vm: "linux",
                image: "zImage",
                size: 0x0800_0000,
                room: 0x07ff_8000
            }
        );
    }

    #[test]
    fn images_must_not_overlap_in_ram() {
        // A 64 MiB kernel at 0x8000 runs into the initrd at 64 MiB.
        let big_kernel = |_: &VmConfig, image: &ImageConfig| {
            Ok(if image.name == "zImage" {
                0x0400_0000
            } else {
                0x1000
            })
        };
        let error = validate(&[vm("linux", 0x8000_0000)], &offer(255), big_kernel).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'linux': images 'initrd' and 'zImage' overlap in RAM"
        );
    }

    #[test]
    fn devices_must_be_the_boards_and_clear_of_ram() {
        let with = |devices: DeviceSet, offered: &'static [DeviceClaim]| {
            let mut vm = vm("vm", 0x8000_0000);
            vm.devices = devices;
            validate(
                &[vm],
                &BoardOffer {
                    devices: offered,
                    ..offer(255)
                },
                sized,
            )
        };
        // The board's devices: fine; none at all: fine.
        assert_eq!(with(KERNEL_DEVICES, DEVICES), Ok(()));
        assert_eq!(with(DeviceSet(0), DEVICES), Ok(()));
        // A device the board does not offer.
        assert_eq!(
            format!("{}", with(KERNEL_DEVICES, &DEVICES[1..]).unwrap_err()),
            "VM 'vm': the board offers no device 'gic-distributor'"
        );
        // RAM placed over the devices (an IPA the alignment allows).
        let mut low = vm("low", 0x8000_0000);
        low.ram_ipa = 0x0800_0000;
        assert_eq!(
            check(&[low]),
            Err(ConfigError::DeviceConflict {
                vm: "low",
                device: "gic-distributor",
                other: "RAM"
            })
        );
        // A board whose own devices overlap: the second claim is refused.
        const OVERLAPPING: &[DeviceClaim] = &[
            DEVICES[0],
            DeviceClaim {
                name: "gic-cpu-interface",
                ipa: 0x0800_0800,
                size: 0x2000,
            },
        ];
        assert_eq!(
            format!("{}", with(DeviceSet(0b11), OVERLAPPING).unwrap_err()),
            "VM 'vm': device 'gic-cpu-interface' overlaps 'gic-distributor'"
        );
        assert_eq!(
            DeviceSet(0b101).names().collect::<std::vec::Vec<_>>(),
            ["gic-distributor", "pl011"]
        );
        assert!(DeviceSet(0b100).has("pl011") && !DeviceSet(0b100).has("gic-distributor"));
    }

    #[test]
    fn vcpus_are_what_the_board_gives() {
        let mut two = vm("two", 0x8000_0000);
        two.vcpus = 2;
        assert_eq!(
            format!("{}", check(&[two]).unwrap_err()),
            "VM 'two': 2 vCPUs, the board gives a VM at most 1"
        );
        let mut none = vm("none", 0x8000_0000);
        none.vcpus = 0;
        assert_eq!(
            check(&[none]),
            Err(ConfigError::TooManyVcpus {
                vm: "none",
                vcpus: 0,
                max: 1
            })
        );
        // A board offering more than MAX_VCPUS gives at most MAX_VCPUS.
        let mut five = vm("five", 0x8000_0000);
        five.vcpus = 5;
        let wide = BoardOffer {
            vcpus: 8,
            cpus: 8,
            ..offer(255)
        };
        assert_eq!(
            format!("{}", validate(&[five], &wide, sized).unwrap_err()),
            "VM 'five': 5 vCPUs, the board gives a VM at most 4"
        );
    }

    /// A VM of `cpus.len()` vCPUs, vCPU `i` on `cpus[i]`.
    fn on(name: &'static str, ram_host: u64, cpus: &[u8]) -> VmConfig<'static> {
        VmConfig {
            vcpus: cpus.len() as u32,
            cpus: crate::system_image::cpu_map(cpus),
            ..vm(name, ram_host)
        }
    }

    /// A board giving a VM 4 vCPUs, with `cpus` CPUs online.
    fn smp(cpus: u32) -> BoardOffer<'static> {
        BoardOffer {
            vcpus: MAX_VCPUS as u32,
            cpus,
            ..offer(255)
        }
    }

    #[test]
    fn each_vcpu_runs_on_its_own_online_cpu() {
        let linux = on("linux", 0x8000_0000, &[1, 2]);
        assert_eq!((linux.cpu_of(0), linux.cpu_of(1)), (1, 2));
        assert_eq!((linux.cpu_of(2), linux.cpu_of(9)), (255, 255));
        // VMs may share a CPU; a VM's vCPUs may be on any online CPUs.
        let table = [
            linux,
            on("ticker", 0x8800_0000, &[2]),
            on("wide", 0x9000_0000, &[3, 0, 2, 1]),
        ];
        assert_eq!(validate(&table, &smp(4), sized), Ok(()));
        // `-smp 2`: CPU 2 did not come up.
        let error = validate(&table, &smp(2), sized).unwrap_err();
        assert_eq!(
            error,
            ConfigError::CpuOffline {
                vm: "linux",
                vcpu: 1,
                cpu: 2,
                cpus: 2
            }
        );
        assert_eq!(
            format!("{error}"),
            "VM 'linux': vCPU 1 runs on CPU 2, but only CPUs 0 to 1 are online"
        );
        let error = validate(&[on("up", 0x8000_0000, &[1])], &smp(1), sized).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'up': vCPU 0 runs on CPU 1, but only CPU 0 is online"
        );
        let error = validate(&[on("up", 0x8000_0000, &[0])], &smp(0), sized).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'up': vCPU 0 runs on CPU 0, but no CPU is online"
        );
        // A map with no CPU for a vCPU the VM has.
        let mut gap = on("gap", 0x8000_0000, &[0]);
        gap.vcpus = 2;
        assert!(matches!(
            validate(&[gap], &smp(4), sized),
            Err(ConfigError::CpuOffline {
                vcpu: 1,
                cpu: 255,
                ..
            })
        ));
    }

    #[test]
    fn two_vcpus_of_a_vm_never_share_a_cpu() {
        let error = validate(&[on("pair", 0x8000_0000, &[1, 3, 1])], &smp(4), sized).unwrap_err();
        assert_eq!(
            error,
            ConfigError::CpuTwice {
                vm: "pair",
                vcpu: 2,
                other: 0,
                cpu: 1
            }
        );
        assert_eq!(
            format!("{error}"),
            "VM 'pair': vCPUs 0 and 2 both run on CPU 1; each vCPU needs its own CPU"
        );
    }

    #[test]
    fn a_packed_table_becomes_configurations() {
        use crate::system_image::{
            parse, ConsoleMode, DeviceTreeSource, FaultPolicy, ImageEntry, KernelFormat, Role,
            VmEntry, Writer,
        };
        let kernel = [7u8; 100];
        let packed = Writer::write(
            &[VmEntry {
                name: "raw",
                bootargs: "quiet",
                ram_size: 0x0020_0000,
                ram_offset: 0x0040_0000,
                vcpus: 2,
                cpus: crate::system_image::cpu_map(&[2, 0]),
                entry_offset: 0x1000,
                images: std::vec![ImageEntry {
                    role: Role::Kernel,
                    bytes: &kernel,
                    load_offset: 0x1000,
                    slice: None,
                }],
                devices: 0b100,
                policy: FaultPolicy::Stop,
                console: ConsoleMode::Held,
                device_tree: DeviceTreeSource::Generated,
                format: KernelFormat::Raw,
            }],
            0,
        );
        let table = parse(&packed).unwrap();
        let config = VmConfig::from_table(&table, &table.vms[0], 0xb000_0000, 0x8000_0000);
        assert_eq!(config.ram_host, 0x8040_0000);
        assert_eq!(
            (config.name, config.bootargs, config.entry_offset),
            ("raw", "quiet", 0x1000)
        );
        assert_eq!(
            config.kernel,
            Some(ImageConfig {
                name: "kernel",
                kind: ImageKind::Raw,
                host_address: 0xb000_1000,
                size: 100,
                load_offset: 0x1000
            })
        );
        assert_eq!((config.firmware, config.entry_ipa()), (None, 0x4000_1000));
        assert_eq!(config.devices, DeviceSet(0b100));
        assert_eq!((config.vcpus, config.cpus), (2, [2, 0, NO_CPU, NO_CPU]));
        assert_eq!((config.cpu_of(0), config.cpu_of(1)), (2, 0));
        assert_eq!(validate(&[config], &smp(3), sized), Ok(()));
        assert!(matches!(
            check(&[config]),
            Err(ConfigError::TooManyVcpus { vcpus: 2, .. })
        ));
    }

    #[test]
    fn the_table_is_limited_by_vmids_and_by_max_vms() {
        let table: std::vec::Vec<VmConfig> = (0..9u64)
            .map(|index| {
                vm(
                    ["a", "b", "c", "d", "e", "f", "g", "h", "i"][index as usize],
                    0x8000_0000 + index * 0x0800_0000,
                )
            })
            .collect();
        assert_eq!(
            format!("{}", validate(&table, &offer(255), sized).unwrap_err()),
            "9 VMs configured, at most 8 are supported"
        );
        assert_eq!(
            validate(&table[..4], &offer(3), sized),
            Err(ConfigError::TooManyVms { count: 4, max: 3 })
        );
    }

    /// A VM booting a firmware of `size` bytes instead of a kernel.
    fn firmware_vm(name: &'static str, ram_host: u64, size: u32) -> VmConfig<'static> {
        VmConfig {
            kernel: None,
            initrd: None,
            firmware: Some(ImageConfig {
                name: "firmware",
                kind: ImageKind::Raw,
                host_address: 0x0300_0000,
                size,
                load_offset: 0,
            }),
            entry_offset: 0,
            devices: DeviceSet(KERNEL_DEVICES.0 | FLASH_BIT),
            ..vm(name, ram_host)
        }
    }

    #[test]
    fn a_firmware_takes_its_pages_and_flash_store_after_its_ram() {
        assert_eq!(crate::guest_platform::index_of("flash"), Some(4));
        let uboot = firmware_vm("u-boot", 0x8000_0000, 789_972);
        assert_eq!(uboot.firmware_span(), 0x0020_0000);
        assert_eq!(uboot.firmware_host(), 0x8800_0000);
        assert_eq!(uboot.erased_bank_host(), 0x8820_0000);
        assert_eq!(uboot.pool_bytes(), 0x0800_0000 + 0x0040_0000);
        assert_eq!(uboot.entry_ipa(), FIRMWARE_IPA);
        assert_eq!(uboot.images().count(), 0, "nothing is copied into RAM");
        assert_eq!(check(&[uboot]), Ok(()));
        // The next VM's RAM may not start inside the firmware's slice.
        let error = check(&[uboot, vm("next", 0x8820_0000)]).unwrap_err();
        assert_eq!(
            format!("{error}"),
            "VM 'next': RAM overlaps the RAM of VM 'u-boot'"
        );
        assert_eq!(check(&[uboot, vm("next", 0x8840_0000)]), Ok(()));
        // A slice running past the pool's end (0xc000_0000).
        let high = firmware_vm("high", 0xb800_0000, 0x0020_0001);
        assert_eq!(high.pool_bytes(), 0x0800_0000 + 0x0060_0000);
        assert_eq!(
            check(&[high]),
            Err(ConfigError::RamOutsidePool { vm: "high" })
        );
    }

    #[test]
    fn a_vm_boots_a_kernel_or_a_firmware_with_its_flash_window() {
        let mut both = firmware_vm("both", 0x8000_0000, 0x1000);
        both.kernel = vm("x", 0).kernel;
        assert_eq!(
            format!("{}", check(&[both]).unwrap_err()),
            "VM 'both': has both a kernel and a firmware"
        );
        let mut neither = vm("neither", 0x8000_0000);
        neither.kernel = None;
        assert_eq!(
            format!("{}", check(&[neither]).unwrap_err()),
            "VM 'neither': has neither a kernel nor a firmware"
        );
        let mut initrd = firmware_vm("initrd", 0x8000_0000, 0x1000);
        initrd.initrd = vm("x", 0).initrd;
        assert!(matches!(
            check(&[initrd]),
            Err(ConfigError::BootImage { vm: "initrd", .. })
        ));
        let huge = firmware_vm("huge", 0x8000_0000, FIRMWARE_BANK_BYTES + 1);
        assert_eq!(
            format!("{}", check(&[huge]).unwrap_err()),
            "VM 'huge': its firmware is 67108865 bytes, more than the 67108864 bytes of the flash bank it is mapped in"
        );
        let mut no_window = firmware_vm("no-window", 0x8000_0000, 0x1000);
        no_window.devices = KERNEL_DEVICES;
        assert_eq!(
            format!("{}", check(&[no_window]).unwrap_err()),
            "VM 'no-window': has a firmware but does not claim device 'flash', the window it is mapped in"
        );
        let mut window = vm("window", 0x8000_0000);
        window.devices = DeviceSet::ALL;
        assert_eq!(
            check(&[window]),
            Err(ConfigError::FlashClaim {
                vm: "window",
                firmware: false
            })
        );
    }

    #[test]
    fn a_packed_firmware_becomes_the_vms_firmware() {
        use crate::system_image::{
            parse, ConsoleMode, DeviceTreeSource, FaultPolicy, ImageEntry, KernelFormat, Role,
            VmEntry, Writer,
        };
        let firmware = [0xeau8; 3000];
        let packed = Writer::write(
            &[VmEntry {
                name: "u-boot",
                bootargs: "",
                ram_size: 0x0800_0000,
                ram_offset: 0,
                vcpus: 1,
                cpus: crate::system_image::cpu_map(&[0]),
                entry_offset: 0,
                images: std::vec![ImageEntry {
                    role: Role::Firmware,
                    bytes: &firmware,
                    load_offset: 0,
                    slice: None,
                }],
                devices: KERNEL_DEVICES.0 | FLASH_BIT,
                policy: FaultPolicy::Stop,
                console: ConsoleMode::Held,
                device_tree: DeviceTreeSource::Generated,
                format: KernelFormat::Raw,
            }],
            0,
        );
        let table = parse(&packed).unwrap();
        let config = VmConfig::from_table(&table, &table.vms[0], 0xb000_0000, 0x8000_0000);
        assert_eq!(config.kernel, None);
        assert_eq!(
            config.firmware,
            Some(ImageConfig {
                name: "firmware",
                kind: ImageKind::Raw,
                host_address: 0xb000_1000,
                size: 3000,
                load_offset: 0
            })
        );
        assert_eq!(config.entry_ipa(), 0);
        assert_eq!(check(&[config]), Ok(()));
    }

    #[test]
    fn disks_in_claimed_slots_with_copies_inside_the_pool_and_apart() {
        let vms = [vm("a", 0x8000_0000), vm("b", 0x8800_0000)];
        let read_only = DiskConfig {
            host_address: 0x0100_0000,
            size: 4096,
            copy: None,
            board: None,
            read_only: true,
        };
        let copy = |at: u64| DiskConfig {
            copy: Some(at),
            read_only: false,
            ..read_only
        };
        let check = |disks: &[[Option<DiskConfig>; MAX_DISKS]]| validate_disks(&vms, disks, &POOL);
        let free = 0x9000_0000;
        assert_eq!(
            check(&[
                [Some(read_only), Some(copy(free))],
                [Some(copy(free + 4096)), None]
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[[Some(copy(0xc000_0000 - 2048)), None], [None, None]]),
            Err(ConfigError::DiskOutsidePool { vm: "a", disk: 0 })
        );
        assert_eq!(
            check(&[[None, None], [None, Some(copy(0x8000_1000))]]),
            Err(ConfigError::DiskOverlap {
                vm: "b",
                disk: 1,
                other: "a"
            })
        );
        let error =
            check(&[[Some(copy(free)), None], [Some(copy(free + 2048)), None]]).unwrap_err();
        assert_eq!(
            error,
            ConfigError::DiskOverlap {
                vm: "a",
                disk: 0,
                other: "b"
            }
        );
        assert!(format!("{error}").contains("writable disk 0 overlaps the RAM or a disk of VM 'b'"));
        let mut without = vms;
        without[0].devices = DeviceSet(0b1111);
        assert_eq!(
            validate_disks(&without, &[[Some(read_only), None], [None, None]], &POOL),
            Err(ConfigError::DiskSlotUnclaimed {
                vm: "a",
                disk: 0,
                slot: "virtio-mmio0"
            })
        );
    }

    #[test]
    fn board_slices_apart_and_inside_the_board_disk() {
        let vms = [vm("a", 0x8000_0000), vm("b", 0x8800_0000)];
        let slice = |first: u32, sectors: u32, read_only: bool| DiskConfig {
            host_address: 0,
            size: 0,
            copy: None,
            board: Some(BoardSlice { first, sectors }),
            read_only,
        };
        let disks = [
            [Some(slice(0, 2048, false)), Some(slice(4096, 1024, true))],
            [Some(slice(2048, 2048, false)), None],
        ];
        for size in [BoardDiskSize::Unknown, BoardDiskSize::Sectors(5120)] {
            assert_eq!(validate_board_slices(&vms, &disks, size), Ok(()));
        }
        // One sector short.
        let error = validate_board_slices(&vms, &disks, BoardDiskSize::Sectors(5119)).unwrap_err();
        assert_eq!(
            error,
            ConfigError::BoardSliceBeyondDisk {
                vm: "a",
                disk: 1,
                slice: BoardSlice {
                    first: 4096,
                    sectors: 1024
                },
                disk_sectors: 5119
            }
        );
        assert_eq!(
            format!("{error}"),
            "VM 'a': disk 1, a slice of the board disk of 512 KiB at 2 MiB (sectors 4096..5120), reaches past the end of the board disk, which is 2620928 B (5119 sectors)"
        );
        let error = validate_board_slices(&vms, &disks, BoardDiskSize::Absent).unwrap_err();
        assert_eq!(error.vm(), Some("a"));
        assert!(format!("{error}").contains("but the board has no disk attached"));
        // Sharing one sector, read-only or not, is refused, naming both.
        for read_only in [false, true] {
            let overlapping = [
                [Some(slice(0, 2048, read_only)), None],
                [None, Some(slice(2047, 1, read_only))],
            ];
            let error =
                validate_board_slices(&vms, &overlapping, BoardDiskSize::Unknown).unwrap_err();
            assert_eq!(
                format!("{error}"),
                "VM 'b': disk 1, a slice of the board disk of 512 B at 1048064 B (sectors 2047..2048), overlaps disk 0 of VM 'a', a slice of the board disk of 1 MiB at 0 B (sectors 0..2048)"
            );
        }
        // Image disks are not slices: nothing to check here.
        let image = DiskConfig {
            host_address: 0x0100_0000,
            size: 4096,
            copy: None,
            board: None,
            read_only: true,
        };
        assert_eq!(
            validate_board_slices(
                &vms,
                &[[Some(image), None], [None, None]],
                BoardDiskSize::Absent
            ),
            Ok(())
        );
    }
}
