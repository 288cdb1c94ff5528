// SPDX-License-Identifier: MIT OR Apache-2.0
//! The system image format: what the writer packs, the reader gives back;
//! every class of damage is refused with its own message.

use super::*;
use alloc::string::ToString;
use alloc::vec;

const KERNEL: &[u8] = &[0x11; 5000];
const INITRD: &[u8] = &[0x22; 300];

fn linux() -> VmEntry<'static> {
    VmEntry {
        name: "linux",
        bootargs: "console=ttyAMA0",
        ram_size: 256 << 20,
        ram_offset: 0,
        vcpus: 1,
        cpus: cpu_map(&[0]),
        entry_offset: 0x1_0000,
        images: vec![
            ImageEntry {
                role: Role::Kernel,
                bytes: KERNEL,
                load_offset: 0x1_0000,
                slice: None,
            },
            ImageEntry {
                role: Role::Initrd,
                bytes: INITRD,
                load_offset: 0x0800_0000,
                slice: None,
            },
        ],
        devices: 0b111,
        policy: FaultPolicy::Stop,
        console: ConsoleMode::Held,
        device_tree: DeviceTreeSource::Generated,
        format: KernelFormat::Zimage,
    }
}

fn second() -> VmEntry<'static> {
    VmEntry {
        name: "linux-2",
        ram_offset: 256 << 20,
        vcpus: 2,
        cpus: cpu_map(&[3, 1]),
        policy: FaultPolicy::Restart(3),
        console: ConsoleMode::Shared,
        ..linux()
    }
}

fn packed() -> Vec<u8> {
    Writer::write(&[linux(), second()], 1)
}

