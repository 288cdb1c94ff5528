// SPDX-License-Identifier: MIT OR Apache-2.0
//! The packed system image: a system description's VM table in a small,
//! versioned binary format, followed by the images its VMs boot.
//!
//! The host tool (`tools/system`) checks a description and packs it with
//! [`Writer`]; QEMU's loader places the result at the start of the board's
//! staging area; the hypervisor reads it with [`parse`], which trusts
//! nothing: every length, offset and enumeration is checked, and a CRC-32
//! over the whole image catches corruption, before a VM is built from it.
//! What the table means for a board (RAM against the pool, overlaps, images
//! inside their VM's RAM, devices offered) is checked next, by
//! [`crate::config::validate`] on the configurations
//! `crate::config::VmConfig::from_table` makes of the entries; the host
//! tool runs the same two steps on every image it packs.
//!
//! A VM is one [`VmEntry`] for both sides: what the writer packs and what
//! [`parse`] gives back (its images' bytes then borrowed from the system
//! image), so a round trip gives back equal entries. This module depends
//! on nothing else of the crate; `crate::config` builds on it.
//!
//! Layout, all numbers little-endian `u32`:
//!
//! | bytes | what |
//! |---|---|
//! | 0..64 | header: magic `CAPVSYS\0`, version, header size, total size, checksum, VM count, VM entry size, image count, image entry size, strings offset and size, data offset, focus, 2 reserved words |
//! | 64.. | one [`VM_ENTRY_BYTES`] entry per VM |
//! | then | one [`IMAGE_ENTRY_BYTES`] entry per image (each VM's images consecutive) |
//! | strings offset.. | VM names and kernel command lines (UTF-8, not terminated) |
//! | data offset.. | the images' bytes, each at a 4 KiB boundary; a file two VMs share is stored once |
//!
//! A VM entry, 17 words: name (offset, length), bootargs (offset,
//! length), RAM size, RAM offset in the board's pool, vCPUs (1 to
//! [`MAX_VCPUS`]), entry (offset into its RAM), first image and image
//! count, devices (a bit per [`DEVICES`] name), fault policy and restart
//! limit, console mode, device-tree source, kernel format, and the
//! vCPU-to-CPU map: byte `i` of that word (its `i`th byte in memory) is the
//! physical CPU vCPU `i` runs on, below [`CPU_NUMBERS`], each CPU at most once
//! in a VM; the bytes past the VM's vCPUs are [`NO_CPU`]. An image entry:
//! role, data offset, size, load offset (into the VM's RAM), a reserved
//! word (a board-disk slice's size; see below).
//!
//! A VM boots either a kernel (a [`Role::Kernel`] image, with an optional
//! initrd, entered at an offset into its RAM) or a firmware (a
//! [`Role::Firmware`] image and no kernel or initrd): the firmware is
//! mapped read-only at IPA 0, the guest platform's first flash bank
//! ([`FIRMWARE_BANK_BYTES`] at most), its load offset is 0 and the VM's
//! entry is an offset into it. A firmware image is a new role in version 2
//! (an older hypervisor refuses it as an unknown role, naming it).
//!
//! A VM's disks are images too ([`Role::Disk`], [`Role::WritableDisk`]),
//! at most [`MAX_DISKS`], in the order of its virtio-mmio slots, each a
//! whole number of 512-byte sectors. A read-only disk is served from the
//! staging area where it lies (its load offset is 0); a writable one is
//! copied once, at boot, to the board's guest pool at its load offset
//! (an offset into the pool, clear of every VM's RAM), and served from
//! there: what the guest writes stays until the board powers off. They
//! came in version 2 without a layout change: a hypervisor that predates
//! them refuses an image with disks as an unknown image role.
//!
//! A disk may also be a slice of the board's own storage (the board
//! disk): [`Role::BoardDisk`] (writable) or [`Role::ReadOnlyBoardDisk`],
//! with no bytes. Its entry's data offset and size are 0, its load-offset
//! word is the slice's first sector on the board disk and the last word
//! (reserved, 0, for every other role) its number of sectors (non-zero):
//! a slice starts below 2 TiB and is at most 2 TiB. Where the board disk
//! ends is known only at boot: the hypervisor checks the slices against it
//! then (`crate::config::validate_board_slices`), and the host tool when
//! it is told the disk's size; overlapping slices are refused by both. They
//! came in version 2 too, as new roles.
//!
//! Version 1 had 16-word VM entries without the CPU map (every VM on
//! CPU 0); this hypervisor reads only version 2.
//!
//! The checksum is CRC-32 (IEEE) of the whole image with the checksum word
//! taken as 0.

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// The first eight bytes.
pub const MAGIC: [u8; 8] = *b"CAPVSYS\0";
/// The format version this hypervisor reads and the tool writes.
pub const VERSION: u32 = 2;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 64;
/// Bytes of one VM entry (17 words).
pub const VM_ENTRY_BYTES: usize = 68;
/// Bytes of one image entry.
pub const IMAGE_ENTRY_BYTES: usize = 20;
/// Images start at multiples of this.
pub const DATA_ALIGNMENT: usize = 4096;
/// The most VMs a table may hold (and the hypervisor runs:
/// `crate::config::MAX_VMS` is this).
pub const MAX_VMS: usize = 8;
/// The most disks one VM may have (one per virtio-mmio slot of the guest
/// platform).
pub const MAX_DISKS: usize = crate::guest_platform::VIRTIO_MMIO.len();
/// A disk's size is a multiple of this (a sector of the block HIL).
pub const DISK_SECTOR: u32 = 512;
/// The most images one VM may have: its kernel (an ELF's loadable
/// segments are joined into one by the tool), an initrd, a device tree
/// and its disks; or its firmware, a device tree and its disks.
pub const MAX_IMAGES_PER_VM: usize = 3 + MAX_DISKS;
/// The largest firmware: the guest platform's first flash bank, where it
/// is mapped (IPA 0 up).
pub const FIRMWARE_BANK_BYTES: u32 = 0x0400_0000;
/// The longest VM name.
pub const MAX_NAME: usize = 31;
/// The longest kernel command line.
pub const MAX_BOOTARGS: usize = 1024;

