// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's own memory map, as every board builds it.
//!
//! A board's map is the image's sections (from the shared linker script's
//! symbols, [`image_sections`]) followed by the board's own regions: the
//! device blocks it drives, the RAM pool it hands out to guests and the
//! staging area its loader fills. The boot code maps exactly [`plan`] and
//! then proves with [`expectations`] that the tables cover it, page by
//! page, and leave every CPU's stack guard page unmapped.
//!
//! Each CPU the board can start has its own slot in `.stacks` (the linker
//! script's `CPUS`): an unmapped guard page, its stack, its fault stack.
//! The regions are named `cpuN-stack-guard`, `cpuN-stack` and
//! `cpuN-fault-stack`.

use hyp::memory::{Expectation, MemoryType, Permissions, Region, PAGE_SIZE};

/// The most regions a board's map may have.
pub const MAX_REGIONS: usize = 24;

/// The regions to map.
pub type Plan = heapless::Vec<Region, MAX_REGIONS>;
/// What the coverage check proves: the plan, and a guard page per CPU.
pub type Expectations = heapless::Vec<Expectation, { MAX_REGIONS + MAX_CPUS }>;

/// The most CPUs a board's image has stacks for (the linker script's
/// `CPUS` may be at most this; defined in `hyp`).
pub use hyp::config::MAX_CPUS;

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __stacks_start: u8;
    // Absolute symbols: their addresses are the numbers.
    static __cpus: u8;
    static __cpu_stacks_size: u8;
    static __stack_size: u8;
    static __fault_stack_size: u8;
}

/// How many CPUs the image has stacks for (the linker script's `CPUS`).
pub fn cpus() -> usize {
    (&raw const __cpus) as usize
}

/// CPU `cpu`'s stack slot: where its guard page starts, and the sizes of
/// its guard, stack and fault stack.
fn stack_slot(cpu: usize) -> (u32, u32, u32, u32) {
    let slot = (&raw const __cpu_stacks_size) as usize as u32;
    let start = (&raw const __stacks_start) as usize as u32 + cpu as u32 * slot;
    let stack = (&raw const __stack_size) as usize as u32;
    let fault = (&raw const __fault_stack_size) as usize as u32;
    (start, PAGE_SIZE, stack, fault)
}

/// Region names per CPU: stack, fault stack, guard.
const STACK_NAMES: [(&str, &str, &str); MAX_CPUS] = [
    ("cpu0-stack", "cpu0-fault-stack", "cpu0-stack-guard"),
    ("cpu1-stack", "cpu1-fault-stack", "cpu1-stack-guard"),
    ("cpu2-stack", "cpu2-fault-stack", "cpu2-stack-guard"),
    ("cpu3-stack", "cpu3-fault-stack", "cpu3-stack-guard"),
];

/// CPU `cpu`'s stack and fault stack (mapped read-write).
pub fn stacks(cpu: usize) -> [Region; 2] {
    let (start, guard, stack, fault) = stack_slot(cpu);
    let (stack_name, fault_name, _) = STACK_NAMES[cpu];
    [
        Region::new(
            stack_name,
            start + guard,
            stack,
            MemoryType::Normal,
            Permissions::ReadWrite,
        ),
        Region::new(
            fault_name,
            start + guard + stack,
            fault,
            MemoryType::Normal,
            Permissions::ReadWrite,
        ),
    ]
}

/// The page below CPU `cpu`'s stack, which must stay unmapped.
pub fn stack_guard(cpu: usize) -> Region {
    let (start, guard, _, _) = stack_slot(cpu);
    Region::new(
        STACK_NAMES[cpu].2,
        start,
        guard,
        MemoryType::Normal,
        Permissions::ReadWrite,
    )
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

/// The image's sections, read from the linker script's symbols.
pub fn image_sections() -> [Region; 4] {
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
    ]
}

/// Where the image ends: the last CPU's fault stack.
pub fn image_end() -> u64 {
    stacks(cpus() - 1)[1].end()
}

/// Everything to map: the image's sections (empty ones, such as a `.data`
/// with nothing in it, are skipped), every CPU's stacks, then `board`
/// (devices, guest RAM, staging). Refuses a board with more regions than
/// [`MAX_REGIONS`].
pub fn plan(board: &[Region]) -> Plan {
    let mut out = Plan::new();
    let stacks = (0..cpus()).flat_map(stacks);
    for region in image_sections()
        .into_iter()
        .chain(stacks)
        .chain(board.iter().copied())
    {
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
/// from the tables built), and every CPU's stack guard page unmapped.
pub fn expectations(plan: &[Region]) -> Expectations {
    let mut out = Expectations::new();
    for cpu in 0..cpus() {
        let _ = out.push(Expectation::Unmapped(stack_guard(cpu)));
    }
    for region in plan {
        let _ = out.push(Expectation::Mapped(*region));
    }
    out
}
