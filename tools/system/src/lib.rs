// SPDX-License-Identifier: MIT OR Apache-2.0
//! System descriptions: one TOML file declaring the VMs Capvisor runs,
//! checked on the host with errors a person can act on, then packed with
//! the images it names into one system image for the hypervisor.
//!
//! [`check`] reads a description and checks it against the board it is
//! for, reporting every problem, each with the file, line and column and
//! the key it concerns (a size problem names both sizes), and last runs
//! the hypervisor's own checks on the image it would pack (what the board
//! runs at boot: `hyp::system_image::parse`, `hyp::config::validate`); [`pack`]
//! turns a checked system into the packed format of `hyp::system_image`,
//! again only if the hypervisor's checks accept it, so an image the tool
//! packs is one the hypervisor boots. The format of descriptions
//! is documented, key by key, in `docs/system-description.md`:
//!
//! ```toml
//! [[vm]]
//! name = "linux"
//! ram = "256 MiB"
//! cpus = [0, 1]
//! kernel = { file = "linux-zImage", format = "zimage" }
//! initrd = "initrd.cpio.gz"
//! bootargs = "console=ttyAMA0"
//! focus = true
//!
//! [[vm]]
//! name = "ticker"
//! ram = "2 MiB"
//! cpus = [2]
//! kernel = { file = "ticker", format = "zimage" }
//! fault-policy = { restart = 2 }
//! console = "shared"
//! ```

#![forbid(unsafe_code)]

pub mod images;

use hyp::config::{
    validate, validate_board_slices, validate_disks, BoardDiskSize, BoardOffer, DiskConfig,
    ImageProblem, VmConfig,
};
use hyp::guest_platform::FLASH;
use hyp::memory::{MemoryType, Permissions, Region};
use hyp::system_image::{
    cpu_map, BoardSlice, ConsoleMode as PackedConsole, DeviceTreeSource,
    FaultPolicy as PackedPolicy, ImageEntry, KernelFormat, Role, VmEntry, Writer, DEVICES,
};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A board, as the host checks a description against it: what it offers
/// VMs is the hypervisor's own [`BoardOffer`], as the board makes it at
/// boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// The board's name (`boards/<name>`).
    pub name: &'static str,
    /// What it offers VMs: its guest RAM pool, VMIDs, vCPUs a VM may have,
    /// CPUs (numbered 0 up; each vCPU runs on one) and devices.
    pub offer: BoardOffer<'static>,
    /// Bytes of the staging area the packed system image must fit.
    pub staging: u64,
}

impl Board {
    /// Bytes of the guest RAM pool.
    pub fn pool(&self) -> u64 {
        self.offer.pool.size as u64
    }

    /// The names of the devices a VM may claim.
    pub fn devices(&self) -> impl Iterator<Item = &'static str> {
        self.offer.devices.iter().map(|device| device.name)
    }
}

/// The guest RAM pool as the host sees it: VMs' RAM is placed by offset
/// into it, so it starts at 0 here (the boards' pools, 752 MiB each, start
/// 2 MiB aligned, so every alignment check gives the same answer).
static POOL: Region = Region::new(
    "guest-ram",
    0,
    752 << 20,
    MemoryType::Normal,
    Permissions::ReadWrite,
);

/// Every board, as the hypervisor builds it (pool and staging sizes from
/// the boards' memory maps: the same on both; VMIDs 1 to 255; the devices
/// every board offers, `components::devices::DEVICES`).
pub const BOARDS: [Board; 2] = [
    Board {
        name: "integrator-cp",
        offer: BoardOffer {
            pool: &POOL,
            vmids: 255,
            vcpus: 1,
            cpus: 1,
            devices: components::devices::DEVICES,
        },
        staging: 256 << 20,
    },
    Board {
        name: "qemu-virt",
        offer: BoardOffer {
            pool: &POOL,
            vmids: 255,
            vcpus: 4,
            cpus: 4,
            devices: components::devices::DEVICES,
        },
        staging: 256 << 20,
    },
];

/// RAM is handed out in 2 MiB blocks.
pub const RAM_GRANULE: u64 = 2 << 20;

/// The most VMs the hypervisor runs.
pub use hyp::config::MAX_VMS;

/// Where a device tree goes: the last 2 MiB of its VM's RAM (as the
/// hypervisor places the one it writes).
pub const DEVICE_TREE_ROOM: u64 = 2 << 20;

/// Where an initrd goes, at most: 128 MiB into RAM (or half of a smaller
/// RAM), clear of where Linux decompresses itself.
pub const INITRD_OFFSET: u64 = 128 << 20;

/// The largest firmware: the flash bank it is mapped in.
pub const FIRMWARE_BANK: u64 = hyp::config::FIRMWARE_BANK_BYTES as u64;

/// What of a firmware VM's second flash bank is mapped from its pool slice
/// (after its firmware's pages).
pub const ERASED_BANK: u64 = hyp::config::ERASED_BANK_BYTES as u64;

/// A kernel image's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// A Linux zImage (or a test guest with the same header).
    Zimage,
    /// A raw binary, copied to `load-offset` in the VM's RAM.
    Raw,
    /// An ELF, loaded by its program headers and entered at its entry.
    Elf,
}

/// A VM's kernel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KernelImage {
    /// The file.
    pub file: Spanned<String>,
    /// Its format.
    pub format: ImageFormat,
    /// For `raw`: where in the VM's RAM it goes.
    pub load_offset: Option<Spanned<u64>>,
}

/// A VM's firmware: booted instead of a kernel, mapped read-only at IPA
/// 0 (the guest platform's first flash bank).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FirmwareImage {
    /// The file (a raw binary built to run from address 0).
    pub file: Spanned<String>,
}

/// What happens to a VM that cannot take its own faults.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum FaultPolicy {
    /// `"stop"`.
    Named(Spanned<String>),
    /// `{ restart = N }`.
    Restart {
        /// How many restarts before it is stopped.
        restart: u32,
    },
}

/// How a VM's output shows while it does not have the console focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsoleMode {
    /// Prefixed lines among the focused VM's output.
    Shared,
    /// Kept (bounded) and shown when the VM gets the focus.
    Held,
    /// Dropped.
    Discard,
}

/// One VM, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmDescription {
    /// Its name.
    pub name: Spanned<String>,
    /// Its RAM, as written (`"256 MiB"`).
    pub ram: Spanned<String>,
    /// Where its RAM starts in the board's pool (default: after the
    /// previous VM's).
    pub pool_offset: Option<Spanned<String>>,
    /// vCPUs (default: one per CPU of `cpus`, else 1).
    pub vcpus: Option<Spanned<u32>>,
    /// The physical CPU of each vCPU, in vCPU order (default: CPUs 0 to
    /// `vcpus - 1`).
    pub cpus: Option<Spanned<Vec<Spanned<u32>>>>,
    /// The kernel (a VM has a kernel or a firmware).
    pub kernel: Option<Spanned<KernelImage>>,
    /// The firmware, instead of a kernel.
    pub firmware: Option<Spanned<FirmwareImage>>,
    /// An initrd file.
    pub initrd: Option<Spanned<String>>,
    /// A device tree file (else the hypervisor writes one if the VM has
    /// bootargs or an initrd).
    pub device_tree: Option<Spanned<String>>,
    /// The kernel command line.
    #[serde(default)]
    pub bootargs: String,
    /// The virtual devices it claims (default: all the board offers).
    pub devices: Option<Spanned<Vec<Spanned<String>>>>,
    /// Its fault policy (default stop).
    pub fault_policy: Option<Spanned<FaultPolicy>>,
    /// Its console mode (default held).
    pub console: Option<ConsoleMode>,
    /// Whether it has the console focus at boot.
    pub focus: Option<Spanned<bool>>,
    /// Its disks (`[[vm.disk]]`), in virtio-mmio slot order.
    #[serde(default)]
    pub disk: Vec<Spanned<DiskDescription>>,
}

/// A disk of a VM, as written: an image file packed into the system
/// image, or a slice of the board's own disk (exactly one of the two).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiskDescription {
    /// The image file (whole 512-byte sectors).
    pub file: Option<Spanned<String>>,
    /// A slice of the board disk.
    pub board: Option<Spanned<BoardSliceDescription>>,
    /// Whether the guest may only read it (default true); a writable
    /// image disk keeps the guest's writes until the board powers off, a
    /// writable slice of the board disk for good.
    pub read_only: Option<Spanned<bool>>,
}

/// A slice of the board disk, as written: `{ offset = "64 MiB", size =
/// "128 MiB" }` (sizes as the other size keys; the offset may be `"0"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSliceDescription {
    /// Where it starts on the board disk.
    pub offset: Spanned<String>,
    /// How large it is (non-zero).
    pub size: Spanned<String>,
}

/// A disk read and placed, ready to pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedDisk {
    /// The file it came from.
    pub file: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// For a writable image disk, where its copy goes in the board's pool
    /// (an offset); `None` for a read-only one and a board-disk slice.
    pub pool_offset: Option<u64>,
    /// For a slice of the board disk (no file, no bytes): where, in
    /// sectors.
    pub board: Option<BoardSlice>,
    /// Whether the guest may only read it.
    pub read_only: bool,
}

/// A whole description, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The board it is written for, if only one (default: any board that
    /// offers what it asks for).
    pub board: Option<Spanned<String>>,
    /// Its VMs.
    #[serde(default)]
    pub vm: Vec<VmDescription>,
}

/// One problem with a description: where, which key, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The description's file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// The key concerned (`vm[1].ram`), if one is.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Line and column (from 1) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// Collects problems with their positions in one file.
struct Report<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn add(&mut self, span: Range<usize>, key: Option<String>, message: String) {
        let (line, column) = position(self.text, span.start);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            key,
            message,
        });
    }
}

