// SPDX-License-Identifier: MIT OR Apache-2.0
//! The device tree a VM boots with, written from its configuration.
//!
//! Every VM sees the guest platform of DESIGN.md (the memory map of QEMU's
//! `virt` machine for one Cortex-A15), so its tree is the same shape for
//! all: memory, one CPU, PSCI 0.2 by HVC, the architected timer, the GICv2,
//! the PL011 (with its clock) and `/chosen` with the boot arguments, the
//! console and the initrd's range. [`guest_device_tree`] writes it as a
//! flattened device tree blob with `vm-fdt` (which allocates: the board
//! gives the hypervisor a small heap for this, used only before VMs run).
//!
//! ```
//! use hyp::device_tree::{guest_device_tree, GuestTree};
//! let blob = guest_device_tree(&GuestTree {
//!     ram_base: 0x4000_0000,
//!     ram_size: 0x1000_0000,
//!     bootargs: "console=ttyAMA0",
//!     initrd: Some((0x4800_0000, 0x4810_0000)),
//! })
//! .unwrap();
//! assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]); // the FDT magic
//! ```

extern crate alloc;

use alloc::vec::Vec;
use vm_fdt::{Error, FdtWriter};

/// The guest platform's GIC distributor and CPU interface.
pub const GIC_DISTRIBUTOR: (u32, u32) = (0x0800_0000, 0x1000);
/// The GIC CPU interface.
pub const GIC_CPU_INTERFACE: (u32, u32) = (0x0801_0000, 0x2000);
/// The PL011.
pub const UART: (u32, u32) = (0x0900_0000, 0x1000);
/// The PL011's interrupt: SPI 1.
pub const UART_SPI: u32 = 1;
/// The clock the PL011 is described with (its divisors are emulated, so
/// any rate works; 24 MHz as on QEMU's `virt`).
pub const UART_CLOCK_HZ: u32 = 24_000_000;

/// What varies between VMs' trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestTree<'a> {
    /// Guest-physical base of RAM.
    pub ram_base: u32,
    /// RAM size in bytes.
    pub ram_size: u32,
    /// The kernel command line.
    pub bootargs: &'a str,
    /// The initrd's guest-physical range (start, end), if there is one.
    pub initrd: Option<(u32, u32)>,
}

/// GIC interrupt specifier cells: SPI.
const GIC_SPI: u32 = 0;
/// PPI.
const GIC_PPI: u32 = 1;
/// Level-sensitive, active high.
const LEVEL_HIGH: u32 = 4;
/// PPI flags for one CPU (GIC_CPU_MASK_SIMPLE(1) << 8) and level, high.
const PPI_ONE_CPU: u32 = (1 << 8) | LEVEL_HIGH;
/// phandles.
const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;

