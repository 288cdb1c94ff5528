// SPDX-License-Identifier: MIT OR Apache-2.0
//! Guest image headers: what the hypervisor reads before copying an image
//! into a VM's RAM.
//!
//! A zImage kernel (a system description's `format = "zimage"`) has a
//! header that says how large it is: the magic 0x016f2818 at offset 0x24,
//! the address it must run at (0 for position-independent code) at 0x28,
//! the end of the image at 0x2c (its size is end - start), and at 0x30 an
//! endianness marker (0x04030201 for little-endian, the only kind Capvisor
//! runs). The hypervisor checks it again at boot against the size the
//! system image gives and the address the image is loaded at. Capvisor's
//! own test guests carry the same header followed by `CVGU` at 0x34 and
//! their name (16 bytes, NUL padded) at 0x38, which the boot log shows.
//!
//! Other images (a raw kernel, an ELF's joined segments, an initrd, a
//! device tree) are copied as they are; the system image gives their sizes.

use crate::config::{ImageConfig, ImageKind, ImageProblem, VmConfig};

/// Bytes of header [`parse_zimage`] reads.
pub const HEADER_BYTES: usize = 0x48;
/// The zImage magic number, at offset 0x24.
pub const ZIMAGE_MAGIC: u32 = 0x016f_2818;
/// The little-endian marker at offset 0x30.
pub const LITTLE_ENDIAN: u32 = 0x0403_0201;
/// A big-endian zImage's marker (refused).
pub const BIG_ENDIAN: u32 = 0x0102_0304;
/// The test-guest marker at offset 0x34 (`CVGU` in memory order).
pub const GUEST_MAGIC: u32 = u32::from_le_bytes(*b"CVGU");
/// The largest image Capvisor accepts (the kernel's RAM limit is checked
/// separately; this catches garbage before it is compared with RAM).
pub const MAX_IMAGE: u32 = 0x1000_0000;

/// What a zImage header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZImage {
    /// The address the image must run at, or 0 if it can run anywhere.
    pub run_address: u32,
    /// Its size in bytes.
    pub size: u32,
    /// A test guest's name (NUL padded), if the image is one.
    pub guest_name: Option<[u8; 16]>,
}

impl ZImage {
    /// The test guest's name as text (without padding), if any.
    pub fn guest_name(&self) -> Option<&str> {
        let name = self.guest_name.as_ref()?;
        let length = name.iter().position(|&byte| byte == 0).unwrap_or(16);
        core::str::from_utf8(&name[..length]).ok()
    }
}

fn word(header: &[u8; HEADER_BYTES], offset: usize) -> u32 {
    u32::from_le_bytes([
        header[offset],
        header[offset + 1],
        header[offset + 2],
        header[offset + 3],
    ])
}

/// Reads a zImage header. `Missing` when there is no magic (nothing was
/// loaded there, or it is not a zImage); `Malformed` for a big-endian
/// image, an end before the start, or an absurd size.
pub fn parse_zimage(header: &[u8; HEADER_BYTES]) -> Result<ZImage, ImageProblem> {
    if word(header, 0x24) != ZIMAGE_MAGIC {
        return Err(ImageProblem::Missing);
    }
    let (start, end, marker) = (word(header, 0x28), word(header, 0x2c), word(header, 0x30));
    if marker != LITTLE_ENDIAN {
        return Err(ImageProblem::Malformed);
    }
    let size = end.wrapping_sub(start);
    if end <= start || size > MAX_IMAGE || (size as usize) < HEADER_BYTES {
        return Err(ImageProblem::Malformed);
    }
    let guest_name = (word(header, 0x34) == GUEST_MAGIC).then(|| {
        let mut name = [0u8; 16];
        name.copy_from_slice(&header[0x38..0x48]);
        name
    });
    Ok(ZImage {
        run_address: start,
        size,
        guest_name,
    })
}

/// Checks a parsed image against where it goes: its header must not
/// claim more bytes than were packed (`packed`), and an image that runs at
/// a fixed address must be loaded there (`load_ipa`).
pub fn check_image(image: &ZImage, packed: u32, load_ipa: u32) -> Result<(), ImageProblem> {
    if image.size > packed {
        return Err(ImageProblem::Malformed);
    }
    if image.run_address != 0 && image.run_address != load_ipa {
        return Err(ImageProblem::WrongAddress);
    }
    Ok(())
}

