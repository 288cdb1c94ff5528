//! The hypervisor's own memory map on Integrator/CP.
//!
//! Everything Capvisor touches on this board, with its attributes: the
//! image's sections (from the linker script's symbols), the three device
//! blocks it drives, and the RAM pool it hands out to guests. The boot code
//! maps exactly [`regions`] and then proves with [`expectations`] that the
//! tables cover them, page by page, and leave the stack guard page unmapped.

use hyp::memory::{Expectation, MemoryType, Permissions, Region, PAGE_SIZE};
use integrator_cp::{DEVICE_PAGE_SIZE, PIC_BASE, RAM_ALIAS_BASE, TIMERS_BASE, UART0_BASE};

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __stack_guard_start: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
    static __fault_stack_bottom: u8;
    static __fault_stack_top: u8;
}

/// Guest RAM pool, in the upper alias of RAM (QEMU runs the board with
/// `-m 1024`, so 0x8000_0000-0xbfff_ffff is real, contiguous RAM). The
/// alias starts with the hypervisor's own image (0x8000_0000 + x is low RAM
/// address x), so the pool starts 16 MiB in; [`check_guest_ram_alias`]
/// proves at boot that the image ends below that. VMs' RAM is carved from
/// here.
pub const GUEST_RAM: Region = Region::new(
    "guest-ram",
    0x8100_0000,
    0x2f00_0000,
    MemoryType::Normal,
    Permissions::ReadWrite,
);

/// The image staging area above it, where QEMU's generic loader places
/// guest images (`images.txt`, [`crate::vms`]). The hypervisor only reads
/// it, to copy images into VMs' RAM.
pub const GUEST_IMAGES: Region = Region::new(
    "guest-images",
    crate::vms::STAGING_BASE,
    crate::vms::SLOTS * crate::vms::SLOT_SIZE,
    MemoryType::Normal,
    Permissions::ReadOnly,
);

/// The device register blocks the hypervisor drives.
pub const DEVICES: [Region; 3] = [
    Region::new(
        "timers",
        TIMERS_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
    Region::new(
        "pic",
        PIC_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
    Region::new(
        "uart0",
        UART0_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
];

/// Number of regions in [`regions`].
pub const REGION_COUNT: usize = 8 + DEVICES.len();

const _: () = assert!(GUEST_RAM.start as u64 + GUEST_RAM.size as u64 == GUEST_IMAGES.start as u64);

fn section(
    name: &'static str,
    start: *const u8,
    end: *const u8,
    permissions: Permissions,
) -> Region {
    let start = start as usize as u32;
    let end = end as usize as u32;
    Region::new(name, start, end - start, MemoryType::Normal, permissions)
}

/// The image's sections and stacks, read from the linker script's symbols.
pub fn image_sections() -> [Region; 6] {
    [
        section(
            "text",
            &raw const __text_start,
            &raw const __text_end,
            Permissions::ReadExecute,
        ),
        section(
            "rodata",
            &raw const __rodata_start,
            &raw const __rodata_end,
            Permissions::ReadOnly,
        ),
        section(
            "data",
            &raw const __data_start,
            &raw const __data_end,
            Permissions::ReadWrite,
        ),
        section(
            "bss",
            &raw const __bss_start,
            &raw const __bss_end,
            Permissions::ReadWrite,
        ),
        section(
            "stack",
            &raw const __stack_bottom,
            &raw const __stack_top,
            Permissions::ReadWrite,
        ),
        section(
            "fault-stack",
            &raw const __fault_stack_bottom,
            &raw const __fault_stack_top,
            Permissions::ReadWrite,
        ),
    ]
}

/// Checks that no byte of the guest RAM pool is, through the RAM alias, a
/// byte of the hypervisor's image, stacks or tables. Returns the image's
/// end on failure.
pub fn check_guest_ram_alias() -> Result<(), usize> {
    let image_end = image_sections()
        .iter()
        .map(|region| region.end() as usize)
        .max()
        .unwrap_or(0);
    if RAM_ALIAS_BASE + image_end > GUEST_RAM.start as usize {
        Err(image_end)
    } else {
        Ok(())
    }
}

/// The page below the boot stack, which must stay unmapped.
pub fn stack_guard() -> Region {
    section(
        "stack-guard",
        &raw const __stack_guard_start,
        &raw const __stack_bottom,
        Permissions::ReadWrite,
    )
}

/// Everything to map: sections (empty ones, such as a `.data` with nothing
/// in it, are skipped), devices, guest RAM and the image staging area. Returns the regions and
/// how many of the array's entries are used.
pub fn regions() -> ([Region; REGION_COUNT], usize) {
    let mut out = [GUEST_RAM; REGION_COUNT];
    let mut count = 0;
    for region in image_sections()
        .into_iter()
        .chain(DEVICES)
        .chain([GUEST_RAM, GUEST_IMAGES])
    {
        if region.size != 0 {
            out[count] = region;
            count += 1;
        }
    }
    (out, count)
}

/// The test-only broken layout: the same map with the last page of `.text`
/// left out, which the coverage check must catch.
#[cfg(feature = "test-uncovered-layout")]
pub fn break_layout(regions: &mut [Region]) {
    for region in regions.iter_mut() {
        if region.name == "text" && region.size > PAGE_SIZE {
            region.size -= PAGE_SIZE;
        }
    }
}

/// What the coverage check must prove: every region mapped exactly as
/// intended (from the linker symbols, not from the map plan), and the stack
/// guard page unmapped.
pub fn expectations() -> ([Expectation; REGION_COUNT + 1], usize) {
    let (regions, count) = regions();
    let mut out = [Expectation::Unmapped(stack_guard()); REGION_COUNT + 1];
    out[1..=count]
        .iter_mut()
        .zip(&regions[..count])
        .for_each(|(slot, region)| *slot = Expectation::Mapped(*region));
    debug_assert_eq!(stack_guard().size, PAGE_SIZE);
    (out, count + 1)
}
