// SPDX-License-Identifier: MIT OR Apache-2.0
//! System descriptions: one TOML file declaring a board's VMs, read and
//! checked on the host with errors a person can act on.
//!
//! This is the host side of the system-description work (issue 12), first
//! step: the format, its reader and its checks against the board it names.
//! Every problem found is reported, each with the file, line and column and
//! the key it concerns, and a size problem names both sizes. Packing the
//! description and its images for the hypervisor comes next.
//!
//! ```toml
//! board = "qemu-virt"
//!
//! [[vm]]
//! name = "linux"
//! ram = "256 MiB"
//! kernel = { file = "linux-zImage", format = "zimage" }
//! initrd = "initrd.cpio.gz"
//! bootargs = "console=ttyAMA0"
//! devices = ["pl011", "gic-distributor", "gic-cpu-interface"]
//! focus = true
//!
//! [[vm]]
//! name = "ticker"
//! ram = "2 MiB"
//! kernel = { file = "ticker", format = "zimage" }
//! devices = ["pl011", "gic-distributor", "gic-cpu-interface"]
//! fault-policy = { restart = 2 }
//! console = "shared"
//! ```
//!
//! Keys of a VM: `name` (required, unique, 1-31 characters of letters,
//! digits and `-`), `ram` (required: a size in KiB, MiB or GiB, a multiple
//! of 2 MiB), `vcpus` (default 1, at most what the board offers), `kernel`
//! (required: `file`, `format` = `zimage`, `raw` with `load-offset`, or
//! `elf`), `initrd`, `device-tree` (files), `bootargs`, `devices` (each one
//! the board offers, each once), `fault-policy` (`"stop"` or `{ restart =
//! N }`), `console` (`shared`, `held` or `discard`; default `held`), `focus`
//! (at most one VM; default the first). Files are relative to the
//! description's folder. Unknown keys are errors.

#![forbid(unsafe_code)]

use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a board offers VMs, as the host checks a description against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardOffer {
    /// The board's name (`boards/<name>`).
    pub name: &'static str,
    /// Bytes of the guest RAM pool.
    pub pool: u64,
    /// vCPUs a VM may have.
    pub vcpus: u32,
    /// The virtual devices a VM may claim.
    pub devices: &'static [&'static str],
}

/// The devices every board gives VMs today (the guest platform's GIC
/// windows and PL011).
const GUEST_PLATFORM: &[&str] = &["gic-distributor", "gic-cpu-interface", "pl011"];

/// Every board, as the hypervisor builds it (pool sizes from the boards'
/// memory maps: 752 MiB each).
pub const BOARDS: [BoardOffer; 2] = [
    BoardOffer {
        name: "integrator-cp",
        pool: 752 << 20,
        vcpus: 1,
        devices: GUEST_PLATFORM,
    },
    BoardOffer {
        name: "qemu-virt",
        pool: 752 << 20,
        vcpus: 1,
        devices: GUEST_PLATFORM,
    },
];

/// RAM is handed out in 2 MiB blocks.
pub const RAM_GRANULE: u64 = 2 << 20;

/// The most VMs the hypervisor runs.
pub const MAX_VMS: usize = 8;

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
    /// The file, relative to the description.
    pub file: Spanned<String>,
    /// Its format.
    pub format: ImageFormat,
    /// For `raw`: where in the VM's RAM it goes.
    pub load_offset: Option<Spanned<u64>>,
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
    /// vCPUs.
    pub vcpus: Option<Spanned<u32>>,
    /// The kernel.
    pub kernel: Spanned<KernelImage>,
    /// An initrd file.
    pub initrd: Option<Spanned<String>>,
    /// A device tree file (else the hypervisor writes one).
    pub device_tree: Option<Spanned<String>>,
    /// The kernel command line.
    #[serde(default)]
    pub bootargs: String,
    /// The virtual devices it claims.
    #[serde(default)]
    pub devices: Vec<Spanned<String>>,
    /// Its fault policy (default stop).
    pub fault_policy: Option<Spanned<FaultPolicy>>,
    /// Its console mode (default held).
    pub console: Option<ConsoleMode>,
    /// Whether it has the console focus at boot.
    pub focus: Option<Spanned<bool>>,
}

