// SPDX-License-Identifier: MIT OR Apache-2.0
//! System descriptions and the packed system image, end to end.
//!
//! - Every class of bad description (`tests/systems/bad/`) is refused by
//!   the host tool before QEMU starts, with its file, line and key (and,
//!   for a size, both sizes).
//! - The hypervisor trusts nothing it is handed: system images the tool
//!   would never write (crafted here with `hyp::system_image::Writer`, or
//!   damaged after packing) are refused at boot, naming the problem, before
//!   any VM exists.
//! - Kernels in every format boot: a raw binary at its load offset, an ELF
//!   at its entry point; and Linux with a 40 MiB initrd reads it back whole.

use capvisor_runner::{system_image, Loader};
use capvisor_tests::{
    assert_console_has, assert_console_lacks, command_with, guest_elfs, guest_images, images_dir,
    line_with, linux_images, pack, per_board, run, start_command, type_at_prompt, workspace_root,
    Board, Outcome,
};
use hyp::system_image::{
    ConsoleMode, DeviceTreeSource, FaultPolicy, ImageEntry, KernelFormat, Role, VmEntry, Writer,
};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_BOOT_REFUSED: i32 = 3;

per_board!(
    a_corrupted_system_image_is_refused_at_boot,
    no_system_image_is_refused_at_boot,
    a_newer_format_is_refused_at_boot,
    overlapping_ram_is_refused_at_boot,
    ram_beyond_the_pool_is_refused_at_boot,
    an_image_larger_than_its_ram_is_refused_at_boot,
    a_malformed_zimage_is_refused_at_boot,
    an_unknown_device_is_refused_at_boot,
    a_raw_kernel_boots_at_its_load_offset,
    an_elf_kernel_boots_at_its_entry_point,
    linux_reads_a_40_mib_initrd_whole,
);

/// The line each bad description carries, at its end (so that it moves
/// no line number the error names): the start of a line the tool must
/// report, `FILE:LINE:COLUMN: KEY: message` with the file relative to
/// `tests/systems/`.
const EXPECT: &str = "# expect: ";

/// Every file in `tests/systems/bad/` is refused with the error its
/// `# expect: ` line names; a bad file without one fails the test.
#[test]
fn each_class_of_bad_description_is_refused_with_its_file_and_line() {
    let board = capvisor_tests::board_under_test("qemu-virt");
    let systems = workspace_root().join("tests").join("systems");
    let output = images_dir(&board).join("systems").join("bad.img");
    let mut files: Vec<PathBuf> = std::fs::read_dir(systems.join("bad"))
        .expect("tests/systems/bad")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no bad descriptions in tests/systems/bad"
    );
    for file in &files {
        let name = file.display();
        assert_eq!(
            file.extension().and_then(|extension| extension.to_str()),
            Some("toml"),
            "{name}: only system descriptions belong in tests/systems/bad"
        );
        let text = std::fs::read_to_string(file).expect("a bad description");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix(EXPECT))
            .collect();
        assert!(
            !expected.is_empty(),
            "{name}: no `{EXPECT}` line: say which error the tool must report"
        );
        let error = system_image(&board, file, &[guest_images(), linux_images()], &output)
            .expect_err(&name.to_string())
            .to_string();
        for expected in expected {
            let expected = format!("{}/{expected}", systems.display());
            assert!(
                error
                    .lines()
                    .any(|line| line.trim_start().starts_with(&expected)),
                "{name}: expected a line starting with\n  {expected}\ngot:\n{error}"
            );
        }
    }
    // The image too large for its RAM names both sizes.
    let file = systems.join("bad").join("image-larger-than-ram.toml");
    let error = system_image(&board, &file, &[linux_images()], &output)
        .expect_err("too large")
        .to_string();
    assert!(
        error.contains("bytes, larger than the VM's 2 MiB of RAM (2097152 bytes)"),
        "{error}"
    );
}

/// A VM of a crafted table: `kernel` (a zImage test guest, or `format`)
/// at the start of 2 MiB of RAM at `ram_offset` in the pool.
fn vm<'a>(name: &'a str, ram_offset: u32, kernel: &'a [u8], format: KernelFormat) -> VmEntry<'a> {
    VmEntry {
        name,
        bootargs: "",
        ram_size: 2 << 20,
        ram_offset,
        vcpus: 1,
        cpus: hyp::system_image::cpu_map(&[0]),
        entry_offset: 0,
        images: vec![ImageEntry {
            role: Role::Kernel,
            bytes: kernel,
            load_offset: 0,
            slice: None,
        }],
        // Every device of the guest platform but the flash window, which
        // only a VM with a firmware has.
        devices: hyp::system_image::DeviceSet::ALL.0
            & !(1 << hyp::guest_platform::index_of("flash").unwrap_or(0)),
        policy: FaultPolicy::Stop,
        console: ConsoleMode::Shared,
        device_tree: DeviceTreeSource::None,
        format,
    }
}