/// Writes the device tree for one VM.
pub fn guest_device_tree(tree: &GuestTree<'_>) -> Result<Vec<u8>, Error> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "Capvisor virtual machine")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 1)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", tree.bootargs)?;
    fdt.property_string("stdout-path", "/pl011@9000000")?;
    if let Some((start, end)) = tree.initrd {
        fdt.property_u32("linux,initrd-start", start)?;
        fdt.property_u32("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&memory_name(tree.ram_base))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u32("reg", &[tree.ram_base, tree.ram_size])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    let cpu = fdt.begin_node("cpu@0")?;
    fdt.property_string("device_type", "cpu")?;
    fdt.property_string("compatible", "arm,cortex-a15")?;
    fdt.property_u32("reg", 0)?;
    fdt.end_node(cpu)?;
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string("compatible", "arm,psci-0.2")?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    // The architected timer: secure and non-secure physical, virtual and
    // hypervisor PPIs (13, 14, 11, 10); the guest uses the virtual one.
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv7-timer")?;
    fdt.property_array_u32(
        "interrupts",
        &[
            GIC_PPI,
            13,
            PPI_ONE_CPU,
            GIC_PPI,
            14,
            PPI_ONE_CPU,
            GIC_PPI,
            11,
            PPI_ONE_CPU,
            GIC_PPI,
            10,
            PPI_ONE_CPU,
        ],
    )?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let gic = fdt.begin_node(&format_node("intc", GIC_DISTRIBUTOR.0))?;
    fdt.property_string("compatible", "arm,cortex-a15-gic")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u32(
        "reg",
        &[
            GIC_DISTRIBUTOR.0,
            GIC_DISTRIBUTOR.1,
            GIC_CPU_INTERFACE.0,
            GIC_CPU_INTERFACE.1,
        ],
    )?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clock)?;

    let uart = fdt.begin_node(&format_node("pl011", UART.0))?;
    fdt.property_string_list(
        "compatible",
        alloc::vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    fdt.property_array_u32("reg", &[UART.0, UART.1])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, UART_SPI, LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    fdt.property_string_list(
        "clock-names",
        alloc::vec!["uartclk".into(), "apb_pclk".into()],
    )?;
    fdt.end_node(uart)?;

    fdt.end_node(root)?;
    fdt.finish()
}

/// `name@<hex address>`.
fn format_node(name: &str, address: u32) -> alloc::string::String {
    alloc::format!("{name}@{address:x}")
}

fn memory_name(base: u32) -> alloc::string::String {
    format_node("memory", base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Vec<u8> {
        guest_device_tree(&GuestTree {
            ram_base: 0x4000_0000,
            ram_size: 0x1000_0000,
            bootargs: "console=ttyAMA0 earlycon",
            initrd: Some((0x4800_0000, 0x480d_7b21)),
        })
        .unwrap()
    }

    #[test]
    fn the_tree_describes_the_guest_platform() {
        let blob = tree();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let memory = fdt.memory().regions().next().unwrap();
        assert_eq!(
            (memory.starting_address as usize, memory.size),
            (0x4000_0000, Some(0x1000_0000))
        );
        let chosen = fdt.chosen();
        assert_eq!(chosen.bootargs(), Some("console=ttyAMA0 earlycon"));
        assert_eq!(chosen.stdout().map(|node| node.name), Some("pl011@9000000"));
        let uart = fdt.find_compatible(&["arm,pl011"]).unwrap();
        let reg = uart.reg().unwrap().next().unwrap();
        assert_eq!(
            (reg.starting_address as usize, reg.size),
            (0x0900_0000, Some(0x1000))
        );
        assert_eq!(
            uart.property("interrupts").unwrap().value,
            [0u32, 1, 4]
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect::<Vec<u8>>()
        );
        let gic = fdt.find_compatible(&["arm,cortex-a15-gic"]).unwrap();
        let regs: Vec<_> = gic
            .reg()
            .unwrap()
            .map(|r| r.starting_address as usize)
            .collect();
        assert_eq!(regs, [0x0800_0000, 0x0801_0000]);
        let psci = fdt.find_compatible(&["arm,psci-0.2"]).unwrap();
        assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));
        assert!(fdt.find_compatible(&["arm,armv7-timer"]).is_some());
        let cpu = fdt.cpus().next().unwrap();
        assert_eq!(cpu.ids().first(), 0);
    }

    #[test]
    fn the_initrd_range_is_in_chosen() {
        let blob = tree();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(
            chosen.property("linux,initrd-start").unwrap().as_usize(),
            Some(0x4800_0000)
        );
        assert_eq!(
            chosen.property("linux,initrd-end").unwrap().as_usize(),
            Some(0x480d_7b21)
        );
        let without = guest_device_tree(&GuestTree {
            initrd: None,
            ..GuestTree {
                ram_base: 0x4000_0000,
                ram_size: 0x0800_0000,
                bootargs: "",
                initrd: None,
            }
        })
        .unwrap();
        let fdt = fdt::Fdt::new(&without).unwrap();
        assert!(fdt
            .find_node("/chosen")
            .unwrap()
            .property("linux,initrd-start")
            .is_none());
    }
}