/// A size such as `"256 MiB"`, `"2MiB"`, `"1 GiB"` or `"512 KiB"`, in
/// bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim() {
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// Writes a size the way descriptions do.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0".into(),
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// An image read and placed, ready to pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedImage {
    /// The file it came from.
    pub file: PathBuf,
    /// Its bytes (an ELF's segments, joined).
    pub bytes: Vec<u8>,
    /// Where it goes in its VM's RAM.
    pub load_offset: u64,
}

/// A VM after the checks, with its sizes worked out and its images read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedVm {
    /// Its name.
    pub name: String,
    /// Bytes of RAM.
    pub ram: u64,
    /// Where its RAM starts in the board's pool.
    pub pool_offset: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// The physical CPU of each vCPU, in vCPU order (`vcpus` of them, each
    /// a different CPU of the board).
    pub cpus: Vec<u8>,
    /// Its kernel's format.
    pub format: ImageFormat,
    /// Its kernel (a VM has a kernel or a firmware).
    pub kernel: Option<PlacedImage>,
    /// Its firmware, mapped read-only at IPA 0 (load offset 0).
    pub firmware: Option<PlacedImage>,
    /// Where its vCPU starts (offset into RAM, or into the firmware).
    pub entry_offset: u64,
    /// Its initrd.
    pub initrd: Option<PlacedImage>,
    /// Its device tree, when the description supplies one.
    pub device_tree: Option<PlacedImage>,
    /// Whether the hypervisor writes it a device tree.
    pub writes_device_tree: bool,
    /// Its kernel command line.
    pub bootargs: String,
    /// The devices it claims, a bit per `hyp::system_image::DEVICES` name.
    pub devices: u32,
    /// Its fault policy.
    pub policy: PackedPolicy,
    /// Its console mode.
    pub console: ConsoleMode,
    /// Its disks, in slot order.
    pub disks: Vec<CheckedDisk>,
}

/// A writable disk's copy in the pool starts at a multiple of this.
pub const DISK_COPY_ALIGNMENT: u64 = 4096;

/// A description that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedSystem {
    /// The description's file.
    pub file: PathBuf,
    /// The board.
    pub board: Board,
    /// The VMs, in order.
    pub vms: Vec<CheckedVm>,
    /// The VM with the console focus at boot.
    pub focus: usize,
}

/// How to check a description: for which board, where to look for the
/// files it names, and how large the board disk is, if known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The size of the board disk it will run with (the runner knows the
    /// disk file): slices past its end are refused. Unknown: only
    /// overlaps are checked here (the hypervisor checks the rest at boot).
    pub board_disk_bytes: Option<u64>,
    /// The board it will run on (default: the one the description names).
    pub board: Option<String>,
    /// Folders searched, in order, for a file not found next to the
    /// description (relative names only).
    pub search: Vec<PathBuf>,
}

/// The file `name` (from the description in `folder`): as given if
/// absolute, else next to the description, else in a search folder.
fn find(folder: &Path, search: &[PathBuf], name: &str) -> Result<PathBuf, String> {
    let path = Path::new(name);
    if path.is_absolute() {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("cannot read {name}: no such file"))
        };
    }
    let mut looked = Vec::new();
    for dir in std::iter::once(folder).chain(search.iter().map(PathBuf::as_path)) {
        let candidate = dir.join(path);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    Err(format!(
        "cannot find '{name}' (looked in {})",
        looked.join(", ")
    ))
}