/// The probe `crate::config::validate` calls for each image of a VM, as
/// the board runs it at boot and the host tool before it packs: a
/// zImage's header, read from the image's packed `bytes`, must make
/// sense, claim no more bytes than were packed and run where it is loaded;
/// other images are what the table says they are. Gives the image's size.
pub fn probe(vm: &VmConfig<'_>, image: &ImageConfig, bytes: &[u8]) -> Result<u32, ImageProblem> {
    if image.kind == ImageKind::Zimage {
        let header: &[u8; HEADER_BYTES] = bytes
            .get(..HEADER_BYTES)
            .and_then(|header| header.try_into().ok())
            .ok_or(ImageProblem::Malformed)?;
        let kernel = parse_zimage(header)?;
        check_image(
            &kernel,
            image.size,
            vm.ram_ipa.wrapping_add(image.load_offset),
        )?;
    }
    Ok(image.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(start: u32, end: u32, marker: u32, name: Option<&str>) -> [u8; HEADER_BYTES] {
        let mut header = [0u8; HEADER_BYTES];
        header[0x24..0x28].copy_from_slice(&ZIMAGE_MAGIC.to_le_bytes());
        header[0x28..0x2c].copy_from_slice(&start.to_le_bytes());
        header[0x2c..0x30].copy_from_slice(&end.to_le_bytes());
        header[0x30..0x34].copy_from_slice(&marker.to_le_bytes());
        if let Some(name) = name {
            header[0x34..0x38].copy_from_slice(b"CVGU");
            header[0x38..0x38 + name.len()].copy_from_slice(name.as_bytes());
        }
        header
    }

    #[test]
    fn a_linux_zimage() {
        // The Debian armmp zImage: position independent, about 5 MiB.
        let image = parse_zimage(&header(0, 0x0050_1234, LITTLE_ENDIAN, None)).unwrap();
        assert_eq!(
            image,
            ZImage {
                run_address: 0,
                size: 0x0050_1234,
                guest_name: None
            }
        );
        assert_eq!(check_image(&image, 0x0050_1234, 0x4000_8000), Ok(()));
        assert_eq!(
            check_image(&image, 0x0050_1000, 0x4000_8000),
            Err(ImageProblem::Malformed),
            "a header claiming more than was packed"
        );
    }

    #[test]
    fn a_test_guest_names_itself_and_its_address() {
        let image = parse_zimage(&header(
            0x4000_0000,
            0x4000_1728,
            LITTLE_ENDIAN,
            Some("mmio"),
        ))
        .unwrap();
        assert_eq!((image.size, image.guest_name()), (0x1728, Some("mmio")));
        assert_eq!(check_image(&image, 0x2000, 0x4000_0000), Ok(()));
        assert_eq!(
            check_image(&image, 0x2000, 0x4000_8000),
            Err(ImageProblem::WrongAddress)
        );
        let full = parse_zimage(&header(
            0x4000_0000,
            0x4000_1000,
            LITTLE_ENDIAN,
            Some("sixteen-bytes-xx"),
        ))
        .unwrap();
        assert_eq!(full.guest_name(), Some("sixteen-bytes-xx"));
    }

    #[test]
    fn nothing_loaded_is_missing() {
        assert_eq!(
            parse_zimage(&[0u8; HEADER_BYTES]),
            Err(ImageProblem::Missing)
        );
        let mut elf = [0u8; HEADER_BYTES];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert_eq!(parse_zimage(&elf), Err(ImageProblem::Missing));
    }

    #[test]
    fn bad_headers_are_malformed() {
        for (start, end, marker) in [
            (0, 0x1000, BIG_ENDIAN),
            (0x4000_0000, 0x4000_0000, LITTLE_ENDIAN),
            (0x4000_1000, 0x4000_0000, LITTLE_ENDIAN),
            (0, MAX_IMAGE + 1, LITTLE_ENDIAN),
            (0, 0x10, LITTLE_ENDIAN),
        ] {
            assert_eq!(
                parse_zimage(&header(start, end, marker, None)),
                Err(ImageProblem::Malformed),
                "start {start:#x} end {end:#x} marker {marker:#x}"
            );
        }
    }

    #[test]
    fn the_probe_reads_a_zimages_header_and_takes_other_images_as_sized() {
        use crate::config::{DeviceSet, GUEST_RAM_IPA};
        let kernel = ImageConfig {
            name: "kernel",
            kind: ImageKind::Zimage,
            host_address: 0,
            size: 0x1000,
            load_offset: 0x8000,
        };
        let vm = VmConfig {
            name: "vm",
            ram_ipa: GUEST_RAM_IPA,
            ram_size: 0x0020_0000,
            ram_host: 0,
            vcpus: 1,
            cpus: [0, 0xff, 0xff, 0xff],
            kernel: Some(kernel),
            firmware: None,
            entry_offset: 0x8000,
            initrd: None,
            device_tree: None,
            bootargs: "",
            devices: DeviceSet(0),
        };
        let anywhere = header(0, 0x1000, LITTLE_ENDIAN, None);
        assert_eq!(probe(&vm, &kernel, &anywhere), Ok(0x1000));
        // Linked where it is loaded, or elsewhere.
        let here = header(
            GUEST_RAM_IPA + 0x8000,
            GUEST_RAM_IPA + 0x9000,
            LITTLE_ENDIAN,
            None,
        );
        assert_eq!(probe(&vm, &kernel, &here), Ok(0x1000));
        let there = header(GUEST_RAM_IPA, GUEST_RAM_IPA + 0x1000, LITTLE_ENDIAN, None);
        assert_eq!(probe(&vm, &kernel, &there), Err(ImageProblem::WrongAddress));
        // Claiming more than was packed, or too short for a header.
        let long = header(0, 0x2000, LITTLE_ENDIAN, None);
        assert_eq!(probe(&vm, &kernel, &long), Err(ImageProblem::Malformed));
        assert_eq!(
            probe(&vm, &kernel, &anywhere[..HEADER_BYTES - 1]),
            Err(ImageProblem::Malformed)
        );
        // A raw image is not read.
        let raw = ImageConfig {
            kind: ImageKind::Raw,
            size: 6,
            ..kernel
        };
        assert_eq!(probe(&vm, &raw, &[]), Ok(6));
    }
}