/// The most vCPUs a VM entry may have (`crate::config::MAX_VCPUS` is
/// this): one byte each in the entry's CPU-map word.
pub const MAX_VCPUS: usize = 4;
/// CPU numbers a table may name are below this (so a set of them fits a
/// 32-bit mask); the board checks them against the CPUs it has
/// ([`crate::config::MAX_CPUS`] at most).
pub const CPU_NUMBERS: usize = 32;
/// The byte of a CPU map that stands for no CPU: every byte past a VM's
/// vCPUs.
pub const NO_CPU: u8 = 0xff;

// The CPU map is one word of the entry: a byte per vCPU.
const _: () = assert!(MAX_VCPUS == 4 && VM_ENTRY_BYTES == 17 * 4);

/// The CPU map of a VM whose vCPU `i` runs on CPU `cpus[i]`: those bytes,
/// then [`NO_CPU`] up to [`MAX_VCPUS`] (entries of `cpus` past
/// [`MAX_VCPUS`] are left out; such a VM is refused for its vCPU count).
pub fn cpu_map(cpus: &[u8]) -> [u8; MAX_VCPUS] {
    let mut map = [NO_CPU; MAX_VCPUS];
    for (slot, cpu) in map.iter_mut().zip(cpus) {
        *slot = *cpu;
    }
    map
}

/// The virtual devices a table can give a VM, by bit: the guest
/// platform's rows ([`crate::guest_platform::DEVICES`]), in their order. A
/// new row takes the next bit; the format does not change.
pub const DEVICES: [&str; crate::guest_platform::DEVICES.len()] = crate::guest_platform::NAMES;

/// The virtual devices a VM claims: a bit per name of [`DEVICES`], so
/// none can be claimed twice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceSet(pub u32);

impl DeviceSet {
    /// Every device of [`DEVICES`].
    pub const ALL: DeviceSet = DeviceSet((1 << DEVICES.len()) - 1);

    /// Whether the set holds the device called `name`.
    pub fn has(self, name: &str) -> bool {
        DEVICES
            .iter()
            .position(|device| *device == name)
            .is_some_and(|bit| self.0 & (1 << bit) != 0)
    }