/// The file `name` found ([`find`]) and read.
fn read(folder: &Path, search: &[PathBuf], name: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let path = find(folder, search, name)?;
    let bytes =
        std::fs::read(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Ok((path, bytes))
}

/// The most sectors a slice's start or size may be (the packed format
/// keeps each in a 32-bit word): 2 TiB.
const MAX_SLICE_SECTORS: u64 = u32::MAX as u64;

/// A `board = { offset, size }` slice in sectors, reported (at its key)
/// if a value is not a size, the size is 0, or either is too large.
fn board_slice(
    report: &mut Report,
    board: &Spanned<BoardSliceDescription>,
    key: &dyn Fn(&str) -> Option<String>,
) -> Option<BoardSlice> {
    let sector = u64::from(hyp::system_image::DISK_SECTOR);
    let mut value = |spanned: &Spanned<String>, name: &str| -> Option<u64> {
        let text = spanned.get_ref().trim();
        let bytes = if name == "offset" && text == "0" {
            Some(0)
        } else {
            parse_size(text)
        };
        match bytes {
            None => {
                report.add(
                    spanned.span(),
                    key(&format!("board.{name}")),
                    format!(
                        "'{}' is not a size (write it as \"64 MiB\")",
                        spanned.get_ref()
                    ),
                );
                None
            }
            Some(0) if name == "size" => {
                report.add(
                    spanned.span(),
                    key("board.size"),
                    "a slice of the board disk of 0 bytes".to_string(),
                );
                None
            }
            Some(bytes) if bytes / sector > MAX_SLICE_SECTORS => {
                report.add(
                    spanned.span(),
                    key(&format!("board.{name}")),
                    format!(
                        "{} is beyond the 2 TiB a slice's {name} may be",
                        format_size(bytes)
                    ),
                );
                None
            }
            // Sizes are whole KiB: whole sectors.
            Some(bytes) => Some(bytes / sector),
        }
    };
    let slice = board.get_ref();
    let first = value(&slice.offset, "offset");
    let sectors = value(&slice.size, "size");
    Some(BoardSlice {
        first: first? as u32,
        sectors: sectors? as u32,
    })
}

/// Refuses, at the second one's `board` key, two slices of the board
/// disk that share a sector (read-only or not: a slice is one VM's),
/// naming both; and with `disk_bytes`, a slice past the disk's end,
/// naming both sizes.
fn check_board_slices(
    report: &mut Report,
    description: &Description,
    vms: &[CheckedVm],
    disk_bytes: Option<u64>,
) {
    let sector = u64::from(hyp::system_image::DISK_SECTOR);
    let described = |vm: &CheckedVm| {
        description
            .vm
            .iter()
            .position(|d| *d.name.get_ref() == vm.name)
    };
    let slices: Vec<(usize, &str, usize, BoardSlice)> = vms
        .iter()
        .filter_map(|vm| Some((described(vm)?, vm)))
        .flat_map(|(at, vm)| {
            vm.disks
                .iter()
                .enumerate()
                .filter_map(move |(n, disk)| Some((at, vm.name.as_str(), n, disk.board?)))
        })
        .collect();
    let range = |slice: &BoardSlice| {
        format!(
            "{} at {} (sectors {}..{})",
            format_size(u64::from(slice.sectors) * sector),
            format_size(u64::from(slice.first) * sector),
            slice.first,
            slice.end()
        )
    };
    for (index, &(at, vm, n, slice)) in slices.iter().enumerate() {
        let Some(board) = description.vm[at].disk[n].get_ref().board.as_ref() else {
            continue;
        };
        let span = board.span();
        let key = Some(format!("vm[{at}].disk[{n}].board"));
        if let Some(&(_, other, other_n, other_slice)) = slices[..index]
            .iter()
            .find(|(_, _, _, other)| other.overlaps(&slice))
        {
            report.add(
                span.clone(),
                key.clone(),
                format!(
                    "the slice of VM '{vm}''s disk {n}, {}, overlaps the slice of VM '{other}''s disk {other_n}, {}",
                    range(&slice),
                    range(&other_slice)
                ),
            );
        }
        if let Some(bytes) = disk_bytes {
            if slice.end() * sector > bytes {
                report.add(
                    span,
                    key,
                    format!(
                        "the slice of VM '{vm}''s disk {n}, {}, ends at {} ({} bytes), beyond the board disk of {} ({bytes} bytes)",
                        range(&slice),
                        format_size(slice.end() * sector),
                        slice.end() * sector,
                        format_size(bytes)
                    ),
                );
            }
        }
    }
}

/// A size key (`ram`, `pool-offset`) in bytes, reported if it is not a
/// multiple of 2 MiB or not a size.
fn size_key(
    report: &mut Report,
    value: &Spanned<String>,
    key: Option<String>,
    zero_ok: bool,
) -> Option<u64> {
    match parse_size(value.get_ref()) {
        Some(size) if size % RAM_GRANULE == 0 && (zero_ok || size > 0) => Some(size),
        Some(size) => {
            report.add(
                value.span(),
                key,
                format!(
                    "{} is not a multiple of {}",
                    format_size(size),
                    format_size(RAM_GRANULE)
                ),
            );
            None
        }
        None => {
            report.add(
                value.span(),
                key,
                format!(
                    "'{}' is not a size (write it as \"256 MiB\")",
                    value.get_ref()
                ),
            );
            None
        }
    }
}

/// `CPUs 0 to 3`, or `only CPU 0`: the CPUs of a board with `count`.
fn cpu_range(count: u32) -> String {
    match count {
        0 => "no CPU".into(),
        1 => "only CPU 0".into(),
        _ => format!("CPUs 0 to {}", count - 1),
    }
}

/// A VM's vCPU count and the CPU of each vCPU, from its `vcpus` and
/// `cpus` (either gives the other; neither is one vCPU on CPU 0), with
/// every problem reported: a count the board does not give a VM, an empty
/// list, a list whose length is not `vcpus`, a CPU the board does not have
/// and a CPU named twice.
fn placement(
    report: &mut Report,
    vm: &VmDescription,
    board: &Board,
    key: &dyn Fn(&str) -> Option<String>,
) -> (u32, Vec<u8>) {
    let listed = vm.cpus.as_ref().map(|list| list.get_ref().len() as u32);
    let vcpus = match (&vm.vcpus, listed) {
        (Some(vcpus), _) => *vcpus.get_ref(),
        (None, Some(listed)) => listed,
        (None, None) => 1,
    };
    let out_of_range = vcpus == 0 || vcpus > board.offer.vcpus;
    match (&vm.vcpus, &vm.cpus) {
        (Some(spanned), _) if out_of_range => report.add(
            spanned.span(),
            key("vcpus"),
            format!(
                "{vcpus} vCPUs; board '{}' gives a VM 1 to {}",
                board.name, board.offer.vcpus
            ),
        ),
        (None, Some(list)) if out_of_range && vcpus > 0 => report.add(
            list.span(),
            key("cpus"),
            format!(
                "{vcpus} CPUs, so {vcpus} vCPUs; board '{}' gives a VM 1 to {}",
                board.name, board.offer.vcpus
            ),
        ),
        _ => {}
    }
    let Some(list) = &vm.cpus else {
        let count = if out_of_range { 1 } else { vcpus };
        return (vcpus, (0..count).map(|cpu| cpu as u8).collect());
    };
    let cpus = list.get_ref();
    if cpus.is_empty() {
        report.add(
            list.span(),
            key("cpus"),
            "no CPU: list the CPU of each vCPU (cpus = [0] for one vCPU on CPU 0)".into(),
        );
    } else if let Some(given) = &vm.vcpus {
        if *given.get_ref() as usize != cpus.len() {
            report.add(
                list.span(),
                key("cpus"),
                format!(
                    "{} CPUs listed, but vcpus = {}: list one CPU per vCPU",
                    cpus.len(),
                    given.get_ref()
                ),
            );
        }
    }
    for (n, cpu) in cpus.iter().enumerate() {
        let number = *cpu.get_ref();
        if number >= board.offer.cpus {
            report.add(
                cpu.span(),
                key("cpus"),
                format!(
                    "CPU {number}; board '{}' has {}",
                    board.name,
                    cpu_range(board.offer.cpus)
                ),
            );
        } else if cpus[..n]
            .iter()
            .any(|other| other.get_ref() == cpu.get_ref())
        {
            report.add(
                cpu.span(),
                key("cpus"),
                format!("CPU {number} is named twice: each vCPU needs its own CPU"),
            );
        }
    }
    let cpus = cpus
        .iter()
        .map(|cpu| u8::try_from(*cpu.get_ref()).unwrap_or(u8::MAX))
        .collect();
    (vcpus, cpus)
}

/// Reads and checks the description in `text` (from `file`; the files it
/// names are looked up as [`Options`] says), reporting every problem.
pub fn check(file: &Path, text: &str, options: &Options) -> Result<CheckedSystem, Vec<Problem>> {
    let mut report = Report {
        file,
        text,
        problems: Vec::new(),
    };
    let description: Description = match toml::from_str(text) {
        Ok(description) => description,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            report.add(span, None, error.message().trim().to_string());
            return Err(report.problems);
        }
    };
    let folder = file.parent().unwrap_or(Path::new("."));
    let names: Vec<&str> = BOARDS.iter().map(|board| board.name).collect();
    let written_for = description
        .board
        .as_ref()
        .map(|board| board.get_ref().as_str());
    let Some(board_name) = options.board.as_deref().or(written_for) else {
        report.add(
            0..0,
            None,
            format!(
                "no board: run it with BOARD= (boards: {}), or name one with board = \"...\"",
                names.join(", ")
            ),
        );
        return Err(report.problems);
    };
    let Some(board) = BOARDS.iter().find(|board| board.name == board_name) else {
        let span = description.board.as_ref().map_or(0..0, Spanned::span);
        report.add(
            span,
            Some("board".into()),
            format!(
                "unknown board '{board_name}' (boards: {})",
                names.join(", ")
            ),
        );
        return Err(report.problems);
    };
    if let (Some(written), Some(target)) = (&description.board, &options.board) {
        if written.get_ref() != target {
            report.add(
                written.span(),
                Some("board".into()),
                format!(
                    "written for board '{}', not '{target}' (drop the key to allow any board that offers what it asks for)",
                    written.get_ref()
                ),
            );
        }
    }
    if description.vm.is_empty() {
        report.add(0..0, None, "no VM: add a [[vm]] table".into());
    }
    if description.vm.len() > MAX_VMS {
        report.add(
            description.vm[MAX_VMS].name.span(),
            None,
            format!(
                "{} VMs, more than the {} the hypervisor runs",
                description.vm.len(),
                MAX_VMS
            ),
        );
    }
    let mut vms: Vec<CheckedVm> = Vec::new();
    let mut focus = None;
    let mut next_offset = 0u64;
    // Each VM's RAM in the pool, for the overlap check.
    let mut placed: Vec<(String, Range<u64>)> = Vec::new();
    for (index, vm) in description.vm.iter().enumerate() {
        let key = |name: &str| Some(format!("vm[{index}].{name}"));
        let name = vm.name.get_ref();
        let valid_name = !name.is_empty()
            && name.len() <= hyp::system_image::MAX_NAME
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_name {
            report.add(
                vm.name.span(),
                key("name"),
                format!("'{name}' is not a VM name (1-31 letters, digits and '-')"),
            );
        }
        if description.vm[..index]
            .iter()
            .any(|other| other.name.get_ref() == name)
        {
            report.add(
                vm.name.span(),
                key("name"),
                format!("a second VM called '{name}'"),
            );
        }
        let ram = size_key(&mut report, &vm.ram, key("ram"), false);
        let firmware = vm.firmware.as_ref().and_then(|firmware| {
            let file = &firmware.get_ref().file;
            match read(folder, &options.search, file.get_ref()) {
                Ok((path, bytes)) if bytes.is_empty() || bytes.len() as u64 > FIRMWARE_BANK => {
                    report.add(
                        file.span(),
                        key("firmware.file"),
                        format!(
                            "{} is {} bytes; a firmware is 1 byte to {} ({} bytes), the flash bank it is mapped in",
                            path.display(),
                            bytes.len(),
                            format_size(FIRMWARE_BANK),
                            FIRMWARE_BANK
                        ),
                    );
                    None
                }
                Ok((path, bytes)) => Some(PlacedImage {
                    file: path,
                    bytes,
                    load_offset: 0,
                }),
                Err(message) => {
                    report.add(file.span(), key("firmware.file"), message);
                    None
                }
            }
        });
        match (&vm.kernel, &vm.firmware, &vm.initrd) {
            (None, None, _) => report.add(
                vm.name.span(),
                key("kernel"),
                "no kernel and no firmware: a VM boots one of them".into(),
            ),
            (Some(_), Some(firmware), _) => report.add(
                firmware.span(),
                key("firmware"),
                "a kernel and a firmware: a VM boots one of them, not both".into(),
            ),
            (None, Some(_), Some(initrd)) => report.add(
                initrd.span(),
                key("initrd"),
                "an initrd with a firmware: the firmware loads what it boots itself".into(),
            ),
            _ => {}
        }
        // What a firmware adds to the VM's pool slice after its RAM: its
        // pages (2 MiB blocks) and the second flash bank's mapped start.
        let firmware_pool = firmware.as_ref().map_or(0, |firmware| {
            (firmware.bytes.len() as u64).next_multiple_of(RAM_GRANULE) + ERASED_BANK
        });
        let pool_offset = match &vm.pool_offset {
            Some(offset) => size_key(&mut report, offset, key("pool-offset"), true),
            None => Some(next_offset),
        };
        if let (Some(ram), Some(offset)) = (ram, pool_offset) {
            let span = vm.pool_offset.as_ref().map_or(vm.ram.span(), Spanned::span);
            let range = offset..offset + ram + firmware_pool;
            if range.end > board.pool() {
                report.add(
                    span.clone(),
                    key("ram"),
                    format!(
                        "its {}{} from {} into the pool ends at {} ({} bytes), beyond board '{}''s guest RAM pool of {} ({} bytes)",
                        format_size(ram),
                        if firmware_pool > 0 {
                            format!(
                                " of RAM and {} for its firmware and flash",
                                format_size(firmware_pool)
                            )
                        } else {
                            " of RAM".into()
                        },
                        format_size(offset),
                        format_size(range.end),
                        range.end,
                        board.name,
                        format_size(board.pool()),
                        board.pool()
                    ),
                );
            }
            if let Some((other, other_range)) = placed
                .iter()
                .find(|(_, other)| range.start < other.end && other.start < range.end)
            {
                report.add(
                    span,
                    key("pool-offset"),
                    format!(
                        "its RAM ({}..{} in the pool) overlaps VM '{other}''s ({}..{})",
                        format_size(range.start),
                        format_size(range.end),
                        format_size(other_range.start),
                        format_size(other_range.end)
                    ),
                );
            }
            placed.push((name.clone(), range.clone()));
            next_offset = next_offset.max(range.end);
        }
        let ram = ram.unwrap_or(0);
        let (vcpus, cpus) = placement(&mut report, vm, board, &key);
        // A firmware always gets one (U-Boot finds its devices there).
        let writes_device_tree = vm.device_tree.is_none()
            && (!vm.bootargs.is_empty() || vm.initrd.is_some() || vm.firmware.is_some());
        let has_device_tree = writes_device_tree || vm.device_tree.is_some();
        if has_device_tree && ram > 0 && ram < 2 * DEVICE_TREE_ROOM {
            report.add(
                vm.ram.span(),
                key("ram"),
                format!(
                    "{} is too small for a VM with a device tree (at least {}: the tree takes {} of it)",
                    format_size(ram),
                    format_size(2 * DEVICE_TREE_ROOM),
                    format_size(DEVICE_TREE_ROOM)
                ),
            );
        }
        // Room for images: RAM up to the device tree's 2 MiB.
        let room = if has_device_tree {
            ram.saturating_sub(DEVICE_TREE_ROOM)
        } else {
            ram
        };
        let kernel = match vm.kernel.as_ref().filter(|_| vm.firmware.is_none()) {
            None => None,
            Some(spanned) => {
                let kernel = spanned.get_ref();
                match (kernel.format, &kernel.load_offset) {
                    (ImageFormat::Raw, None) => {
                        report.add(
                            spanned.span(),
                            key("kernel"),
                            "a raw kernel needs its load-offset".into(),
                        );
                        None
                    }
                    (ImageFormat::Zimage | ImageFormat::Elf, Some(offset)) => {
                        report.add(
                    offset.span(),
                    key("kernel.load-offset"),
                    "only a raw kernel takes a load-offset (a zImage and an ELF say where they go)"
                        .into(),
                );
                        None
                    }
                    (format, load_offset) => {
                        let span = kernel.file.span();
                        let read = read(folder, &options.search, kernel.file.get_ref()).and_then(
                            |(path, bytes)| {
                                if bytes.len() as u64 > ram && ram > 0 {
                                    return Err(format!(
                                        "{} is {} bytes, larger than the VM's {} of RAM ({} bytes)",
                                        path.display(),
                                        bytes.len(),
                                        format_size(ram),
                                        ram
                                    ));
                                }
                                let loaded = match format {
                                    ImageFormat::Zimage => images::zimage(bytes, ram),
                                    ImageFormat::Elf => images::elf(&bytes, ram),
                                    ImageFormat::Raw => {
                                        let offset =
                                            *load_offset.as_ref().map_or(&0, |o| o.get_ref());
                                        Ok(images::Kernel {
                                            bytes,
                                            load_offset: offset,
                                            entry_offset: offset,
                                        })
                                    }
                                }
                                .map_err(|problem| format!("{} {problem}", path.display()))?;
                                Ok((path, loaded))
                            },
                        );
                        match read {
                            Ok((path, loaded)) => {
                                let end = loaded.load_offset + loaded.bytes.len() as u64;
                                if ram > 0 && end > room {
                                    report.add(
                                span,
                                key("kernel.file"),
                                format!(
                                    "{} is {} bytes; at its load offset {:#x} only {} bytes of the VM's {} of RAM remain{}",
                                    path.display(),
                                    loaded.bytes.len(),
                                    loaded.load_offset,
                                    room.saturating_sub(loaded.load_offset),
                                    format_size(ram),
                                    if has_device_tree { " before its device tree" } else { "" }
                                ),
                            );
                                }
                                Some((path, loaded))
                            }
                            Err(message) => {
                                report.add(span, key("kernel.file"), message);
                                None
                            }
                        }
                    }
                }
            }
        };
        let kernel_end = kernel
            .as_ref()
            .map_or(0, |(_, k)| k.load_offset + k.bytes.len() as u64);
        let read_file = |report: &mut Report, file: &Spanned<String>, what: &str| {
            read(folder, &options.search, file.get_ref())
                .map_err(|message| report.add(file.span(), key(what), message))
                .ok()
        };
        let initrd = vm.initrd.as_ref().and_then(|file| {
            let (path, bytes) = read_file(&mut report, file, "initrd")?;
            let offset = INITRD_OFFSET
                .min(ram / 2)
                .max(kernel_end)
                .next_multiple_of(RAM_GRANULE);
            Some((
                file.span(),
                PlacedImage {
                    file: path,
                    bytes,
                    load_offset: offset,
                },
            ))
        });
        if let Some((span, initrd)) = &initrd {
            let end = initrd.load_offset + initrd.bytes.len() as u64;
            if ram > 0 && end > room {
                report.add(
                    span.clone(),
                    key("initrd"),
                    format!(
                        "{} is {} bytes; placed at {} into the VM's {} of RAM (after the kernel) only {} bytes remain{}",
                        initrd.file.display(),
                        initrd.bytes.len(),
                        format_size(initrd.load_offset),
                        format_size(ram),
                        room.saturating_sub(initrd.load_offset),
                        if has_device_tree { " before its device tree" } else { "" }
                    ),
                );
            }
        }
        let device_tree = vm.device_tree.as_ref().and_then(|file| {
            let (path, bytes) = read_file(&mut report, file, "device-tree")?;
            if bytes.len() as u64 > DEVICE_TREE_ROOM {
                report.add(
                    file.span(),
                    key("device-tree"),
                    format!(
                        "{} is {} bytes, more than the {} ({} bytes) a device tree has",
                        path.display(),
                        bytes.len(),
                        format_size(DEVICE_TREE_ROOM),
                        DEVICE_TREE_ROOM
                    ),
                );
            }
            // A kernel's tree at the end of RAM, a firmware's at its start.
            let load_offset = if vm.firmware.is_some() {
                0
            } else {
                ram.saturating_sub(DEVICE_TREE_ROOM)
            };
            Some(PlacedImage {
                file: path,
                bytes,
                load_offset,
            })
        });
        let flash = FLASH.name;
        let flash_bit = 1 << DEVICES.iter().position(|d| *d == flash).unwrap_or(0);
        let mut devices = 0u32;
        match &vm.devices {
            None => {
                // Every device the board offers but the flash window,
                // which only a firmware has (and gets below).
                for name in board.devices().filter(|name| *name != flash) {
                    devices |= 1 << DEVICES.iter().position(|d| *d == name).unwrap_or(0);
                }
            }
            Some(list)
                if vm.firmware.is_none() && list.get_ref().iter().any(|d| d.get_ref() == flash) =>
            {
                let device = list.get_ref().iter().find(|d| d.get_ref() == flash);
                report.add(
                    device.map_or(list.span(), Spanned::span),
                    key("devices"),
                    format!("device '{flash}' is the firmware's flash window: only a VM with a firmware has it"),
                );
            }
            Some(list) => {
                for (n, device) in list.get_ref().iter().enumerate() {
                    let bit = DEVICES.iter().position(|d| *d == device.get_ref());
                    match bit.filter(|_| board.devices().any(|offered| offered == device.get_ref()))
                    {
                        None => report.add(
                            device.span(),
                            key("devices"),
                            format!(
                                "board '{}' has no device '{}' (it offers {})",
                                board.name,
                                device.get_ref(),
                                board.devices().collect::<Vec<_>>().join(", ")
                            ),
                        ),
                        Some(_)
                            if list.get_ref()[..n]
                                .iter()
                                .any(|other| other.get_ref() == device.get_ref()) =>
                        {
                            report.add(
                                device.span(),
                                key("devices"),
                                format!("device '{}' is claimed twice", device.get_ref()),
                            )
                        }
                        Some(bit) => devices |= 1 << bit,
                    }
                }
            }
        }
        if vm.firmware.is_some() {
            devices |= flash_bit;
        }
        let mut disks = Vec::new();
        for (n, disk) in vm.disk.iter().enumerate() {
            let key = |name: &str| Some(format!("vm[{index}].disk[{n}].{name}"));
            let Some(slot) = hyp::guest_platform::VIRTIO_MMIO.get(n) else {
                report.add(
                    disk.span(),
                    Some(format!("vm[{index}].disk[{n}]")),
                    format!(
                        "{} disks, more than the {} virtio-mmio slots a VM has",
                        vm.disk.len(),
                        hyp::guest_platform::VIRTIO_MMIO.len()
                    ),
                );
                continue;
            };
            let read_only = disk
                .get_ref()
                .read_only
                .as_ref()
                .is_none_or(|ro| *ro.get_ref());
            let slot_bit = DEVICES.iter().position(|d| *d == slot.name).unwrap_or(0);
            if devices & (1 << slot_bit) == 0 {
                report.add(
                    disk.span(),
                    Some(format!("vm[{index}].disk[{n}]")),
                    format!(
                        "disk {n} is served in slot '{}', which the VM's devices do not claim",
                        slot.name
                    ),
                );
            }
            let file = match (&disk.get_ref().file, &disk.get_ref().board) {
                (Some(file), None) => file,
                (None, Some(board)) => {
                    if let Some(slice) = board_slice(&mut report, board, &key) {
                        disks.push((
                            disk.span(),
                            CheckedDisk {
                                file: PathBuf::new(),
                                bytes: Vec::new(),
                                pool_offset: None,
                                board: Some(slice),
                                read_only,
                            },
                        ));
                    }
                    continue;
                }
                _ => {
                    report.add(
                        disk.span(),
                        Some(format!("vm[{index}].disk[{n}]")),
                        format!("disk {n} needs exactly one of 'file' (an image) and 'board' (a slice of the board disk)"),
                    );
                    continue;
                }
            };
            let Some((path, bytes)) = read(folder, &options.search, file.get_ref())
                .map_err(|message| report.add(file.span(), key("file"), message))
                .ok()
            else {
                continue;
            };
            let sector = u64::from(hyp::system_image::DISK_SECTOR);
            if bytes.is_empty() || !(bytes.len() as u64).is_multiple_of(sector) {
                report.add(
                    file.span(),
                    key("file"),
                    format!(
                        "{} is {} bytes, not a whole number of {sector}-byte sectors (pad it, e.g. truncate -s %{sector})",
                        path.display(),
                        bytes.len()
                    ),
                );
            }
            disks.push((
                disk.span(),
                CheckedDisk {
                    file: path,
                    bytes,
                    pool_offset: (!read_only).then_some(0),
                    board: None,
                    read_only,
                },
            ));
        }
        let mut policy = PackedPolicy::Stop;
        if let Some(spanned) = &vm.fault_policy {
            match spanned.get_ref() {
                FaultPolicy::Named(name) if name.get_ref() == "stop" => {}
                FaultPolicy::Named(name) => report.add(
                    name.span(),
                    key("fault-policy"),
                    format!(
                        "unknown fault policy '{}' (\"stop\" or {{ restart = N }})",
                        name.get_ref()
                    ),
                ),
                FaultPolicy::Restart { restart } => policy = PackedPolicy::Restart(*restart),
            }
        }
        if let Some(spanned) = &vm.focus {
            if *spanned.get_ref() {
                if focus.is_some() {
                    report.add(
                        spanned.span(),
                        key("focus"),
                        "a second VM with the console focus".into(),
                    );
                }
                focus = Some(index);
            }
        }
        if vm.bootargs.len() > hyp::system_image::MAX_BOOTARGS {
            report.add(
                vm.name.span(),
                key("bootargs"),
                format!(
                    "{} bytes of bootargs, more than {}",
                    vm.bootargs.len(),
                    hyp::system_image::MAX_BOOTARGS
                ),
            );
        }
        let format = match &vm.kernel {
            Some(kernel) if firmware.is_none() => kernel.get_ref().format,
            // A firmware is packed as a raw image.
            _ => ImageFormat::Raw,
        };
        let boot = match (kernel, firmware) {
            (Some((path, kernel)), None) => Some((
                kernel.entry_offset,
                Some(PlacedImage {
                    file: path,
                    bytes: kernel.bytes,
                    load_offset: kernel.load_offset,
                }),
                None,
            )),
            (None, Some(firmware)) => Some((0, None, Some(firmware))),
            _ => None,
        };
        if let Some((entry_offset, kernel, firmware)) = boot {
            vms.push(CheckedVm {
                name: name.clone(),
                ram,
                pool_offset: pool_offset.unwrap_or(0),
                vcpus,
                cpus,
                format,
                entry_offset,
                kernel,
                firmware,
                initrd: initrd.map(|(_, initrd)| initrd),
                device_tree,
                writes_device_tree,
                bootargs: vm.bootargs.clone(),
                devices,
                policy,
                console: vm.console.unwrap_or(ConsoleMode::Held),
                disks: disks.into_iter().map(|(_, disk)| disk).collect(),
            });
        }
    }
    // Writable disks' copies: in the pool after every VM's RAM, in order.
    let mut copy_at = placed
        .iter()
        .map(|(_, range)| range.end)
        .max()
        .unwrap_or(0)
        .next_multiple_of(DISK_COPY_ALIGNMENT);
    check_board_slices(&mut report, &description, &vms, options.board_disk_bytes);
    for (index, vm) in vms.iter_mut().enumerate() {
        for (n, disk) in vm.disks.iter_mut().enumerate() {
            if disk.pool_offset.is_none() {
                continue;
            }
            let size = disk.bytes.len() as u64;
            let end = copy_at + size;
            if end > board.pool() {
                let at = description
                    .vm
                    .iter()
                    .position(|d| *d.name.get_ref() == vm.name)
                    .unwrap_or(index);
                report.add(
                    description.vm[at].disk[n].span(),
                    Some(format!("vm[{at}].disk[{n}]")),
                    format!(
                        "writable disk {} is {} ({size} bytes); its copy from {} into the pool ends at {} ({end} bytes), beyond board '{}''s guest RAM pool of {} ({} bytes)",
                        disk.file.display(),
                        format_size(size),
                        format_size(copy_at),
                        format_size(end),
                        board.name,
                        format_size(board.pool()),
                        board.pool()
                    ),
                );
            }
            disk.pool_offset = Some(copy_at);
            copy_at = end.next_multiple_of(DISK_COPY_ALIGNMENT);
        }
    }
    let system = CheckedSystem {
        file: file.to_path_buf(),
        board: *board,
        vms,
        focus: focus.unwrap_or(0),
    };
    if report.problems.is_empty() {
        let size = packed_size(&system);
        if size > board.staging {
            report.add(
                0..0,
                None,
                format!(
                    "the packed system image is {} ({size} bytes), more than board '{}''s {} ({} bytes) staging area",
                    format_size(size.next_multiple_of(1024)),
                    board.name,
                    format_size(board.staging),
                    board.staging
                ),
            );
        }
    }
    if report.problems.is_empty() {
        // Last, what the board checks at boot, on the very image.
        let image = Writer::write(&entries(&system), system.focus);
        if let Err(refused) = hypervisor_check(&image, board) {
            let at = refused.vm.and_then(|name| {
                description
                    .vm
                    .iter()
                    .position(|vm| *vm.name.get_ref() == name)
            });
            let span = at.map_or(0..0, |index| description.vm[index].name.span());
            report.add(
                span,
                at.map(|index| format!("vm[{index}]")),
                format!(
                    "the hypervisor would refuse this system: {}",
                    refused.message
                ),
            );
        }
    }
    if report.problems.is_empty() {
        Ok(system)
    } else {
        Err(report.problems)
    }
}