/// Sets word `offset` of `image` and makes its checksum right again, so
/// that the check under test is the one that fires.
fn with_word(mut image: Vec<u8>, offset: usize, value: u32) -> Vec<u8> {
    image[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    let sum = checksum(&image, header::CHECKSUM);
    image[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&sum.to_le_bytes());
    image
}

#[test]
fn what_is_written_is_read_back() {
    let image = packed();
    let table = parse(&image).unwrap();
    assert_eq!(table.focus, 1);
    assert_eq!(table.total as usize, image.len());
    assert_eq!(table.vms.len(), 2);
    let vm = &table.vms[1];
    assert_eq!(
        (
            vm.name,
            vm.bootargs,
            vm.ram_size,
            vm.ram_offset,
            vm.entry_offset
        ),
        ("linux-2", "console=ttyAMA0", 256 << 20, 256 << 20, 0x1_0000)
    );
    assert_eq!((vm.vcpus, vm.cpus), (2, [3, 1, NO_CPU, NO_CPU]));
    assert_eq!(
        (table.vms[0].vcpus, table.vms[0].cpus),
        (1, [0, 0xff, 0xff, 0xff])
    );
    assert_eq!(vm.policy, FaultPolicy::Restart(3));
    assert_eq!(vm.console, ConsoleMode::Shared);
    assert!(vm.claims("pl011") && vm.claims("gic-cpu-interface") && !vm.claims("gic"));
    assert_eq!(
        vm.image(Role::Initrd).map(|initrd| initrd.size()),
        Some(300)
    );
    let kernel = vm.images[0];
    let start = table.data_offset(&kernel) as usize;
    assert_eq!(&image[start..start + kernel.size() as usize], KERNEL);
    assert_eq!(kernel.bytes, KERNEL);
    assert_eq!(start % DATA_ALIGNMENT, 0);
    // A file both VMs boot is stored once.
    assert_eq!(table.vms[0].images, table.vms[1].images);
    for (first, second) in table.vms[0].images.iter().zip(&table.vms[1].images) {
        assert_eq!(table.data_offset(first), table.data_offset(second));
    }
    // The reader gives back what the writer was given.
    assert_eq!(table.vms, vec![linux(), second()]);
    assert!(image.len() < 2 * DATA_ALIGNMENT + KERNEL.len() + INITRD.len());
}

#[test]
fn extra_bytes_after_the_image_are_ignored() {
    let mut image = packed();
    let size = image.len();
    image.extend_from_slice(&[0xff; 100]);
    assert_eq!(parse(&image).unwrap().total as usize, size);
}

#[test]
fn damage_is_refused_by_name() {
    let image = packed();
    assert_eq!(
        parse(&image[..10]),
        Err(TableError::Truncated {
            needed: 64,
            available: 10
        })
    );
    assert!(matches!(
        parse(&image[..image.len() - 1]),
        Err(TableError::Truncated { .. })
    ));
    assert_eq!(parse(&vec![0u8; 4096]), Err(TableError::BadMagic));
    let mut flipped = image.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let error = parse(&flipped).unwrap_err();
    assert!(matches!(error, TableError::Checksum { .. }));
    assert!(error.to_string().contains("corrupted"), "{error}");
    assert_eq!(
        parse(&with_word(image.clone(), header::VERSION, 3)),
        Err(TableError::Version { found: 3 })
    );
    // Version 1 (16-word VM entries, no CPU map) is refused by its number.
    let error = parse(&with_word(image.clone(), header::VERSION, 1)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "format version 1; this hypervisor reads version 2 (repack it with this tree's tools)"
    );
    assert!(matches!(
        parse(&with_word(image.clone(), header::VM_ENTRY_BYTES, 64)),
        Err(TableError::Layout { found: 64, .. })
    ));
    assert_eq!(
        parse(&with_word(image.clone(), header::VM_COUNT, 0)),
        Err(TableError::VmCount { count: 0 })
    );
    assert_eq!(
        parse(&with_word(image.clone(), header::VM_COUNT, 9)),
        Err(TableError::VmCount { count: 9 })
    );
    assert!(matches!(
        parse(&with_word(image.clone(), header::FOCUS, 2)),
        Err(TableError::Vm { vm: 3, .. })
    ));
    assert!(matches!(
        parse(&with_word(image.clone(), header::STRINGS_BYTES, 1 << 20)),
        Err(TableError::Range {
            what: "the strings",
            ..
        })
    ));
}

#[test]
fn bad_entries_are_refused_by_name() {
    let image = packed();
    let vm2 = HEADER_BYTES + VM_ENTRY_BYTES;
    let first_image = HEADER_BYTES + 2 * VM_ENTRY_BYTES;
    let vm_error = |offset: usize, value: u32| match parse(&with_word(image.clone(), offset, value))
    {
        Err(TableError::Vm { vm, what, .. }) => (vm, what),
        other => panic!("word {offset:#x} = {value:#x}: {other:?}"),
    };
    assert_eq!(
        vm_error(vm2 + 4, 40).1,
        "name outside the strings, too long or not UTF-8"
    );
    assert_eq!(
        vm_error(vm2 + 28, 0x1000),
        (2, "entry is not inside a kernel or firmware image")
    );
    // The bit past the guest platform's last device.
    assert_eq!(
        vm_error(vm2 + 40, 1 << DEVICES.len()),
        (2, "unknown devices")
    );
    assert_eq!(vm_error(vm2 + 44, 7), (2, "unknown fault policy"));
    assert_eq!(vm_error(vm2 + 52, 3), (2, "unknown console mode"));
    assert_eq!(
        vm_error(vm2 + 56, 2).1,
        "device-tree source does not match its images"
    );
    assert_eq!(vm_error(vm2 + 60, 0).1, "unknown kernel format");
    assert_eq!(vm_error(vm2 + 24, 0).1, "no vCPU");
    assert_eq!(
        vm_error(vm2 + 32, 0).1,
        "images are not the next ones of the table"
    );
    let image_error =
        |offset: usize, value: u32| match parse(&with_word(image.clone(), offset, value)) {
            Err(TableError::Image {
                vm, image, what, ..
            }) => (vm, image, what),
            other => panic!("word {offset:#x} = {value:#x}: {other:?}"),
        };
    assert_eq!(image_error(first_image, 9), (1, 1, "unknown role"));
    assert_eq!(
        image_error(first_image + 4, 8),
        (1, 1, "bytes outside the image data")
    );
    assert_eq!(
        image_error(first_image + 8, u32::MAX).2,
        "bytes outside the image data"
    );
    assert_eq!(
        image_error(first_image, 2),
        (1, 2, "a second kernel, initrd, device tree or firmware")
    );
    assert_eq!(image_error(first_image + 16, 1).2, "reserved word is not 0");
}

/// A VM booting a firmware of `bytes` (entered at `entry`).
fn firmware(bytes: &'static [u8], entry: u32) -> VmEntry<'static> {
    VmEntry {
        name: "u-boot",
        bootargs: "",
        entry_offset: entry,
        images: vec![ImageEntry {
            role: Role::Firmware,
            bytes,
            load_offset: 0,
            slice: None,
        }],
        format: KernelFormat::Raw,
        ..linux()
    }
}

#[test]
fn a_firmware_is_read_back_and_checked() {
    let image = Writer::write(&[firmware(KERNEL, 0x40)], 0);
    let table = parse(&image).unwrap();
    let vm = &table.vms[0];
    assert_eq!(vm.image(Role::Firmware).map(ImageEntry::size), Some(5000));
    assert_eq!((vm.entry_offset, vm.image(Role::Kernel)), (0x40, None));
    let refused = |vm: VmEntry<'static>| parse(&Writer::write(&[vm], 0)).unwrap_err();
    // Entered past its end.
    assert!(matches!(
        refused(firmware(KERNEL, 5000)),
        TableError::Vm {
            what: "entry is not inside a kernel or firmware image",
            ..
        }
    ));
    // With a kernel or an initrd.
    let mut with_initrd = firmware(KERNEL, 0);
    with_initrd.images.push(ImageEntry {
        role: Role::Initrd,
        bytes: INITRD,
        load_offset: 0x0800_0000,
        slice: None,
    });
    assert_eq!(
        refused(with_initrd),
        TableError::Vm {
            vm: 1,
            what: "a firmware with a kernel or initrd",
            value: 2
        }
    );
    // Not at the start of its bank.
    let mut moved = firmware(KERNEL, 0x1000);
    moved.images[0].load_offset = 0x1000;
    assert!(matches!(
        refused(moved),
        TableError::Image {
            what: "a firmware not at the start of the 64 MiB flash bank",
            ..
        }
    ));
}

#[test]
fn cpu_maps_must_give_each_vcpu_its_own_cpu() {
    let image = packed();
    let vm2 = HEADER_BYTES + VM_ENTRY_BYTES;
    let map = |bytes: [u8; 4]| with_word(image.clone(), vm2 + 64, u32::from_le_bytes(bytes));
    let refused = |image: Vec<u8>| match parse(&image) {
        Err(error @ TableError::Vm { vm: 2, .. }) => error.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refused(with_word(image.clone(), vm2 + 24, 5)),
        "VM 2: more vCPUs than a VM may have (0x5)"
    );
    assert_eq!(
        refused(map([3, 32, NO_CPU, NO_CPU])),
        "VM 2: a vCPU's CPU is not 0 to 31 (0x20)"
    );
    assert_eq!(
        refused(map([NO_CPU, 1, NO_CPU, NO_CPU])),
        "VM 2: a vCPU's CPU is not 0 to 31 (0xff)"
    );
    assert_eq!(
        refused(map([1, 1, NO_CPU, NO_CPU])),
        "VM 2: two vCPUs on one CPU (0x1)"
    );
    assert_eq!(
        refused(map([3, 1, 2, NO_CPU])),
        "VM 2: a CPU-map byte past its vCPUs is not 0xff (0x2)"
    );
    assert_eq!(
        refused(map([3, 1, NO_CPU, 0])),
        "VM 2: a CPU-map byte past its vCPUs is not 0xff (0x0)"
    );
    // Any CPU below 32, in any order, is the table's to give.
    let any = map([31, 0, NO_CPU, NO_CPU]);
    assert_eq!(parse(&any).unwrap().vms[1].cpus, [31, 0, NO_CPU, NO_CPU]);
    // Four vCPUs use every byte.
    let mut four = linux();
    four.vcpus = 4;
    four.cpus = cpu_map(&[0, 1, 2, 3]);
    let four = Writer::write(&[four], 0);
    assert_eq!(parse(&four).unwrap().vms[0].cpus, [0, 1, 2, 3]);
}

#[test]
fn a_cpu_map_is_the_list_then_no_cpu() {
    assert_eq!(cpu_map(&[]), [NO_CPU; MAX_VCPUS]);
    assert_eq!(cpu_map(&[2]), [2, NO_CPU, NO_CPU, NO_CPU]);
    assert_eq!(cpu_map(&[1, 2, 3, 0, 5]), [1, 2, 3, 0]);
}

#[test]
fn names_must_be_names() {
    let mut vm = linux();
    vm.name = "two words";
    assert!(matches!(
        parse(&Writer::write(&[vm], 0)),
        Err(TableError::Vm {
            vm: 1,
            what: "name is not 1-31 letters, digits and '-'",
            ..
        })
    ));
}

/// Every byte of a good image, changed, is refused without a panic (the
/// checksum catches each), and any prefix is refused too.
#[test]
fn no_single_byte_change_is_accepted() {
    let image = Writer::write(&[linux()], 0);
    for at in (0..image.len()).step_by(7) {
        let mut damaged = image.clone();
        damaged[at] = damaged[at].wrapping_add(0x5a);
        assert!(parse(&damaged).is_err(), "byte {at}");
    }
    for length in (0..image.len()).step_by(97) {
        assert!(parse(&image[..length]).is_err(), "prefix {length}");
    }
}

#[test]
fn disks_are_images_in_slot_order_checked_for_sectors_and_count() {
    const DISK: &[u8] = &[0x33; 1024];
    const OTHER: &[u8] = &[0x44; 512];
    let disk = |role, bytes, load_offset| ImageEntry {
        role,
        bytes,
        load_offset,
        slice: None,
    };
    let mut vm = linux();
    vm.images.push(disk(Role::WritableDisk, DISK, 512 << 20));
    vm.images.push(disk(Role::Disk, OTHER, 0));
    let image = Writer::write(&[vm.clone()], 0);
    let table = parse(&image).unwrap();
    assert_eq!(table.vms[0], vm);
    let disks: Vec<(Role, usize, u32)> = table.vms[0]
        .disks()
        .map(|d| (d.role, d.bytes.len(), d.load_offset))
        .collect();
    assert_eq!(
        disks,
        [(Role::WritableDisk, 1024, 512 << 20), (Role::Disk, 512, 0)]
    );

    let refused = |vm: &VmEntry| parse(&Writer::write(core::slice::from_ref(vm), 0)).unwrap_err();
    let mut three = vm.clone();
    three.images.push(disk(Role::Disk, OTHER, 0));
    assert!(matches!(
        refused(&three),
        TableError::Image {
            image: 5,
            what: "more disks than virtio-mmio slots",
            ..
        }
    ));
    let mut partial = linux();
    partial.images.push(disk(Role::Disk, &DISK[..700], 0));
    assert!(matches!(
        refused(&partial),
        TableError::Image {
            what: "a disk that is not whole 512-byte sectors",
            value: 700,
            ..
        }
    ));
    let mut placed = linux();
    placed.images.push(disk(Role::Disk, DISK, 4096));
    assert!(matches!(
        refused(&placed),
        TableError::Image {
            what: "a read-only disk with a load offset",
            ..
        }
    ));
}

#[test]
fn board_disk_slices_have_no_bytes_and_round_trip() {
    let slice = |role, first, sectors| ImageEntry {
        role,
        bytes: &[],
        load_offset: 0,
        slice: Some(BoardSlice { first, sectors }),
    };
    let mut vm = linux();
    vm.images.push(slice(Role::BoardDisk, 131_072, 262_144));
    vm.images.push(slice(Role::ReadOnlyBoardDisk, 0, 1));
    let image = Writer::write(&[vm.clone()], 0);
    assert_eq!(
        Writer::size(&[vm.clone()]),
        Writer::size(&[linux()]),
        "no bytes stored"
    );
    let table = parse(&image).unwrap();
    assert_eq!(table.vms[0], vm);
    assert_eq!(table.vms[0].disks().count(), 2);
    assert!(table.vms[0].disks().all(|disk| disk.role.is_board_disk()));
    // A slice of no sectors, or one with bytes, is refused.
    let mut empty = linux();
    empty.images.push(slice(Role::BoardDisk, 8, 0));
    assert!(matches!(
        parse(&Writer::write(&[empty], 0)),
        Err(TableError::Image {
            what: "a board-disk slice of no sectors",
            ..
        })
    ));
    let mut bytes = linux();
    bytes.images.push(ImageEntry {
        bytes: &[0; 512],
        ..slice(Role::BoardDisk, 8, 1)
    });
    assert!(matches!(
        parse(&Writer::write(&[bytes], 0)),
        Err(TableError::Image {
            what: "a board-disk slice with bytes",
            ..
        })
    ));
    assert!(BoardSlice {
        first: 0,
        sectors: 8
    }
    .overlaps(&BoardSlice {
        first: 7,
        sectors: 1
    }));
    assert!(!BoardSlice {
        first: 0,
        sectors: 8
    }
    .overlaps(&BoardSlice {
        first: 8,
        sectors: 1
    }));
}