    /// The names of the devices in the set (unknown bits are skipped).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        DEVICES
            .iter()
            .enumerate()
            .filter(move |(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
    }
}

/// Offsets of the header's words.
mod header {
    pub const VERSION: usize = 8;
    pub const HEADER_BYTES: usize = 12;
    pub const TOTAL: usize = 16;
    pub const CHECKSUM: usize = 20;
    pub const VM_COUNT: usize = 24;
    pub const VM_ENTRY_BYTES: usize = 28;
    pub const IMAGE_COUNT: usize = 32;
    pub const IMAGE_ENTRY_BYTES: usize = 36;
    pub const STRINGS: usize = 40;
    pub const STRINGS_BYTES: usize = 44;
    pub const DATA: usize = 48;
    pub const FOCUS: usize = 52;
    pub const RESERVED: [usize; 2] = [56, 60];
}

/// What an image is to its VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The kernel.
    Kernel = 1,
    /// The initial RAM disk.
    Initrd = 2,
    /// A device tree the description supplied.
    DeviceTree = 3,
    /// A firmware, mapped read-only at IPA 0 instead of a kernel in RAM.
    Firmware = 4,
    /// A read-only disk, served from the staging area.
    Disk = 5,
    /// A writable disk, copied to the guest pool at its load offset (an
    /// offset into the pool) at boot.
    WritableDisk = 6,
    /// A writable slice of the board disk ([`ImageEntry::slice`]), no
    /// bytes.
    BoardDisk = 7,
    /// A read-only slice of the board disk, no bytes.
    ReadOnlyBoardDisk = 8,
}

impl Role {
    /// Whether it is a disk (an image or a slice of the board disk).
    pub const fn is_disk(self) -> bool {
        matches!(
            self,
            Role::Disk | Role::WritableDisk | Role::BoardDisk | Role::ReadOnlyBoardDisk
        )
    }

    /// Whether it is a slice of the board disk.
    pub const fn is_board_disk(self) -> bool {
        matches!(self, Role::BoardDisk | Role::ReadOnlyBoardDisk)
    }
}

/// A slice of the board disk, in 512-byte sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardSlice {
    /// Its first sector on the board disk.
    pub first: u32,
    /// How many sectors (non-zero).
    pub sectors: u32,
}

impl BoardSlice {
    /// The sector past its end on the board disk.
    pub const fn end(&self) -> u64 {
        self.first as u64 + self.sectors as u64
    }

    /// Whether it shares a sector with `other`.
    pub const fn overlaps(&self, other: &BoardSlice) -> bool {
        (self.first as u64) < other.end() && (other.first as u64) < self.end()
    }
}

/// The kernel's format, as the description gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// A Linux zImage (its header is checked again at boot).
    Zimage = 1,
    /// A raw binary.
    Raw = 2,
    /// An ELF, its loadable segments joined into one image by the tool
    /// (the gaps zeroed), entered at its entry point.
    Elf = 3,
}

/// What happens to a VM that cannot take its own faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPolicy {
    /// Stop it.
    Stop,
    /// Restart it up to this many times, then stop it.
    Restart(u32),
}

/// How a VM's console output shows while another VM has the focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// As prefixed lines among the focused VM's output.
    Shared = 0,
    /// Kept in a bounded buffer and shown when the VM gets the focus.
    Held = 1,
    /// Dropped.
    Discard = 2,
}

/// Where a VM's device tree comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTreeSource {
    /// None: the guest does not read one (r2 = 0).
    None = 0,
    /// The hypervisor writes one (RAM, bootargs, initrd, devices).
    Generated = 1,
    /// The VM's [`Role::DeviceTree`] image.
    Supplied = 2,
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelFormat::Zimage => "zImage",
            KernelFormat::Raw => "raw",
            KernelFormat::Elf => "ELF",
        })
    }
}

impl fmt::Display for FaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultPolicy::Stop => f.write_str("stopped on a fault"),
            FaultPolicy::Restart(limit) => write!(f, "restarted on a fault (up to {limit} times)"),
        }
    }
}

/// One image of a VM: what it is, its bytes and where they go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageEntry<'a> {
    /// What it is.
    pub role: Role,
    /// Its bytes (from [`parse`]: inside the system image; where, says
    /// [`SystemTable::data_offset`]).
    pub bytes: &'a [u8],
    /// Where in the VM's RAM it is copied (offset from the RAM base).
    pub load_offset: u32,
    /// For a slice of the board disk (no bytes, load offset 0): where.
    pub slice: Option<BoardSlice>,
}

impl ImageEntry<'_> {
    /// How many bytes (an image that [`parse`] accepted fits a `u32`).
    pub fn size(&self) -> u32 {
        self.bytes.len() as u32
    }
}