/// Why the hypervisor would refuse a system image.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refusal {
    /// The VM concerned, if one is.
    vm: Option<String>,
    /// What the hypervisor says.
    message: String,
}

/// Runs on `image` what the board runs at boot before any VM exists:
/// `hyp::system_image::parse`, then `hyp::config::validate` on the
/// configurations `hyp::config::VmConfig::from_table` makes of the
/// entries, against `board`'s offer, with `hyp::image::probe` reading each
/// image's header where the image holds it.
fn hypervisor_check(image: &[u8], board: &Board) -> Result<(), Refusal> {
    let table = hyp::system_image::parse(image).map_err(|error| Refusal {
        vm: None,
        message: format!("cannot read the system image: {error}"),
    })?;
    // The system image at host address 0: an image's host address is its
    // offset into `image`.
    let configs: Vec<VmConfig> = table
        .vms
        .iter()
        .map(|vm| VmConfig::from_table(&table, vm, 0, board.offer.pool.start))
        .collect();
    let disks: Vec<_> = table
        .vms
        .iter()
        .map(|vm| DiskConfig::from_table(&table, vm, 0, board.offer.pool.start))
        .collect();
    validate(&configs, &board.offer, |vm, config| {
        let start = config.host_address as usize;
        let bytes = image
            .get(start..start + config.size as usize)
            .ok_or(ImageProblem::OutsideStaging)?;
        hyp::image::probe(vm, config, bytes)
    })
    .and_then(|()| validate_disks(&configs, &disks, board.offer.pool))
    .and_then(|()| validate_board_slices(&configs, &disks, BoardDiskSize::Unknown))
    .map_err(|error| Refusal {
        vm: error.vm().map(str::to_string),
        message: error.to_string(),
    })
}

