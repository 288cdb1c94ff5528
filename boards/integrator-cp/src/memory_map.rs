//! The hypervisor's own memory map on Integrator/CP.
//!
//! Everything Capvisor touches on this board, with its attributes: the
//! image's sections (from the linker script's symbols), the three device
//! blocks it drives, and the RAM pool it hands out to guests. The boot code
//! maps exactly [`regions`] and then proves with [`expectations`] that the
//! tables cover them, page by page, and leave the stack guard page unmapped.

use hyp::memory::{Expectation, MemoryType, Permissions, Region, PAGE_SIZE};
use integrator_cp::{DEVICE_PAGE_SIZE, PIC_BASE, TIMERS_BASE, UART0_BASE};

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __guest_smoke_start: u8;
    static __guest_smoke_end: u8;
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

/// Guest RAM pool: the upper alias of RAM, 0x8000_0000-0xbfff_ffff (QEMU runs
/// the board with `-m 1024`, so all of it is real, contiguous RAM).
pub const GUEST_POOL: Region = Region::new(
    "guest-ram",
    0x8000_0000,
    0x4000_0000,
    MemoryType::Normal,
    Permissions::ReadWrite,
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
pub fn image_sections() -> [Region; 7] {
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
            "guest-smoke",
            &raw const __guest_smoke_start,
            &raw const __guest_smoke_end,
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
/// in it, are skipped), devices and the guest pool. Returns the regions and
/// how many of the array's entries are used.
pub fn regions() -> ([Region; REGION_COUNT], usize) {
    let mut out = [GUEST_POOL; REGION_COUNT];
    let mut count = 0;
    for region in image_sections()
        .into_iter()
        .chain(DEVICES)
        .chain([GUEST_POOL])
    {
        if region.size != 0 {
            out[count] = region;
            count += 1;
        }
    }
    (out, count)
}

/// The built-in test guest's code (empty unless built with the
/// `test-world-switch` or `bench` feature).
#[cfg(any(
    feature = "test-world-switch",
    feature = "bench",
    feature = "test-two-vms"
))]
pub fn guest_smoke() -> Region {
    section(
        "guest-smoke",
        &raw const __guest_smoke_start,
        &raw const __guest_smoke_end,
        Permissions::ReadOnly,
    )
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