fn hello() -> Vec<u8> {
    std::fs::read(guest_images().join("hello")).expect("the hello guest")
}

/// Boots `board` with `image` (a system image, good or not) at its
/// staging area.
fn boot_image(board: &Board, test: &str, image: &[u8]) -> Outcome {
    let file = images_dir(board)
        .join("systems")
        .join(format!("crafted-{test}.img"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, image).unwrap();
    let loader = Loader {
        file,
        address: board.staging,
    };
    run(&command_with(board, &[], Some(loader)))
}

/// Expects the boot refused with `reason` before any VM was created.
#[track_caller]
fn assert_refused(outcome: &Outcome, reason: &str) {
    let console = &outcome.transcript;
    let refusal =
        line_with(console, "boot refused:").unwrap_or_else(|| panic!("no refusal:\n{console}"));
    assert!(
        refusal.ends_with(&format!("boot refused: {reason}")),
        "expected ...{reason}\n{refusal}\n{console}"
    );
    assert_console_lacks(console, "VM table checked");
    assert_console_lacks(console, "RAM at IPA");
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{console}");
}

fn a_corrupted_system_image_is_refused_at_boot(board: &Board) {
    let kernel = hello();
    let mut image = Writer::write(&[vm("one", 0, &kernel, KernelFormat::Zimage)], 0);
    // One bit of the guest's code flipped, as a bad copy would.
    let last = image.len() - 1;
    image[last] ^= 0x10;
    let outcome = boot_image(board, "corrupted", &image);
    let console = &outcome.transcript;
    let refusal = line_with(console, "boot refused:").unwrap_or_else(|| panic!("{console}"));
    assert!(
        refusal.contains("boot refused: system image: checksum mismatch: the image says 0x")
            && refusal.ends_with("(corrupted)"),
        "{refusal}"
    );
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{console}");
}

fn no_system_image_is_refused_at_boot(board: &Board) {
    let outcome = run(&command_with(board, &[], None));
    assert_refused(
        &outcome,
        "system image: no system image at the start of the staging area (wrong magic; was one loaded?)",
    );
}

fn a_newer_format_is_refused_at_boot(board: &Board) {
    let kernel = hello();
    let mut image = Writer::write(&[vm("one", 0, &kernel, KernelFormat::Zimage)], 0);
    image[8] = 3; // the version word
    let sum = hyp::system_image::checksum(&image, 20);
    image[20..24].copy_from_slice(&sum.to_le_bytes());
    assert_refused(
        &boot_image(board, "version", &image),
        "system image: format version 3; this hypervisor reads version 2 (repack it with this tree's tools)",
    );
}

fn overlapping_ram_is_refused_at_boot(board: &Board) {
    let kernel = hello();
    let image = Writer::write(
        &[
            vm("first", 2 << 20, &kernel, KernelFormat::Zimage),
            vm("second", 2 << 20, &kernel, KernelFormat::Zimage),
        ],
        0,
    );
    assert_refused(
        &boot_image(board, "overlap", &image),
        "bad VM table: VM 'second': RAM overlaps the RAM of VM 'first'",
    );
}

fn ram_beyond_the_pool_is_refused_at_boot(board: &Board) {
    let kernel = hello();
    // The pool is 752 MiB: this VM's 2 MiB start 751 MiB into it.
    let image = Writer::write(&[vm("edge", 751 << 20, &kernel, KernelFormat::Zimage)], 0);
    assert_refused(
        &boot_image(board, "beyond", &image),
        "bad VM table: VM 'edge': RAM base and size must be multiples of 0x200000",
    );
    let image = Writer::write(
        &[vm("outside", 752 << 20, &kernel, KernelFormat::Zimage)],
        0,
    );
    assert_refused(
        &boot_image(board, "outside", &image),
        "bad VM table: VM 'outside': RAM is not inside the host's guest pool",
    );
}

fn an_image_larger_than_its_ram_is_refused_at_boot(board: &Board) {
    let kernel = vec![0u8; 3 << 20];
    let image = Writer::write(&[vm("huge", 0, &kernel, KernelFormat::Raw)], 0);
    assert_refused(
        &boot_image(board, "huge", &image),
        "bad VM table: VM 'huge': image 'kernel' is 3145728 bytes but only 2097152 bytes of RAM remain at its load offset",
    );
}

fn a_malformed_zimage_is_refused_at_boot(board: &Board) {
    let mut kernel = hello();
    kernel[0x30..0x34].copy_from_slice(&0x0102_0304u32.to_le_bytes()); // big-endian
    let image = Writer::write(&[vm("odd", 0, &kernel, KernelFormat::Zimage)], 0);
    assert_refused(
        &boot_image(board, "malformed", &image),
        "bad VM table: VM 'odd': image 'kernel' is malformed (its zImage header makes no sense, or claims more bytes than were packed)",
    );
}

fn an_unknown_device_is_refused_at_boot(board: &Board) {
    let kernel = hello();
    let mut one = vm("wishful", 0, &kernel, KernelFormat::Zimage);
    // The PL011's bit, and the one past the guest platform's last device.
    let devices = 0b100 | 1 << hyp::system_image::DEVICES.len();
    one.devices = devices;
    assert_refused(
        &boot_image(board, "device", &Writer::write(&[one], 0)),
        &format!("system image: VM 1: unknown devices ({devices:#x})"),
    );
}

/// A description of one VM booting `kernel` (a line of TOML), written to
/// the board's scratch folder.
fn one_vm(board: &Board, test: &str, kernel: &str) -> PathBuf {
    let file = images_dir(board)
        .join("systems")
        .join(format!("{test}.toml"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        format!(
            "[[vm]]\nname = \"{test}\"\nram = \"2 MiB\"\nkernel = {kernel}\nconsole = \"shared\"\n"
        ),
    )
    .unwrap();
    file
}

fn a_raw_kernel_boots_at_its_load_offset(board: &Board) {
    // The hello guest's flat binary, taken as raw bytes: it runs where it
    // is linked, the start of RAM.
    let file = one_vm(
        board,
        "raw",
        "{ file = \"hello\", format = \"raw\", load-offset = 0 }",
    );
    let loader = pack(board, &file, &[guest_images()]);
    let outcome = run(&command_with(board, &[], Some(loader)));
    let console = &outcome.transcript;
    assert_console_has(console, "raw kernel of ");
    assert_console_has(console, "hello from VM 1 ('raw'), round 3 of 3");
    assert_console_has(console, "'raw': PASSED (status 0): powered off");
    assert_eq!(outcome.status, 0, "{console}");
}

fn an_elf_kernel_boots_at_its_entry_point(board: &Board) {
    let file = one_vm(board, "elf", "{ file = \"hello\", format = \"elf\" }");
    let loader = pack(board, &file, &[guest_elfs()]);
    let outcome = run(&command_with(board, &[], Some(loader)));
    let console = &outcome.transcript;
    assert_console_has(console, "ELF kernel of ");
    assert_console_has(console, "hello from VM 1 ('elf'), round 3 of 3");
    assert_console_has(console, "'elf': PASSED (status 0): powered off");
    assert_eq!(outcome.status, 0, "{console}");
}

/// A newc cpio archive (what the kernel unpacks into its initramfs) of
/// one file, `name` with `data`, and the trailer.
fn cpio(name: &str, data: &[u8]) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for field in fields {
            out.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut out = Vec::new();
    entry(&mut out, 1, 0o100644, name, data);
    entry(&mut out, 0, 0, "TRAILER!!!", &[]);
    out
}

/// Linux with an initrd of 40 MiB: Debian's busybox initramfs with a
/// second archive appended holding 40 MiB of pseudo-random bytes (which no
/// compression shrinks); the guest's md5sum of the file must be the
/// host's.
fn linux_reads_a_40_mib_initrd_whole(board: &Board) {
    let linux = linux_images();
    let mut data = vec![0u8; 40 << 20];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let dir = images_dir(board).join("big-initrd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let md5 = std::process::Command::new("md5sum")
        .arg(dir.join("big.bin"))
        .output()
        .expect("md5sum on the host");
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .expect("a checksum")
        .to_string();
    let mut initrd = std::fs::read(linux.join("initrd.cpio.gz")).unwrap();
    while !initrd.len().is_multiple_of(4) {
        initrd.push(0);
    }
    initrd.extend_from_slice(&cpio("big.bin", &data));
    assert!(initrd.len() > 40 << 20, "{} bytes", initrd.len());
    std::fs::write(dir.join("initrd-40m"), &initrd).unwrap();
    let description = dir.join("big-initrd.toml");
    std::fs::write(
        &description,
        "[[vm]]\nname = \"linux\"\nram = \"256 MiB\"\nkernel = { file = \"linux-zImage\", format = \"zimage\" }\ninitrd = \"initrd-40m\"\nbootargs = \"console=ttyAMA0\"\n",
    )
    .unwrap();
    let loader = pack(board, &description, &[linux]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let boot = Duration::from_secs(300);
    if let Err(error) = session.expect("capvisor-linux: initramfs up", boot) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    type_at_prompt(&mut session, "md5sum < /big.bin | tr a-f A-F\n", boot);
    let upper = md5.to_uppercase();
    if let Err(error) = session.expect(&format!("{upper}  -"), boot) {
        panic!("the initrd's file did not read back as {md5}: {error}");
    }
    let transcript = session.transcript();
    assert!(transcript.contains(", initrd of "), "{transcript}");
}