/// One VM of a table: what [`Writer`] packs and [`parse`] gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmEntry<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its kernel command line.
    pub bootargs: &'a str,
    /// RAM bytes.
    pub ram_size: u32,
    /// Where its RAM starts in the board's guest pool (an offset).
    pub ram_offset: u32,
    /// vCPUs, 1 to [`MAX_VCPUS`].
    pub vcpus: u32,
    /// The physical CPU of each vCPU: `cpus[i]` for vCPU `i` below
    /// `vcpus`, each below [`CPU_NUMBERS`] and different; [`NO_CPU`] past
    /// them.
    pub cpus: [u8; MAX_VCPUS],
    /// Where its vCPU starts: an offset into its RAM, or into its
    /// firmware (IPA 0) for a VM with one.
    pub entry_offset: u32,
    /// Its images (each role at most once, the kernel or firmware first
    /// when written).
    pub images: Vec<ImageEntry<'a>>,
    /// The devices it claims, by bit of [`DEVICES`] ([`DeviceSet`]).
    pub devices: u32,
    /// Its fault policy.
    pub policy: FaultPolicy,
    /// Its console mode.
    pub console: ConsoleMode,
    /// Its device tree.
    pub device_tree: DeviceTreeSource,
    /// Its kernel's format.
    pub format: KernelFormat,
}

impl<'a> VmEntry<'a> {
    /// Whether it claims the device called `name`.
    pub fn claims(&self, name: &str) -> bool {
        DeviceSet(self.devices).has(name)
    }

    /// Its image with `role`, if it has one.
    pub fn image(&self, role: Role) -> Option<&ImageEntry<'a>> {
        self.images.iter().find(|image| image.role == role)
    }

    /// Its disks, in slot order.
    pub fn disks(&self) -> impl Iterator<Item = &ImageEntry<'a>> {
        self.images.iter().filter(|image| image.role.is_disk())
    }
}

/// A system image's table, read and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemTable<'a> {
    /// The VMs, in order.
    pub vms: Vec<VmEntry<'a>>,
    /// The VM with the console focus at boot.
    pub focus: usize,
    /// The whole image's size.
    pub total: u32,
    /// The whole image's bytes.
    pub bytes: &'a [u8],
}

impl SystemTable<'_> {
    /// Where `image`, one of this table's, starts in the system image.
    pub fn data_offset(&self, image: &ImageEntry<'_>) -> u32 {
        (image.bytes.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize) as u32
    }
}

/// Why a system image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Fewer bytes than a header, or than the header says.
    Truncated { needed: u64, available: u64 },
    /// Not a system image (nothing loaded, or something else).
    BadMagic,
    /// A version this hypervisor does not read.
    Version { found: u32 },
    /// A header or entry size that is not this version's.
    Layout {
        what: &'static str,
        found: u32,
        expected: u32,
    },
    /// The checksum does not match the bytes.
    Checksum { stored: u32, computed: u32 },
    /// No VM, or more than the hypervisor runs.
    VmCount { count: u32 },
    /// A part of the table outside its place.
    Range {
        what: &'static str,
        offset: u32,
        size: u32,
    },
    /// A bad value in a VM's entry (`vm` counts from 1).
    Vm {
        vm: usize,
        what: &'static str,
        value: u32,
    },
    /// A bad value in an image's entry.
    Image {
        vm: usize,
        image: usize,
        what: &'static str,
        value: u32,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TableError::Truncated { needed, available } => write!(
                f,
                "truncated: it needs {needed} bytes, {available} are there"
            ),
            TableError::BadMagic => write!(
                f,
                "no system image at the start of the staging area (wrong magic; was one loaded?)"
            ),
            TableError::Version { found } => write!(
                f,
                "format version {found}; this hypervisor reads version {VERSION} (repack it with this tree's tools)"
            ),
            TableError::Layout {
                what,
                found,
                expected,
            } => write!(f, "{what} is {found} bytes, version {VERSION} has {expected}"),
            TableError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch: the image says {stored:#010x}, its bytes give {computed:#010x} (corrupted)"
            ),
            TableError::VmCount { count } => {
                write!(f, "{count} VMs; a table holds 1 to {MAX_VMS}")
            }
            TableError::Range { what, offset, size } => write!(
                f,
                "{what} ({size} bytes at offset {offset:#x}) lies outside its place in the image"
            ),
            TableError::Vm { vm, what, value } => {
                write!(f, "VM {vm}: {what} ({value:#x})")
            }
            TableError::Image {
                vm,
                image,
                what,
                value,
            } => write!(f, "VM {vm}, image {image}: {what} ({value:#x})"),
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it) of `bytes`, with
/// the four bytes at `skip` read as zeros.
pub fn checksum(bytes: &[u8], skip: usize) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    let skip_end = (skip + 4).min(bytes.len());
    let skip = skip.min(bytes.len());
    hasher.update(&bytes[..skip]);
    hasher.update(&[0u8; 4][..skip_end - skip]);
    hasher.update(&bytes[skip_end..]);
    hasher.finalize()
}