/// Reads the description in `file` and checks it ([`check`]).
pub fn load(file: &Path, options: &Options) -> Result<CheckedSystem, Vec<Problem>> {
    match std::fs::read_to_string(file) {
        Ok(text) => check(file, &text, options),
        Err(error) => Err(vec![Problem {
            file: file.to_path_buf(),
            line: 1,
            column: 1,
            key: None,
            message: format!("cannot read the description: {error}"),
        }]),
    }
}

/// The VMs of `system` in the packed format's terms.
fn entries(system: &CheckedSystem) -> Vec<VmEntry<'_>> {
    system
        .vms
        .iter()
        .map(|vm| {
            fn image(role: Role, image: &PlacedImage) -> ImageEntry<'_> {
                ImageEntry {
                    role,
                    bytes: &image.bytes,
                    load_offset: image.load_offset as u32,
                    slice: None,
                }
            }
            let mut images: Vec<ImageEntry> = vm
                .kernel
                .iter()
                .map(|kernel| image(Role::Kernel, kernel))
                .chain(
                    vm.firmware
                        .iter()
                        .map(|firmware| image(Role::Firmware, firmware)),
                )
                .collect();
            images.extend(vm.initrd.iter().map(|initrd| image(Role::Initrd, initrd)));
            images.extend(
                vm.device_tree
                    .iter()
                    .map(|tree| image(Role::DeviceTree, tree)),
            );
            images.extend(vm.disks.iter().map(|disk| ImageEntry {
                role: match (disk.board, disk.read_only) {
                    (Some(_), false) => Role::BoardDisk,
                    (Some(_), true) => Role::ReadOnlyBoardDisk,
                    (None, _) if disk.pool_offset.is_some() => Role::WritableDisk,
                    (None, _) => Role::Disk,
                },
                bytes: &disk.bytes,
                load_offset: disk.pool_offset.unwrap_or(0) as u32,
                slice: disk.board,
            }));
            VmEntry {
                name: &vm.name,
                bootargs: &vm.bootargs,
                ram_size: vm.ram as u32,
                ram_offset: vm.pool_offset as u32,
                vcpus: vm.vcpus,
                cpus: cpu_map(&vm.cpus),
                entry_offset: vm.entry_offset as u32,
                images,
                devices: vm.devices,
                policy: vm.policy,
                console: match vm.console {
                    ConsoleMode::Shared => PackedConsole::Shared,
                    ConsoleMode::Held => PackedConsole::Held,
                    ConsoleMode::Discard => PackedConsole::Discard,
                },
                device_tree: match (&vm.device_tree, vm.writes_device_tree) {
                    (Some(_), _) => DeviceTreeSource::Supplied,
                    (None, true) => DeviceTreeSource::Generated,
                    (None, false) => DeviceTreeSource::None,
                },
                format: match vm.format {
                    ImageFormat::Zimage => KernelFormat::Zimage,
                    ImageFormat::Raw => KernelFormat::Raw,
                    ImageFormat::Elf => KernelFormat::Elf,
                },
            }
        })
        .collect()
}

/// Bytes of the packed image, without packing it.
fn packed_size(system: &CheckedSystem) -> u64 {
    Writer::size(&entries(system)) as u64
}

/// A description of one Linux VM booting `kernel` (a zImage) with an
/// optional `initrd` and kernel command line `bootargs`, 256 MiB of RAM and
/// the whole console: what `make program KERNEL=... INITRD=... BOOTARGS=...`
/// writes and runs.
pub fn one_vm_description(kernel: &Path, initrd: Option<&Path>, bootargs: &str) -> String {
    let quote = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut text = String::from(
        "# A one-VM system written by `make program KERNEL=...` (capvisor-system describe).\n\n[[vm]]\nname = \"linux\"\nram = \"256 MiB\"\n",
    );
    text += &format!(
        "kernel = {{ file = {}, format = \"zimage\" }}\n",
        quote(&kernel.display().to_string())
    );
    if let Some(initrd) = initrd {
        text += &format!("initrd = {}\n", quote(&initrd.display().to_string()));
    }
    text += &format!("bootargs = {}\n", quote(bootargs));
    text
}

