// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's own memory map, as every board builds it.
//!
//! A board's map is the image's sections (from the shared linker script's
//! symbols, [`image_sections`]) followed by the board's own regions: the
//! device blocks it drives, the RAM pool it hands out to guests and the
//! staging area its loader fills. The boot code maps exactly [`plan`] and
//! then proves with [`expectations`] that the tables cover it, page by
//! page, and leave the stack guard page unmapped.

use hyp::memory::{Expectation, MemoryType, Permissions, Region, PAGE_SIZE};

/// The most regions a board's map may have.
pub const MAX_REGIONS: usize = 24;

/// The regions to map.
pub type Plan = heapless::Vec<Region, MAX_REGIONS>;
/// What the coverage check proves.
pub type Expectations = heapless::Vec<Expectation, { MAX_REGIONS + 1 }>;

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

/// The page below the boot stack, which must stay unmapped.
pub fn stack_guard() -> Region {
    section(
        "stack-guard",
        &raw const __stack_guard_start,
        &raw const __stack_bottom,
        Permissions::ReadWrite,
    )
}

/// Everything to map: the image's sections (empty ones, such as a `.data`
/// with nothing in it, are skipped), then `board` (devices, guest RAM,
/// staging). Refuses a board with more regions than [`MAX_REGIONS`].
pub fn plan(board: &[Region]) -> Plan {
    let mut out = Plan::new();
    for region in image_sections().into_iter().chain(board.iter().copied()) {
        if region.size != 0 && out.push(region).is_err() {
            crate::io::refuse_boot(format_args!(
                "the memory map has more than {} regions",
                MAX_REGIONS
            ));
        }
    }
    out
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

/// What the coverage check must prove: every region of `plan` mapped
/// exactly as intended (from the linker symbols and the board's table, not
/// from the tables built), and `guard` (the stack guard page) unmapped.
pub fn expectations(plan: &[Region], guard: Region) -> Expectations {
    let mut out = Expectations::new();
    let _ = out.push(Expectation::Unmapped(guard));
    for region in plan {
        let _ = out.push(Expectation::Mapped(*region));
    }
    debug_assert_eq!(guard.size, PAGE_SIZE);
    out
}