fn word(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

/// `offset..offset + size` as a range, if it lies inside `limit`.
fn inside(offset: u32, size: u32, limit: core::ops::Range<u64>) -> bool {
    let (start, end) = (offset as u64, offset as u64 + size as u64);
    start >= limit.start && end <= limit.end
}

/// Reads and checks the system image in `bytes` (the whole staging area,
/// or more than the image): header, checksum, every entry's values and
/// every range. Never panics; names the first problem found.
pub fn parse(bytes: &[u8]) -> Result<SystemTable<'_>, TableError> {
    if bytes.len() < HEADER_BYTES {
        return Err(TableError::Truncated {
            needed: HEADER_BYTES as u64,
            available: bytes.len() as u64,
        });
    }
    if bytes[..8] != MAGIC {
        return Err(TableError::BadMagic);
    }
    let version = word(bytes, header::VERSION);
    if version != VERSION {
        return Err(TableError::Version { found: version });
    }
    for (what, offset, expected) in [
        ("the header", header::HEADER_BYTES, HEADER_BYTES),
        ("a VM entry", header::VM_ENTRY_BYTES, VM_ENTRY_BYTES),
        (
            "an image entry",
            header::IMAGE_ENTRY_BYTES,
            IMAGE_ENTRY_BYTES,
        ),
    ] {
        let found = word(bytes, offset);
        if found != expected as u32 {
            return Err(TableError::Layout {
                what,
                found,
                expected: expected as u32,
            });
        }
    }
    let total = word(bytes, header::TOTAL);
    if (total as usize) < HEADER_BYTES || total as u64 > bytes.len() as u64 {
        return Err(TableError::Truncated {
            needed: (total as u64).max(HEADER_BYTES as u64),
            available: bytes.len() as u64,
        });
    }
    let bytes = &bytes[..total as usize];
    let stored = word(bytes, header::CHECKSUM);
    let computed = checksum(bytes, header::CHECKSUM);
    if stored != computed {
        return Err(TableError::Checksum { stored, computed });
    }
    for offset in header::RESERVED {
        if word(bytes, offset) != 0 {
            return Err(TableError::Range {
                what: "a reserved header word",
                offset: offset as u32,
                size: 4,
            });
        }
    }
    let vm_count = word(bytes, header::VM_COUNT);
    if vm_count == 0 || vm_count as usize > MAX_VMS {
        return Err(TableError::VmCount { count: vm_count });
    }
    let image_count = word(bytes, header::IMAGE_COUNT);
    let (strings, strings_size) = (
        word(bytes, header::STRINGS),
        word(bytes, header::STRINGS_BYTES),
    );
    let data = word(bytes, header::DATA);
    let vms_size = vm_count * VM_ENTRY_BYTES as u32;
    let images_at = HEADER_BYTES as u32 + vms_size;
    if image_count as usize > MAX_VMS * MAX_IMAGES_PER_VM {
        return Err(TableError::Range {
            what: "the image entries",
            offset: images_at,
            size: image_count.saturating_mul(IMAGE_ENTRY_BYTES as u32),
        });
    }
    let images_size = image_count * IMAGE_ENTRY_BYTES as u32;
    let table_end = images_at as u64 + images_size as u64;
    if data < HEADER_BYTES as u32 || data > total || table_end > data as u64 {
        return Err(TableError::Range {
            what: "the entries",
            offset: HEADER_BYTES as u32,
            size: (table_end - HEADER_BYTES as u64) as u32,
        });
    }
    if !inside(strings, strings_size, table_end..data as u64) {
        return Err(TableError::Range {
            what: "the strings",
            offset: strings,
            size: strings_size,
        });
    }
    let focus = word(bytes, header::FOCUS);
    if focus >= vm_count {
        return Err(TableError::Vm {
            vm: focus as usize + 1,
            what: "has the focus but is not in the table",
            value: focus,
        });
    }
    let string_area = strings as u64..strings as u64 + strings_size as u64;
    let data_area = data as u64..total as u64;
    let mut vms = Vec::with_capacity(vm_count as usize);
    let mut images_used = 0u32;
    for index in 0..vm_count as usize {
        let vm = index + 1;
        let entry = &bytes[HEADER_BYTES + index * VM_ENTRY_BYTES..][..VM_ENTRY_BYTES];
        let field = |n: usize| word(entry, 4 * n);
        let bad = |what, value| TableError::Vm { vm, what, value };
        let text = |offset: u32, size: u32, max: usize, what: &'static str| {
            if !inside(offset, size, string_area.clone()) || size as usize > max {
                return Err(bad(what, size));
            }
            core::str::from_utf8(&bytes[offset as usize..(offset + size) as usize])
                .map_err(|_| bad(what, offset))
        };
        let name = text(
            field(0),
            field(1),
            MAX_NAME,
            "name outside the strings, too long or not UTF-8",
        )?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("name is not 1-31 letters, digits and '-'", field(1)));
        }
        let bootargs = text(
            field(2),
            field(3),
            MAX_BOOTARGS,
            "bootargs outside the strings, too long or not UTF-8",
        )?;
        let (first, count) = (field(8), field(9));
        if first != images_used
            || count == 0
            || count as usize > MAX_IMAGES_PER_VM
            || first as u64 + count as u64 > image_count as u64
        {
            return Err(bad("images are not the next ones of the table", count));
        }
        images_used += count;
        let mut images = Vec::with_capacity(count as usize);
        for number in 0..count as usize {
            let at = images_at as usize + (first as usize + number) * IMAGE_ENTRY_BYTES;
            let image = &bytes[at..at + IMAGE_ENTRY_BYTES];
            let bad_image = |what, value| TableError::Image {
                vm,
                image: number + 1,
                what,
                value,
            };
            let role = match word(image, 0) {
                1 => Role::Kernel,
                2 => Role::Initrd,
                3 => Role::DeviceTree,
                4 => Role::Firmware,
                5 => Role::Disk,
                6 => Role::WritableDisk,
                7 => Role::BoardDisk,
                8 => Role::ReadOnlyBoardDisk,
                other => return Err(bad_image("unknown role", other)),
            };
            let (data_offset, size, load_offset) =
                (word(image, 4), word(image, 8), word(image, 12));
            let slice = if role.is_board_disk() {
                if data_offset != 0 || size != 0 {
                    return Err(bad_image("a board-disk slice with bytes", size));
                }
                let sectors = word(image, 16);
                if sectors == 0 {
                    return Err(bad_image("a board-disk slice of no sectors", sectors));
                }
                Some(BoardSlice {
                    first: load_offset,
                    sectors,
                })
            } else {
                if size == 0 || !inside(data_offset, size, data_area.clone()) {
                    return Err(bad_image("bytes outside the image data", data_offset));
                }
                if word(image, 16) != 0 {
                    return Err(bad_image("reserved word is not 0", word(image, 16)));
                }
                None
            };
            if !role.is_disk() && images.iter().any(|other: &ImageEntry| other.role == role) {
                return Err(bad_image(
                    "a second kernel, initrd, device tree or firmware",
                    role as u32,
                ));
            }
            if role == Role::Firmware && (load_offset != 0 || size > FIRMWARE_BANK_BYTES) {
                return Err(bad_image(
                    "a firmware not at the start of the 64 MiB flash bank",
                    size,
                ));
            }
            if role.is_disk() {
                let disks = images.iter().filter(|other| other.role.is_disk()).count();
                if disks >= MAX_DISKS {
                    return Err(bad_image("more disks than virtio-mmio slots", role as u32));
                }
                if !size.is_multiple_of(DISK_SECTOR) {
                    return Err(bad_image("a disk that is not whole 512-byte sectors", size));
                }
                if role == Role::Disk && load_offset != 0 {
                    return Err(bad_image(
                        "a read-only disk with a load offset",
                        load_offset,
                    ));
                }
            }
            images.push(match slice {
                Some(slice) => ImageEntry {
                    role,
                    bytes: &[],
                    load_offset: 0,
                    slice: Some(slice),
                },
                None => ImageEntry {
                    role,
                    bytes: &bytes[data_offset as usize..(data_offset + size) as usize],
                    load_offset,
                    slice: None,
                },
            });
        }
        let entry_offset = field(7);
        let firmware = images.iter().any(|image| image.role == Role::Firmware);
        if firmware
            && images
                .iter()
                .any(|image| matches!(image.role, Role::Kernel | Role::Initrd))
        {
            return Err(bad("a firmware with a kernel or initrd", count));
        }
        if !images.iter().any(|image| {
            matches!(image.role, Role::Kernel | Role::Firmware)
                && entry_offset >= image.load_offset
                && (entry_offset as u64) < image.load_offset as u64 + image.size() as u64
        }) {
            return Err(bad(
                "entry is not inside a kernel or firmware image",
                entry_offset,
            ));
        }
        let devices = field(10);
        if devices >> DEVICES.len() != 0 {
            return Err(bad("unknown devices", devices));
        }
        let policy = match (field(11), field(12)) {
            (0, 0) => FaultPolicy::Stop,
            (1, limit) => FaultPolicy::Restart(limit),
            (other, _) => return Err(bad("unknown fault policy", other)),
        };
        let console = match field(13) {
            0 => ConsoleMode::Shared,
            1 => ConsoleMode::Held,
            2 => ConsoleMode::Discard,
            other => return Err(bad("unknown console mode", other)),
        };
        let supplied = images.iter().any(|image| image.role == Role::DeviceTree);
        let device_tree = match (field(14), supplied) {
            (0, false) => DeviceTreeSource::None,
            (1, false) => DeviceTreeSource::Generated,
            (2, true) => DeviceTreeSource::Supplied,
            (other, _) => return Err(bad("device-tree source does not match its images", other)),
        };
        let format = match field(15) {
            1 => KernelFormat::Zimage,
            2 => KernelFormat::Raw,
            3 => KernelFormat::Elf,
            other => return Err(bad("unknown kernel format", other)),
        };
        let vcpus = field(6);
        if vcpus == 0 {
            return Err(bad("no vCPU", vcpus));
        }
        if vcpus as usize > MAX_VCPUS {
            return Err(bad("more vCPUs than a VM may have", vcpus));
        }
        let cpus = field(16).to_le_bytes();
        let mut seen = 0u32;
        for (vcpu, &cpu) in cpus.iter().enumerate() {
            if vcpu >= vcpus as usize {
                if cpu != NO_CPU {
                    return Err(bad("a CPU-map byte past its vCPUs is not 0xff", cpu.into()));
                }
            } else if cpu as usize >= CPU_NUMBERS {
                return Err(bad("a vCPU's CPU is not 0 to 31", cpu.into()));
            } else if seen & (1 << cpu) != 0 {
                return Err(bad("two vCPUs on one CPU", cpu.into()));
            } else {
                seen |= 1 << cpu;
            }
        }
        vms.push(VmEntry {
            name,
            bootargs,
            ram_size: field(4),
            ram_offset: field(5),
            vcpus,
            cpus,
            entry_offset,
            images,
            devices,
            policy,
            console,
            device_tree,
            format,
        });
    }
    if images_used != image_count {
        return Err(TableError::Range {
            what: "image entries no VM uses",
            offset: images_at + images_used * IMAGE_ENTRY_BYTES as u32,
            size: (image_count - images_used) * IMAGE_ENTRY_BYTES as u32,
        });
    }
    Ok(SystemTable {
        vms,
        focus: focus as usize,
        total,
        bytes,
    })
}

