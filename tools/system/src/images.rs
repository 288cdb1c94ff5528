// SPDX-License-Identifier: MIT OR Apache-2.0
//! Kernel images as the host tool reads them: where each goes in its VM's
//! RAM and where its vCPU starts.
//!
//! - A **zImage** is checked (magic, little-endian, the size its header
//!   claims against the file's); it goes where its header says it runs, or
//!   at [`ZIMAGE_OFFSET`] if it runs anywhere (Linux), and is entered at
//!   its first byte.
//! - A **raw** binary goes at the `load-offset` the description gives and
//!   is entered there.
//! - An **ELF** (32-bit, little-endian, Arm) is unpacked here: its loadable
//!   segments, placed by physical address, are joined into one image with
//!   the gaps zeroed, and the vCPU starts at its entry point. Every
//!   segment, and the entry, must lie in the VM's RAM.

use hyp::config::GUEST_RAM_IPA;

/// Where a position-independent zImage goes in its VM's RAM (where QEMU's
/// own `-kernel` puts one on `virt`).
pub const ZIMAGE_OFFSET: u64 = 0x1_0000;

/// A kernel ready to pack: its bytes, where they go and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// The bytes copied into RAM.
    pub bytes: Vec<u8>,
    /// Where they go (offset into the VM's RAM).
    pub load_offset: u64,
    /// Where the vCPU starts (offset into the VM's RAM).
    pub entry_offset: u64,
}