/// The system image of a checked system: the table in the packed format
/// (`hyp::system_image`), then each distinct image once; refused, naming
/// the file and the VM, if the hypervisor's own checks refuse it (they ran
/// in [`check`] already; a system changed since is checked again).
pub fn pack(system: &CheckedSystem) -> Result<Vec<u8>, String> {
    let image = Writer::write(&entries(system), system.focus);
    match hypervisor_check(&image, &system.board) {
        Ok(()) => Ok(image),
        Err(refused) => Err(format!(
            "{}: the hypervisor would refuse this system: {}",
            system.file.display(),
            refused.message
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of this test's own with the image files the tests name
    /// (tests run in parallel).
    fn folder() -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("capvisor-system-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A position-independent zImage of 4 KiB.
        let mut kernel = vec![0u8; 4096];
        kernel[0x24..0x28].copy_from_slice(&hyp::image::ZIMAGE_MAGIC.to_le_bytes());
        kernel[0x2c..0x30].copy_from_slice(&4096u32.to_le_bytes());
        kernel[0x30..0x34].copy_from_slice(&hyp::image::LITTLE_ENDIAN.to_le_bytes());
        std::fs::write(dir.join("kernel"), kernel).unwrap();
        std::fs::write(dir.join("initrd"), b"initrd").unwrap();
        std::fs::write(dir.join("big"), vec![0u8; 3 << 20]).unwrap();
        std::fs::write(dir.join("firmware"), vec![0xeau8; 5000]).unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        std::fs::write(dir.join("disk.img"), vec![0x5a; 8192]).unwrap();
        std::fs::write(dir.join("odd.img"), vec![0x5a; 1000]).unwrap();
        dir
    }

    fn check_text(text: &str) -> Result<CheckedSystem, Vec<String>> {
        check_text_with(text, &Options::default())
    }

    fn check_text_with(text: &str, options: &Options) -> Result<CheckedSystem, Vec<String>> {
        let file = folder().join("system.toml");
        check(&file, text, options).map_err(|problems| {
            problems
                .iter()
                .map(|problem| {
                    problem
                        .to_string()
                        .replace(&format!("{}/", file.parent().unwrap().display()), "")
                })
                .collect()
        })
    }

    const GOOD: &str = r#"board = "qemu-virt"

[[vm]]
name = "linux"
ram = "256 MiB"
kernel = { file = "kernel", format = "zimage" }
initrd = "initrd"
bootargs = "console=ttyAMA0"
devices = ["pl011", "gic-distributor", "gic-cpu-interface"]
focus = true

[[vm]]
name = "ticker"
ram = "2 MiB"
kernel = { file = "kernel", format = "raw", load-offset = 0x8000 }
fault-policy = { restart = 2 }
console = "shared"
"#;

    #[test]
    fn a_good_description_is_checked_into_sizes() {
        let system = check_text(GOOD).unwrap();
        assert_eq!(system.board.name, "qemu-virt");
        assert_eq!(
            system
                .vms
                .iter()
                .map(|vm| (vm.name.as_str(), vm.ram, vm.vcpus, vm.format))
                .collect::<Vec<_>>(),
            [
                ("linux", 256 << 20, 1, ImageFormat::Zimage),
                ("ticker", 2 << 20, 1, ImageFormat::Raw)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let problems = check_text("board = \"qemu-virt\"\n[[vm]\nname = 1\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("system.toml:2:"), "{problems:?}");
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_line() {
        let text = GOOD.replace("bootargs =", "boot-args =");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("system.toml:8:"), "{problems:?}");
        assert!(problems[0].contains("boot-args"), "{problems:?}");
    }

    #[test]
    fn a_missing_file_is_named_with_its_key() {
        let text = GOOD.replace("initrd = \"initrd\"", "initrd = \"nowhere\"");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("system.toml:7:10: vm[0].initrd: cannot find 'nowhere' (looked in "),
            "{problems:?}"
        );
        assert!(problems[0].contains("nowhere"), "{problems:?}");
    }

    #[test]
    fn ram_beyond_the_pool_names_both_sizes() {
        let text = GOOD.replace("\"256 MiB\"", "\"1 GiB\"");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:5:7: vm[0].ram: its 1 GiB of RAM from 0 into the pool ends at 1 GiB (1073741824 bytes), beyond board 'qemu-virt''s guest RAM pool of 752 MiB (788529152 bytes)",
                "system.toml:14:7: vm[1].ram: its 2 MiB of RAM from 1 GiB into the pool ends at 1026 MiB (1075838976 bytes), beyond board 'qemu-virt''s guest RAM pool of 752 MiB (788529152 bytes)"
            ]
        );
    }

    #[test]
    fn ram_that_is_not_a_size_or_not_a_multiple_of_2_mib() {
        let text = GOOD
            .replace("\"256 MiB\"", "\"256 megs\"")
            .replace("\"2 MiB\"", "\"3 MiB\"");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:5:7: vm[0].ram: '256 megs' is not a size (write it as \"256 MiB\")",
                "system.toml:14:7: vm[1].ram: 3 MiB is not a multiple of 2 MiB"
            ]
        );
    }

    #[test]
    fn an_image_larger_than_its_ram_names_both_sizes() {
        let text = GOOD.replace(
            "{ file = \"kernel\", format = \"raw\"",
            "{ file = \"big\", format = \"raw\"",
        );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("vm[1].kernel.file:")
                && problems[0].contains(
                    "is 3145728 bytes, larger than the VM's 2 MiB of RAM (2097152 bytes)"
                ),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_devices_and_devices_twice() {
        let text = GOOD.replace(
            "devices = [\"pl011\", \"gic-distributor\", \"gic-cpu-interface\"]",
            "devices = [\"pl011\", \"virtio-net\", \"pl011\"]",
        );
        let problems = check_text(&text).unwrap_err();
        // What the board offers: the guest platform's devices.
        let offered = DEVICES.join(", ");
        assert_eq!(
            problems,
            [
                format!("system.toml:9:21: vm[0].devices: board 'qemu-virt' has no device 'virtio-net' (it offers {offered})"),
                "system.toml:9:35: vm[0].devices: device 'pl011' is claimed twice".into()
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = GOOD
            .replace("name = \"ticker\"", "name = \"linux\"")
            .replace(
                "console = \"shared\"",
                "console = \"shared\"\nfocus = true\nvcpus = 5",
            );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:13:8: vm[1].name: a second VM called 'linux'",
                "system.toml:19:9: vm[1].vcpus: 5 vCPUs; board 'qemu-virt' gives a VM 1 to 4",
                "system.toml:18:9: vm[1].focus: a second VM with the console focus"
            ]
        );
    }

    /// `GOOD` with `keys` (lines of TOML) added to its first VM.
    fn linux_with(keys: &str) -> String {
        GOOD.replace(
            "ram = \"256 MiB\"\n",
            &format!("ram = \"256 MiB\"\n{keys}\n"),
        )
    }

    fn placements(system: &CheckedSystem) -> Vec<(u32, Vec<u8>)> {
        system
            .vms
            .iter()
            .map(|vm| (vm.vcpus, vm.cpus.clone()))
            .collect()
    }

    #[test]
    fn vcpus_and_cpus_give_each_other() {
        // Neither: one vCPU on CPU 0, as every description before SMP.
        let system = check_text(GOOD).unwrap();
        assert_eq!(placements(&system), [(1, vec![0]), (1, vec![0])]);
        // `cpus` alone: a vCPU per CPU, in order.
        let system = check_text(&linux_with("cpus = [2, 1]")).unwrap();
        assert_eq!(placements(&system), [(2, vec![2, 1]), (1, vec![0])]);
        // `vcpus` alone: CPUs 0 up.
        let system = check_text(&linux_with("vcpus = 3")).unwrap();
        assert_eq!(placements(&system)[0], (3, vec![0, 1, 2]));
        // Both, agreeing.
        let system = check_text(&linux_with("vcpus = 4\ncpus = [3, 2, 1, 0]")).unwrap();
        assert_eq!(placements(&system)[0], (4, vec![3, 2, 1, 0]));
    }

    #[test]
    fn cpus_beyond_the_board_or_named_twice_are_refused() {
        let problems = check_text(&linux_with("cpus = [1, 4, 1]")).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:6:12: vm[0].cpus: CPU 4; board 'qemu-virt' has CPUs 0 to 3",
                "system.toml:6:15: vm[0].cpus: CPU 1 is named twice: each vCPU needs its own CPU",
            ]
        );
        let file = folder().join("system.toml");
        let text = linux_with("cpus = [0, 1]").replace("board = \"qemu-virt\"\n", "");
        let options = Options {
            board_disk_bytes: None,
            board: Some("integrator-cp".into()),
            search: Vec::new(),
        };
        let problems: Vec<String> = check(&file, &text, &options)
            .unwrap_err()
            .iter()
            .map(|problem| format!("{}:{}: {}", problem.line, problem.column, problem.message))
            .collect();
        assert_eq!(
            problems,
            [
                "5:8: 2 CPUs, so 2 vCPUs; board 'integrator-cp' gives a VM 1 to 1",
                "5:12: CPU 1; board 'integrator-cp' has only CPU 0",
            ]
        );
    }

    #[test]
    fn cpus_must_list_one_cpu_per_vcpu() {
        let problems = check_text(&linux_with("vcpus = 2\ncpus = [0, 1, 2]")).unwrap_err();
        assert_eq!(
            problems,
            ["system.toml:7:8: vm[0].cpus: 3 CPUs listed, but vcpus = 2: list one CPU per vCPU"]
        );
        let problems = check_text(&linux_with("cpus = []")).unwrap_err();
        assert_eq!(
            problems,
            ["system.toml:6:8: vm[0].cpus: no CPU: list the CPU of each vCPU (cpus = [0] for one vCPU on CPU 0)"]
        );
        let problems = check_text(&linux_with("vcpus = 1\ncpus = []")).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problems = check_text(&linux_with("cpus = [0, 1, 2, 3, 0]")).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:6:8: vm[0].cpus: 5 CPUs, so 5 vCPUs; board 'qemu-virt' gives a VM 1 to 4",
                "system.toml:6:21: vm[0].cpus: CPU 0 is named twice: each vCPU needs its own CPU",
            ]
        );
        let problems = check_text(&linux_with("vcpus = 0")).unwrap_err();
        assert_eq!(
            problems,
            ["system.toml:6:9: vm[0].vcpus: 0 vCPUs; board 'qemu-virt' gives a VM 1 to 4"]
        );
        let problems = check_text(&linux_with("cpus = [-1]")).unwrap_err();
        assert!(problems[0].starts_with("system.toml:6:"), "{problems:?}");
    }

    #[test]
    fn the_cpu_map_is_packed() {
        let system = check_text(&linux_with("cpus = [1, 3]")).unwrap();
        let image = pack(&system).unwrap();
        let table = hyp::system_image::parse(&image).unwrap();
        assert_eq!(
            (table.vms[0].vcpus, table.vms[0].cpus),
            (2, [1, 3, 0xff, 0xff])
        );
        assert_eq!(
            (table.vms[1].vcpus, table.vms[1].cpus),
            (1, [0, 0xff, 0xff, 0xff])
        );
    }

    #[test]
    fn an_unknown_board_lists_the_boards() {
        let problems = check_text(&GOOD.replace("qemu-virt", "raspberry-pi")).unwrap_err();
        assert_eq!(
            problems,
            ["system.toml:1:9: board: unknown board 'raspberry-pi' (boards: integrator-cp, qemu-virt)"]
        );
    }

    #[test]
    fn raw_kernels_need_their_load_offset_and_only_they_take_one() {
        let text = GOOD.replace(", load-offset = 0x8000", "").replace(
            "{ file = \"kernel\", format = \"zimage\" }",
            "{ file = \"kernel\", format = \"elf\", load-offset = 4 }",
        );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("vm[0].kernel.load-offset: only a raw kernel"));
        assert!(problems[1].contains("vm[1].kernel: a raw kernel needs its load-offset"));
    }

    #[test]
    fn overlapping_ram_names_both_vms_and_ranges() {
        let text = GOOD.replace(
            "name = \"ticker\"\nram = \"2 MiB\"",
            "name = \"ticker\"\nram = \"2 MiB\"\npool-offset = \"254 MiB\"",
        );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(
            problems,
            ["system.toml:15:15: vm[1].pool-offset: its RAM (254 MiB..256 MiB in the pool) overlaps VM 'linux''s (0..256 MiB)"]
        );
        let placed = GOOD.replace(
            "name = \"ticker\"\nram = \"2 MiB\"",
            "name = \"ticker\"\nram = \"2 MiB\"\npool-offset = \"512 MiB\"",
        );
        assert_eq!(check_text(&placed).unwrap().vms[1].pool_offset, 512 << 20);
    }

    /// What the hypervisor refuses is not packed, though a system changed
    /// after the tool's own checks would get past them: the message names
    /// the file and the VM, in the hypervisor's words.
    #[test]
    fn an_image_the_hypervisor_refuses_is_not_packed() {
        let good = check_text(GOOD).unwrap();
        assert!(pack(&good).is_ok());
        let refusal = |system: &CheckedSystem| {
            pack(system)
                .unwrap_err()
                .replace(&format!("{}", good.file.display()), "system.toml")
        };
        let mut overlapping = good.clone();
        overlapping.vms[1].pool_offset = 128 << 20;
        assert_eq!(
            refusal(&overlapping),
            "system.toml: the hypervisor would refuse this system: VM 'ticker': RAM overlaps the RAM of VM 'linux'"
        );
        // A zImage whose header claims more bytes than are packed.
        let mut cut = good.clone();
        cut.vms[0].kernel.as_mut().unwrap().bytes.truncate(2048);
        assert_eq!(
            refusal(&cut),
            "system.toml: the hypervisor would refuse this system: VM 'linux': image 'kernel' is malformed (its zImage header makes no sense, or claims more bytes than were packed)"
        );
        // More vCPUs than the board gives a VM.
        let mut wide = good.clone();
        wide.board = BOARDS[0];
        wide.vms[0].vcpus = 2;
        wide.vms[0].cpus = vec![0, 1];
        assert_eq!(
            refusal(&wide),
            "system.toml: the hypervisor would refuse this system: VM 'linux': 2 vCPUs, the board gives a VM at most 1"
        );
        // The check behind both: its VM, for the description's position.
        let image = Writer::write(&entries(&overlapping), 0);
        assert_eq!(
            hypervisor_check(&image, &overlapping.board).unwrap_err().vm,
            Some("ticker".to_string())
        );
    }

    #[test]
    fn a_checked_system_packs_into_what_the_hypervisor_reads() {
        let system = check_text(GOOD).unwrap();
        let image = pack(&system).unwrap();
        let table = hyp::system_image::parse(&image).unwrap();
        assert_eq!(table.focus, 0);
        let linux = &table.vms[0];
        assert_eq!(
            (
                linux.name,
                linux.bootargs,
                linux.ram_size,
                linux.ram_offset,
                linux.entry_offset
            ),
            ("linux", "console=ttyAMA0", 256 << 20, 0, 0x1_0000)
        );
        let initrd = linux.image(Role::Initrd).unwrap();
        assert_eq!((initrd.load_offset, initrd.size()), (128 << 20, 6));
        assert_eq!(linux.device_tree, DeviceTreeSource::Generated);
        assert_eq!(linux.console, PackedConsole::Held);
        let ticker = &table.vms[1];
        assert_eq!(
            (ticker.ram_offset, ticker.entry_offset),
            (256 << 20, 0x8000)
        );
        assert_eq!(ticker.policy, PackedPolicy::Restart(2));
        assert_eq!(ticker.device_tree, DeviceTreeSource::None);
        let flash = 1 << DEVICES.iter().position(|d| *d == "flash").unwrap();
        assert_eq!(
            ticker.devices,
            ((1 << DEVICES.len()) - 1) & !flash,
            "every device the board offers by default but the firmware's flash"
        );
        // Both kernels are the same file: stored once.
        assert_eq!(
            table.data_offset(&linux.images[0]),
            table.data_offset(&ticker.images[0])
        );
        assert_eq!(packed_size(&system), image.len() as u64);
    }

    #[test]
    fn the_board_comes_from_the_description_or_the_run() {
        let anywhere = GOOD.replace("board = \"qemu-virt\"\n", "");
        let file = folder().join("system.toml");
        let on = |board: Option<&str>, text: &str| {
            let options = Options {
                board_disk_bytes: None,
                board: board.map(str::to_string),
                search: Vec::new(),
            };
            check(&file, text, &options).map(|system| system.board.name)
        };
        assert_eq!(on(Some("integrator-cp"), &anywhere), Ok("integrator-cp"));
        let problems = on(None, &anywhere).unwrap_err();
        assert!(
            problems[0]
                .message
                .starts_with("no board: run it with BOARD="),
            "{problems:?}"
        );
        let problems = on(Some("integrator-cp"), GOOD).unwrap_err();
        assert!(
            problems[0]
                .message
                .starts_with("written for board 'qemu-virt', not 'integrator-cp'"),
            "{problems:?}"
        );
    }

    #[test]
    fn files_are_found_next_to_the_description_then_in_the_search_path() {
        let elsewhere = folder();
        std::fs::rename(elsewhere.join("initrd"), elsewhere.join("elsewhere-initrd")).unwrap();
        let text = GOOD.replace("initrd = \"initrd\"", "initrd = \"elsewhere-initrd\"");
        let file = folder().join("system.toml");
        let options = Options {
            board_disk_bytes: None,
            board: None,
            search: vec![elsewhere.clone()],
        };
        let system = check(&file, &text, &options).unwrap();
        assert_eq!(
            system.vms[0].initrd.as_ref().unwrap().file,
            elsewhere.join("elsewhere-initrd")
        );
    }

    #[test]
    fn a_kernel_in_the_wrong_format_is_named() {
        let text = GOOD.replace("format = \"zimage\"", "format = \"elf\"");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("vm[0].kernel.file: kernel is not a little-endian ELF file"),
            "{problems:?}"
        );
    }

    #[test]
    fn an_initrd_that_does_not_fit_names_both_sizes() {
        let text = GOOD
            .replace("\"256 MiB\"", "\"4 MiB\"")
            .replace("\"initrd\"", "\"big\"");
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(
                "vm[0].initrd: big is 3145728 bytes; placed at 2 MiB into the VM's 4 MiB of RAM (after the kernel) only 0 bytes remain before its device tree"
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn a_one_vm_description_reads_back() {
        let dir = folder();
        let text = one_vm_description(
            &dir.join("kernel"),
            Some(&dir.join("initrd")),
            "console=ttyAMA0 root=\"/dev/x\"",
        );
        let system = check(
            &dir.join("custom.toml"),
            &text,
            &Options {
                board_disk_bytes: None,
                board: Some("qemu-virt".into()),
                search: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(system.vms.len(), 1);
        assert_eq!(system.vms[0].bootargs, "console=ttyAMA0 root=\"/dev/x\"");
        assert!(system.vms[0].initrd.is_some());
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("256 MiB"), Some(256 << 20));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size(" 1 GiB "), Some(1 << 30));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("256"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("99999999999999999999 GiB"), None);
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size(1026 << 20), "1026 MiB");
        assert_eq!(format_size(4096), "4 KiB");
        assert_eq!(format_size(5), "5 bytes");
    }

    #[test]
    fn a_firmware_vm_is_packed_with_its_flash_after_its_ram() {
        let system = check_text(
            r#"board = "integrator-cp"
[[vm]]
name = "u-boot"
ram = "128 MiB"
firmware = { file = "firmware" }
devices = ["pl011", "gic-distributor", "gic-cpu-interface"]

[[vm]]
name = "next"
ram = "2 MiB"
kernel = { file = "kernel", format = "zimage" }
"#,
        )
        .unwrap();
        let uboot = &system.vms[0];
        assert!(uboot.kernel.is_none() && uboot.writes_device_tree);
        assert_eq!(uboot.firmware.as_ref().unwrap().bytes.len(), 5000);
        // 128 MiB of RAM, 2 MiB of firmware pages, 2 MiB of flash store.
        assert_eq!(system.vms[1].pool_offset, (128 + 2 + 2) << 20);
        let image = pack(&system).unwrap();
        let table = hyp::system_image::parse(&image).unwrap();
        let entry = &table.vms[0];
        assert!(entry.claims("flash"), "a firmware gets its flash window");
        assert!(!table.vms[1].claims("flash"));
        assert_eq!(entry.images.len(), 1);
        assert_eq!(entry.images[0].role, Role::Firmware);
        assert_eq!((entry.entry_offset, entry.images[0].load_offset), (0, 0));
        assert_eq!(entry.device_tree, DeviceTreeSource::Generated);
    }

    #[test]
    fn firmware_refusals_name_the_key() {
        let problems = check_text(
            r#"board = "qemu-virt"
[[vm]]
name = "both"
ram = "64 MiB"
kernel = { file = "kernel", format = "zimage" }
firmware = { file = "firmware" }

[[vm]]
name = "neither"
ram = "64 MiB"

[[vm]]
name = "initrd"
ram = "64 MiB"
firmware = { file = "firmware" }
initrd = "initrd"

[[vm]]
name = "empty"
ram = "64 MiB"
firmware = { file = "empty" }

[[vm]]
name = "claims"
ram = "64 MiB"
kernel = { file = "kernel", format = "zimage" }
devices = ["pl011", "flash"]
"#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains(
            "system.toml:6:12: vm[0].firmware: a kernel and a firmware: a VM boots one of them, not both"
        ));
        assert!(
            problems[1].contains("vm[1].kernel: no kernel and no firmware: a VM boots one of them")
        );
        assert!(problems[2].contains(
            "vm[2].initrd: an initrd with a firmware: the firmware loads what it boots itself"
        ));
        assert!(
            problems[3].contains("vm[3].firmware.file: ")
                && problems[3].contains("empty is 0 bytes; a firmware is 1 byte to 64 MiB")
        );
        assert!(problems[4].contains(
            "system.toml:27:21: vm[4].devices: device 'flash' is the firmware's flash window: only a VM with a firmware has it"
        ));
    }

    #[test]
    fn disks_are_packed_in_slot_order_and_writable_ones_get_a_pool_copy() {
        let text = format!(
            "{GOOD}\n[[vm.disk]]\nfile = \"disk.img\"\n\n[[vm.disk]]\nfile = \"disk.img\"\nread-only = false\n"
        );
        let system = check_text(&text).unwrap();
        let ticker = &system.vms[1];
        assert_eq!(ticker.disks.len(), 2);
        // After both VMs' RAM (256 MiB + 2 MiB).
        assert_eq!(
            ticker
                .disks
                .iter()
                .map(|d| d.pool_offset)
                .collect::<Vec<_>>(),
            [None, Some(258 << 20)]
        );
        let image = pack(&system).unwrap();
        let table = hyp::system_image::parse(&image).unwrap();
        let disks: Vec<(Role, u32, u32)> = table.vms[1]
            .disks()
            .map(|d| (d.role, d.size(), d.load_offset))
            .collect();
        assert_eq!(
            disks,
            [(Role::Disk, 8192, 0), (Role::WritableDisk, 8192, 258 << 20)]
        );
        assert_eq!(table.vms[0].disks().count(), 0);
    }

    #[test]
    fn board_disk_slices_are_packed_as_sectors_without_bytes() {
        let text = format!(
            "{GOOD}\n[[vm.disk]]\nboard = {{ offset = \"64 MiB\", size = \"128 MiB\" }}\nread-only = false\n\n[[vm.disk]]\nboard = {{ offset = \"0\", size = \"512 KiB\" }}\n"
        );
        let system = check_text(&text).unwrap();
        let ticker = &system.vms[1];
        assert_eq!(
            ticker
                .disks
                .iter()
                .map(|disk| (disk.board, disk.read_only, disk.bytes.len()))
                .collect::<Vec<_>>(),
            [
                (
                    Some(BoardSlice {
                        first: 131_072,
                        sectors: 262_144
                    }),
                    false,
                    0
                ),
                (
                    Some(BoardSlice {
                        first: 0,
                        sectors: 1024
                    }),
                    true,
                    0
                )
            ]
        );
        let image = pack(&system).unwrap();
        let table = hyp::system_image::parse(&image).unwrap();
        let disks: Vec<(Role, Option<BoardSlice>)> =
            table.vms[1].disks().map(|d| (d.role, d.slice)).collect();
        assert_eq!(
            disks,
            [
                (Role::BoardDisk, ticker.disks[0].board),
                (Role::ReadOnlyBoardDisk, ticker.disks[1].board)
            ]
        );
        // Told the board disk's size: 192 MiB holds both; one byte less
        // does not, and the refusal names both sizes.
        let fits = Options {
            board_disk_bytes: Some(192 << 20),
            ..Options::default()
        };
        assert!(check_text_with(&text, &fits).is_ok());
        let short = Options {
            board_disk_bytes: Some((192 << 20) - 512),
            ..Options::default()
        };
        let problems = check_text_with(&text, &short).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0],
            "system.toml:20:9: vm[1].disk[0].board: the slice of VM 'ticker''s disk 0, 128 MiB at 64 MiB (sectors 131072..393216), ends at 192 MiB (201326592 bytes), beyond the board disk of 201326080 bytes (201326080 bytes)"
        );
    }

    #[test]
    fn bad_board_disk_slices_are_refused_at_their_lines() {
        // Two VMs' slices sharing a megabyte, named both.
        let text = GOOD.replace(
            "focus = true\n",
            "focus = true\ndevices = [\"pl011\", \"gic-distributor\", \"gic-cpu-interface\", \"virtio-mmio0\"]\n\n[[vm.disk]]\nboard = { offset = \"0\", size = \"2 MiB\" }\n",
        ).replacen("devices = [\"pl011\", \"gic-distributor\", \"gic-cpu-interface\"]\n", "", 1);
        let text = format!(
            "{text}\n[[vm.disk]]\nboard = {{ offset = \"1 MiB\", size = \"1 MiB\" }}\nread-only = true\n"
        );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].ends_with(
                "vm[1].disk[0].board: the slice of VM 'ticker''s disk 0, 1 MiB at 1 MiB (sectors 2048..4096), overlaps the slice of VM 'linux''s disk 0, 2 MiB at 0 (sectors 0..4096)"
            ),
            "{}",
            problems[0]
        );
        for (disk, expected) in [
            (
                "board = { offset = \"0\", size = \"0 MiB\" }",
                "vm[1].disk[0].board.size: a slice of the board disk of 0 bytes",
            ),
            (
                "board = { offset = \"lots\", size = \"1 MiB\" }",
                "vm[1].disk[0].board.offset: 'lots' is not a size (write it as \"64 MiB\")",
            ),
            (
                "board = { offset = \"0\", size = \"4096 GiB\" }",
                "vm[1].disk[0].board.size: 4096 GiB is beyond the 2 TiB a slice's size may be",
            ),
            (
                "file = \"disk.img\"\nboard = { offset = \"0\", size = \"1 MiB\" }",
                "vm[1].disk[0]: disk 0 needs exactly one of 'file' (an image) and 'board' (a slice of the board disk)",
            ),
            (
                "read-only = true",
                "vm[1].disk[0]: disk 0 needs exactly one of 'file' (an image) and 'board' (a slice of the board disk)",
            ),
        ] {
            let problems = check_text(&format!("{GOOD}\n[[vm.disk]]\n{disk}\n")).unwrap_err();
            assert_eq!(problems.len(), 1, "{disk}: {problems:?}");
            assert!(problems[0].ends_with(expected), "{}", problems[0]);
        }
    }

    #[test]
    fn bad_disks_are_refused_at_their_lines() {
        let odd = format!("{GOOD}\n[[vm.disk]]\nfile = \"odd.img\"\n");
        let problems = check_text(&odd).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("system.toml:20:8: vm[1].disk[0].file: ")
                && problems[0].ends_with(
                    "odd.img is 1000 bytes, not a whole number of 512-byte sectors (pad it, e.g. truncate -s %512)"
                ),
            "{}",
            problems[0]
        );
        let three = format!("{GOOD}{}", "\n[[vm.disk]]\nfile = \"disk.img\"\n".repeat(3));
        let problems = check_text(&three).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .contains("vm[1].disk[2]: 3 disks, more than the 2 virtio-mmio slots a VM has"),
            "{}",
            problems[0]
        );
        // The first VM claims only three devices: no slot for a disk.
        let unclaimed = GOOD.replace(
            "focus = true\n",
            "focus = true\n\n[[vm.disk]]\nfile = \"disk.img\"\n",
        );
        let problems = check_text(&unclaimed).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(
                "vm[0].disk[0]: disk 0 is served in slot 'virtio-mmio0', which the VM's devices do not claim"
            ),
            "{}",
            problems[0]
        );
        let missing = format!("{GOOD}\n[[vm.disk]]\nfile = \"nowhere.img\"\nsize = 3\n");
        let problems = check_text(&missing).unwrap_err();
        assert!(
            problems[0].contains("unknown field `size`"),
            "{}",
            problems[0]
        );
        // A writable disk beyond the pool names both sizes.
        let big = GOOD.replace("ram = \"256 MiB\"", "ram = \"750 MiB\"");
        let text = format!("{big}\n[[vm.disk]]\nfile = \"disk.img\"\nread-only = false\n");
        let problems = check_text(&text).unwrap_err();
        assert!(
            problems[0].contains("its copy from 752 MiB into the pool ends at")
                && problems[0].contains(
                    "beyond board 'qemu-virt''s guest RAM pool of 752 MiB (788529152 bytes)"
                ),
            "{}",
            problems[0]
        );
    }
}