/// Packs VMs into a system image (the host tool's side of [`parse`]).
#[derive(Debug)]
pub struct Writer;

/// Where everything of a system image goes: one computation for
/// [`Writer::write`] and [`Writer::size`].
struct Layout<'a> {
    image_count: usize,
    /// The end of the image entries, where the strings start.
    entries_end: usize,
    strings: Vec<u8>,
    /// (offset, length) of each VM's name and bootargs, in order.
    string_refs: Vec<(u32, u32)>,
    /// The first image's offset.
    data: usize,
    /// Each distinct image's bytes and offset, in order of first use.
    blobs: Vec<(&'a [u8], u32)>,
    /// Each image entry's data offset, in order.
    data_offsets: Vec<u32>,
    total: usize,
}

impl<'a> Layout<'a> {
    fn of(vms: &[VmEntry<'a>]) -> Layout<'a> {
        let image_count: usize = vms.iter().map(|vm| vm.images.len()).sum();
        let entries_end =
            HEADER_BYTES + vms.len() * VM_ENTRY_BYTES + image_count * IMAGE_ENTRY_BYTES;
        let mut strings: Vec<u8> = Vec::new();
        let mut string_refs = Vec::new();
        for vm in vms {
            for text in [vm.name, vm.bootargs] {
                string_refs.push(((entries_end + strings.len()) as u32, text.len() as u32));
                strings.extend_from_slice(text.as_bytes());
            }
        }
        let data = (entries_end + strings.len()).next_multiple_of(DATA_ALIGNMENT);
        let mut blobs: Vec<(&[u8], u32)> = Vec::new();
        let mut end = data;
        let mut data_offsets = Vec::new();
        for image in vms.iter().flat_map(|vm| &vm.images) {
            if image.slice.is_some() {
                // No bytes: its data-offset word is 0.
                data_offsets.push(0);
                continue;
            }
            let offset = match blobs.iter().find(|(bytes, _)| *bytes == image.bytes) {
                Some((_, offset)) => *offset,
                None => {
                    let offset = end as u32;
                    blobs.push((image.bytes, offset));
                    end = (end + image.bytes.len()).next_multiple_of(DATA_ALIGNMENT);
                    offset
                }
            };
            data_offsets.push(offset);
        }
        let total = blobs
            .last()
            .map_or(data, |(bytes, offset)| *offset as usize + bytes.len());
        Layout {
            image_count,
            entries_end,
            strings,
            string_refs,
            data,
            blobs,
            data_offsets,
            total,
        }
    }
}

impl Writer {
    /// Bytes of the system image of `vms`, without writing it.
    pub fn size(vms: &[VmEntry<'_>]) -> usize {
        Layout::of(vms).total
    }

    /// The system image of `vms` with `focus`, its images' bytes stored
    /// once each (identical contents share one copy). The CPU map is
    /// written as it is ([`cpu_map`] builds one from a list).
    pub fn write(vms: &[VmEntry<'_>], focus: usize) -> Vec<u8> {
        let Layout {
            image_count,
            entries_end,
            strings,
            string_refs,
            data,
            blobs,
            data_offsets,
            total,
        } = Layout::of(vms);
        let mut out = alloc::vec![0u8; total];
        let mut put = |at: usize, value: u32| out[at..at + 4].copy_from_slice(&value.to_le_bytes());
        put(header::VERSION, VERSION);
        put(header::HEADER_BYTES, HEADER_BYTES as u32);
        put(header::TOTAL, total as u32);
        put(header::VM_COUNT, vms.len() as u32);
        put(header::VM_ENTRY_BYTES, VM_ENTRY_BYTES as u32);
        put(header::IMAGE_COUNT, image_count as u32);
        put(header::IMAGE_ENTRY_BYTES, IMAGE_ENTRY_BYTES as u32);
        put(header::STRINGS, entries_end as u32);
        put(header::STRINGS_BYTES, strings.len() as u32);
        put(header::DATA, data as u32);
        put(header::FOCUS, focus as u32);
        let mut image_index = 0usize;
        for (index, vm) in vms.iter().enumerate() {
            let at = HEADER_BYTES + index * VM_ENTRY_BYTES;
            let (policy, limit) = match vm.policy {
                FaultPolicy::Stop => (0, 0),
                FaultPolicy::Restart(limit) => (1, limit),
            };
            let (name, bootargs) = (string_refs[2 * index], string_refs[2 * index + 1]);
            let fields = [
                name.0,
                name.1,
                bootargs.0,
                bootargs.1,
                vm.ram_size,
                vm.ram_offset,
                vm.vcpus,
                vm.entry_offset,
                image_index as u32,
                vm.images.len() as u32,
                vm.devices,
                policy,
                limit,
                vm.console as u32,
                vm.device_tree as u32,
                vm.format as u32,
                u32::from_le_bytes(vm.cpus),
            ];
            for (n, value) in fields.into_iter().enumerate() {
                put(at + 4 * n, value);
            }
            for image in &vm.images {
                let at =
                    HEADER_BYTES + vms.len() * VM_ENTRY_BYTES + image_index * IMAGE_ENTRY_BYTES;
                put(at, image.role as u32);
                put(at + 4, data_offsets[image_index]);
                put(at + 8, image.bytes.len() as u32);
                match image.slice {
                    Some(slice) => {
                        put(at + 12, slice.first);
                        put(at + 16, slice.sectors);
                    }
                    None => put(at + 12, image.load_offset),
                }
                image_index += 1;
            }
        }
        out[..8].copy_from_slice(&MAGIC);
        out[entries_end..entries_end + strings.len()].copy_from_slice(&strings);
        for (bytes, offset) in &blobs {
            out[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
        }
        let sum = checksum(&out, header::CHECKSUM);
        out[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests;