/// A whole description, as written.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The board it is for.
    pub board: Spanned<String>,
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
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// A VM after the checks, with its sizes worked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedVm {
    /// Its name.
    pub name: String,
    /// Bytes of RAM.
    pub ram: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// The kernel file (resolved against the description's folder).
    pub kernel: PathBuf,
    /// Its format.
    pub format: ImageFormat,
}

/// A description that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedSystem {
    /// The board.
    pub board: BoardOffer,
    /// The VMs, in order.
    pub vms: Vec<CheckedVm>,
}

/// Reads and checks the description in `text` (from `file`; image files
/// are looked up relative to its folder), reporting every problem.
pub fn check(file: &Path, text: &str) -> Result<CheckedSystem, Vec<Problem>> {
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
    let Some(board) = BOARDS
        .iter()
        .find(|board| board.name == description.board.get_ref())
    else {
        let names: Vec<&str> = BOARDS.iter().map(|board| board.name).collect();
        report.add(
            description.board.span(),
            Some("board".into()),
            format!(
                "unknown board '{}' (boards: {})",
                description.board.get_ref(),
                names.join(", ")
            ),
        );
        return Err(report.problems);
    };
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
    let mut vms = Vec::new();
    let mut total_ram = 0u64;
    let mut focused = 0;
    for (index, vm) in description.vm.iter().enumerate() {
        let key = |name: &str| Some(format!("vm[{index}].{name}"));
        let name = vm.name.get_ref();
        let valid_name = !name.is_empty()
            && name.len() < 32
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
        let ram = match parse_size(vm.ram.get_ref()) {
            Some(ram) if ram > 0 && ram % RAM_GRANULE == 0 => ram,
            Some(ram) => {
                report.add(
                    vm.ram.span(),
                    key("ram"),
                    format!(
                        "{} is not a multiple of {}",
                        format_size(ram),
                        format_size(RAM_GRANULE)
                    ),
                );
                ram
            }
            None => {
                report.add(
                    vm.ram.span(),
                    key("ram"),
                    format!(
                        "'{}' is not a size (write it as \"256 MiB\")",
                        vm.ram.get_ref()
                    ),
                );
                0
            }
        };
        total_ram += ram;
        let vcpus = vm.vcpus.as_ref().map_or(1, |vcpus| *vcpus.get_ref());
        if let Some(spanned) = &vm.vcpus {
            if vcpus == 0 || vcpus > board.vcpus {
                report.add(
                    spanned.span(),
                    key("vcpus"),
                    format!(
                        "{vcpus} vCPUs; board '{}' gives a VM 1 to {}",
                        board.name, board.vcpus
                    ),
                );
            }
        }
        let kernel = vm.kernel.get_ref();
        let kernel_path = folder.join(kernel.file.get_ref());
        match std::fs::metadata(&kernel_path) {
            Ok(meta) if meta.len() > ram && ram > 0 => report.add(
                kernel.file.span(),
                key("kernel.file"),
                format!(
                    "{} is {} bytes, larger than the VM's {} of RAM ({} bytes)",
                    kernel_path.display(),
                    meta.len(),
                    format_size(ram),
                    ram
                ),
            ),
            Ok(_) => {}
            Err(error) => report.add(
                kernel.file.span(),
                key("kernel.file"),
                format!("cannot read {}: {error}", kernel_path.display()),
            ),
        }
        match (kernel.format, &kernel.load_offset) {
            (ImageFormat::Raw, None) => report.add(
                vm.kernel.span(),
                key("kernel"),
                "a raw kernel needs its load-offset".into(),
            ),
            (ImageFormat::Zimage | ImageFormat::Elf, Some(offset)) => report.add(
                offset.span(),
                key("kernel.load-offset"),
                "only a raw kernel takes a load-offset (a zImage and an ELF say where they go)"
                    .into(),
            ),
            _ => {}
        }
        for (what, file) in [("initrd", &vm.initrd), ("device-tree", &vm.device_tree)] {
            if let Some(file) = file {
                let path = folder.join(file.get_ref());
                if let Err(error) = std::fs::metadata(&path) {
                    report.add(
                        file.span(),
                        key(what),
                        format!("cannot read {}: {error}", path.display()),
                    );
                }
            }
        }
        for (n, device) in vm.devices.iter().enumerate() {
            if !board.devices.contains(&device.get_ref().as_str()) {
                report.add(
                    device.span(),
                    key("devices"),
                    format!(
                        "board '{}' has no device '{}' (it offers {})",
                        board.name,
                        device.get_ref(),
                        board.devices.join(", ")
                    ),
                );
            } else if vm.devices[..n]
                .iter()
                .any(|other| other.get_ref() == device.get_ref())
            {
                report.add(
                    device.span(),
                    key("devices"),
                    format!("device '{}' is claimed twice", device.get_ref()),
                );
            }
        }
        if let Some(policy) = &vm.fault_policy {
            if let FaultPolicy::Named(name) = policy.get_ref() {
                if name.get_ref() != "stop" {
                    report.add(
                        name.span(),
                        key("fault-policy"),
                        format!(
                            "unknown fault policy '{}' (\"stop\" or {{ restart = N }})",
                            name.get_ref()
                        ),
                    );
                }
            }
        }
        if let Some(focus) = &vm.focus {
            if *focus.get_ref() {
                focused += 1;
                if focused > 1 {
                    report.add(
                        focus.span(),
                        key("focus"),
                        "a second VM with the console focus".into(),
                    );
                }
            }
        }
        vms.push(CheckedVm {
            name: name.clone(),
            ram,
            vcpus,
            kernel: kernel_path,
            format: kernel.format,
        });
    }
    if total_ram > board.pool {
        let span = description.vm.last().map_or(0..0, |vm| vm.ram.span());
        report.add(
            span,
            None,
            format!(
                "the VMs' RAM adds up to {} ({} bytes), more than board '{}''s guest RAM pool of {} ({} bytes)",
                format_size(total_ram),
                total_ram,
                board.name,
                format_size(board.pool),
                board.pool
            ),
        );
    }
    if report.problems.is_empty() {
        Ok(CheckedSystem {
            board: board.clone(),
            vms,
        })
    } else {
        Err(report.problems)
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
        std::fs::write(dir.join("kernel"), vec![0u8; 4096]).unwrap();
        std::fs::write(dir.join("initrd"), b"initrd").unwrap();
        std::fs::write(dir.join("big"), vec![0u8; 3 << 20]).unwrap();
        dir
    }

    fn check_text(text: &str) -> Result<CheckedSystem, Vec<String>> {
        let file = folder().join("system.toml");
        check(&file, text).map_err(|problems| {
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
            problems[0].starts_with("system.toml:7:10: vm[0].initrd: cannot read "),
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
            ["system.toml:14:7: the VMs' RAM adds up to 1026 MiB (1075838976 bytes), more than board 'qemu-virt''s guest RAM pool of 752 MiB (788529152 bytes)"]
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
        assert_eq!(
            problems,
            [
                "system.toml:9:21: vm[0].devices: board 'qemu-virt' has no device 'virtio-net' (it offers gic-distributor, gic-cpu-interface, pl011)",
                "system.toml:9:35: vm[0].devices: device 'pl011' is claimed twice"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = GOOD
            .replace("name = \"ticker\"", "name = \"linux\"")
            .replace(
                "console = \"shared\"",
                "console = \"shared\"\nfocus = true\nvcpus = 2",
            );
        let problems = check_text(&text).unwrap_err();
        assert_eq!(
            problems,
            [
                "system.toml:13:8: vm[1].name: a second VM called 'linux'",
                "system.toml:19:9: vm[1].vcpus: 2 vCPUs; board 'qemu-virt' gives a VM 1 to 1",
                "system.toml:18:9: vm[1].focus: a second VM with the console focus"
            ]
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
}