fn word(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

/// A guest-physical address as an offset into RAM of `ram` bytes at
/// [`GUEST_RAM_IPA`], if it is inside.
fn ram_offset(address: u64, ram: u64) -> Option<u64> {
    address
        .checked_sub(GUEST_RAM_IPA as u64)
        .filter(|offset| *offset < ram)
}

/// Reads a zImage: checks its header and places it.
pub fn zimage(bytes: Vec<u8>, ram: u64) -> Result<Kernel, String> {
    if bytes.len() < 0x34 || word(&bytes, 0x24) != hyp::image::ZIMAGE_MAGIC {
        return Err("is not a zImage (no magic 0x016f2818 at offset 0x24); for another kind of kernel set format = \"raw\" or \"elf\"".into());
    }
    if word(&bytes, 0x30) != hyp::image::LITTLE_ENDIAN {
        return Err("is a big-endian zImage; Capvisor runs little-endian guests".into());
    }
    let (start, end) = (word(&bytes, 0x28), word(&bytes, 0x2c));
    let size = end.wrapping_sub(start) as u64;
    if end <= start || size > bytes.len() as u64 {
        return Err(format!(
            "has a zImage header claiming {size} bytes, but the file has {} bytes",
            bytes.len()
        ));
    }
    let load_offset = if start == 0 {
        ZIMAGE_OFFSET
    } else {
        ram_offset(start as u64, ram).ok_or_else(|| {
            format!(
                "is linked to run at {start:#010x}, outside the VM's RAM at {GUEST_RAM_IPA:#010x}"
            )
        })?
    };
    Ok(Kernel {
        bytes,
        load_offset,
        entry_offset: load_offset,
    })
}

/// Reads an ELF: joins its loadable segments and finds its entry.
pub fn elf(bytes: &[u8], ram: u64) -> Result<Kernel, String> {
    use elf::endian::LittleEndian;
    let file = elf::ElfBytes::<LittleEndian>::minimal_parse(bytes)
        .map_err(|error| format!("is not a little-endian ELF file ({error})"))?;
    if file.ehdr.class != elf::file::Class::ELF32 || file.ehdr.e_machine != elf::abi::EM_ARM {
        return Err(format!(
            "is an ELF for another machine (class {:?}, machine {}); Capvisor runs 32-bit Arm guests",
            file.ehdr.class, file.ehdr.e_machine
        ));
    }
    let segments: Vec<_> = file
        .segments()
        .ok_or("has no program headers")?
        .iter()
        .filter(|segment| segment.p_type == elf::abi::PT_LOAD && segment.p_memsz > 0)
        .collect();
    if segments.is_empty() {
        return Err("has no loadable segment".into());
    }
    let mut start = u64::MAX;
    let mut end = 0;
    for segment in &segments {
        let last = segment.p_paddr + segment.p_memsz - 1;
        if ram_offset(segment.p_paddr, ram).is_none() || ram_offset(last, ram).is_none() {
            return Err(format!(
                "has a segment at {:#010x}..{:#010x}, outside the VM's RAM ({:#010x}..{:#010x})",
                segment.p_paddr,
                last + 1,
                GUEST_RAM_IPA,
                GUEST_RAM_IPA as u64 + ram
            ));
        }
        if segment.p_filesz > segment.p_memsz
            || segment.p_offset + segment.p_filesz > bytes.len() as u64
        {
            return Err("has a segment whose bytes lie outside the file".into());
        }
        start = start.min(segment.p_paddr);
        end = end.max(segment.p_paddr + segment.p_filesz.max(1));
    }
    let mut image = vec![0u8; (end - start) as usize];
    for segment in &segments {
        let at = (segment.p_paddr - start) as usize;
        let from = segment.p_offset as usize;
        let size = segment.p_filesz as usize;
        image[at..at + size].copy_from_slice(&bytes[from..from + size]);
    }
    let entry = file.ehdr.e_entry;
    if entry < start || entry >= end {
        return Err(format!(
            "has its entry point {entry:#010x} outside its loadable segments"
        ));
    }
    Ok(Kernel {
        bytes: image,
        load_offset: start - GUEST_RAM_IPA as u64,
        entry_offset: entry - GUEST_RAM_IPA as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zImage header for an image of `size` bytes running at `start`.
    fn zimage_bytes(start: u32, size: u32, file: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; file];
        bytes[0x24..0x28].copy_from_slice(&hyp::image::ZIMAGE_MAGIC.to_le_bytes());
        bytes[0x28..0x2c].copy_from_slice(&start.to_le_bytes());
        bytes[0x2c..0x30].copy_from_slice(&start.wrapping_add(size).to_le_bytes());
        bytes[0x30..0x34].copy_from_slice(&hyp::image::LITTLE_ENDIAN.to_le_bytes());
        bytes
    }

    #[test]
    fn zimages_go_where_they_run() {
        let linux = zimage(zimage_bytes(0, 0x1000, 0x1000), 256 << 20).unwrap();
        assert_eq!(
            (linux.load_offset, linux.entry_offset),
            (0x1_0000, 0x1_0000)
        );
        let guest = zimage(zimage_bytes(0x4000_0000, 0x800, 0x800), 2 << 20).unwrap();
        assert_eq!(guest.load_offset, 0);
        assert!(zimage(zimage_bytes(0x2000_0000, 0x800, 0x800), 2 << 20)
            .unwrap_err()
            .contains("outside the VM's RAM"));
        assert!(zimage(zimage_bytes(0, 0x2000, 0x1000), 2 << 20)
            .unwrap_err()
            .contains("claiming 8192 bytes, but the file has 4096 bytes"));
        assert!(zimage(vec![0u8; 0x100], 2 << 20)
            .unwrap_err()
            .starts_with("is not a zImage"));
    }

    /// A minimal ELF32 Arm executable: two PT_LOAD segments with a gap.
    fn elf_bytes(entry: u32, second_at: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x200];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 1; // ELFCLASS32
        bytes[5] = 1; // little-endian
        bytes[6] = 1; // EV_CURRENT
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        bytes[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        bytes[20..24].copy_from_slice(&1u32.to_le_bytes());
        bytes[24..28].copy_from_slice(&entry.to_le_bytes());
        bytes[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
        bytes[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
        bytes[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
        bytes[44..46].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        for (n, (offset, address, size)) in
            [(0x100u32, 0x4000_0000u32, 0x10u32), (0x180, second_at, 0x8)]
                .into_iter()
                .enumerate()
        {
            let header = 52 + n * 32;
            let fields = [1, offset, address, address, size, size + 0x10, 5, 4];
            for (i, field) in fields.into_iter().enumerate() {
                bytes[header + 4 * i..header + 4 * i + 4].copy_from_slice(&field.to_le_bytes());
            }
            bytes[offset as usize..(offset + size) as usize].fill(0xa0 + n as u8);
        }
        bytes
    }

    #[test]
    fn elf_segments_are_joined_and_entered_at_the_entry() {
        let kernel = elf(&elf_bytes(0x4000_0004, 0x4000_0100), 2 << 20).unwrap();
        assert_eq!((kernel.load_offset, kernel.entry_offset), (0, 4));
        assert_eq!(kernel.bytes.len(), 0x108);
        assert_eq!(kernel.bytes[0], 0xa0);
        assert_eq!(kernel.bytes[0x10..0x100], [0u8; 0xf0]);
        assert_eq!(kernel.bytes[0x100], 0xa1);
        assert!(elf(&elf_bytes(0x4000_0004, 0x4100_0000), 2 << 20)
            .unwrap_err()
            .contains("outside the VM's RAM"));
        assert!(elf(&elf_bytes(0x4000_0800, 0x4000_0100), 2 << 20)
            .unwrap_err()
            .contains("entry point 0x40000800 outside"));
        assert!(elf(b"not an elf", 2 << 20)
            .unwrap_err()
            .starts_with("is not a little-endian ELF"));
    }
}
