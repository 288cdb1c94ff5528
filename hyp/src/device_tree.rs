// SPDX-License-Identifier: MIT OR Apache-2.0
//! The device tree a VM boots with, written from its configuration.
//!
//! Every VM sees one guest platform (the memory map of QEMU's
//! `virt` machine, Cortex-A15s), so its tree is the same shape for all:
//! memory, a CPU per vCPU (`cpu@0` up; started by PSCI when there are
//! several), PSCI 0.2 by HVC, the architected timer (its per-CPU
//! interrupts routed to every vCPU), the GICv2, a node for each device of
//! the guest platform the VM claims (`crate::guest_platform`: its window,
//! interrupt, `compatible` and clocks; the PL011 and the PL031 today), one
//! fixed clock, and `/chosen` with the boot arguments, the console (when
//! the VM has the PL011) and the initrd's range. Nothing here names a
//! device: a new row of the table gets its node without a change here.
//! [`guest_device_tree`] writes it as a
//! flattened device tree blob with `vm-fdt` (which allocates: the board
//! gives the hypervisor a small heap for this, used only before VMs run).
//!
//! ```
//! use hyp::config::DeviceSet;
//! use hyp::device_tree::{guest_device_tree, GuestTree};
//! let blob = guest_device_tree(&GuestTree {
//!     ram_base: 0x4000_0000,
//!     ram_size: 0x1000_0000,
//!     bootargs: "console=ttyAMA0",
//!     initrd: Some((0x4800_0000, 0x4810_0000)),
//!     cpus: 2,
//!     devices: DeviceSet::ALL,
//! })
//! .unwrap();
//! assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]); // the FDT magic
//! ```

extern crate alloc;

use alloc::vec::Vec;
use vm_fdt::{Error, FdtWriter};

use crate::config::DeviceSet;
use crate::guest_platform::{
    self, GuestDevice, APB_CLOCK_HZ, FIRST_PPI, FIRST_SPI, GIC_CPU_INTERFACE, GIC_DISTRIBUTOR,
    TIMER_INTERRUPTS,
};

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
    /// How many vCPUs the VM has: 1 to [`MAX_TREE_CPUS`] (0 is written
    /// as 1, more as [`MAX_TREE_CPUS`]).
    pub cpus: u32,
    /// The devices the VM claims: each with a node in the guest platform's
    /// table gets it (the GIC's node is always written).
    pub devices: DeviceSet,
}

/// The most CPUs a tree lists: the GICv2's eight CPU interfaces (the
/// CPU mask of a per-CPU interrupt has 8 bits).
pub const MAX_TREE_CPUS: u32 = 8;

/// PSCI 0.2's function ids (SMC32) for the `cpu_on` and `cpu_off`
/// properties, which kernels that know only PSCI 0.1 read.
pub const PSCI_CPU_ON: u32 = 0x8400_0003;
/// CPU_OFF.
pub const PSCI_CPU_OFF: u32 = 0x8400_0002;

/// GIC interrupt specifier cells: SPI.
const GIC_SPI: u32 = 0;
/// PPI.
const GIC_PPI: u32 = 1;
/// Level-sensitive, active high.
const LEVEL_HIGH: u32 = 4;

/// The flags cell of a per-CPU interrupt (PPI) reaching `cpus` CPUs:
/// level, high, with the GICv2 CPU mask (`GIC_CPU_MASK_SIMPLE(cpus)`, a
/// bit per CPU) in bits 15:8, as Linux's GICv2 binding reads it.
const fn ppi_flags(cpus: u32) -> u32 {
    (((1 << cpus) - 1) << 8) | LEVEL_HIGH
}
/// phandles.
const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;

/// Writes the device tree for one VM.
pub fn guest_device_tree(tree: &GuestTree<'_>) -> Result<Vec<u8>, Error> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", "Capvisor virtual machine")?;
    // Two cells for addresses and sizes, as QEMU's `virt` writes them:
    // EDK2 (ArmVirtQemu) reads every `reg` as 64-bit pairs.
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", tree.bootargs)?;
    let uart = &guest_platform::UART;
    if let (true, Some(node)) = (tree.devices.has(uart.name), uart.node) {
        fdt.property_string(
            "stdout-path",
            &alloc::format!("/{}", format_node(node.name, uart.base)),
        )?;
    }
    if let Some((start, end)) = tree.initrd {
        fdt.property_u32("linux,initrd-start", start)?;
        fdt.property_u32("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&memory_name(tree.ram_base))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u32("reg", &reg(&[(tree.ram_base, tree.ram_size)]))?;
    fdt.end_node(memory)?;

    let count = tree.cpus.clamp(1, MAX_TREE_CPUS);
    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for index in 0..count {
        let cpu = fdt.begin_node(&format_node("cpu", index))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,cortex-a15")?;
        fdt.property_u32("reg", index)?;
        // The boot vCPU starts at the kernel's entry; the others are
        // started by the guest with PSCI CPU_ON.
        if count > 1 {
            fdt.property_string("enable-method", "psci")?;
        }
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string("compatible", "arm,psci-0.2")?;
    fdt.property_string("method", "hvc")?;
    fdt.property_u32("cpu_on", PSCI_CPU_ON)?;
    fdt.property_u32("cpu_off", PSCI_CPU_OFF)?;
    fdt.end_node(psci)?;

    // The architected timer: secure and non-secure physical, virtual and
    // hypervisor PPIs; the guest uses the virtual one. Each is per CPU, on
    // every vCPU.
    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv7-timer")?;
    let flags = ppi_flags(count);
    let mut cells = [0; 3 * TIMER_INTERRUPTS.len()];
    for (cell, id) in cells.chunks_exact_mut(3).zip(TIMER_INTERRUPTS) {
        cell.copy_from_slice(&[GIC_PPI, id - FIRST_PPI, flags]);
    }
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let gic = fdt.begin_node(&format_node("intc", GIC_DISTRIBUTOR.base))?;
    fdt.property_string("compatible", "arm,cortex-a15-gic")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u32(
        "reg",
        &reg(&[
            (GIC_DISTRIBUTOR.base, GIC_DISTRIBUTOR.size),
            (GIC_CPU_INTERFACE.base, GIC_CPU_INTERFACE.size),
        ]),
    )?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let clock = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_CLOCK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clock)?;

    for device in guest_platform::DEVICES
        .iter()
        .filter(|device| tree.devices.has(device.name))
    {
        device_node(&mut fdt, device)?;
    }

    fdt.end_node(root)?;
    fdt.finish()
}

/// The node of a device the guest platform describes with one
/// ([`crate::guest_platform::DeviceTreeNode`]); nothing for the others.
fn device_node(fdt: &mut FdtWriter, device: &GuestDevice) -> Result<(), Error> {
    let Some(node) = device.node else {
        return Ok(());
    };
    let handle = fdt.begin_node(&format_node(node.name, device.base))?;
    fdt.property_string_list(
        "compatible",
        node.compatible.iter().map(|name| (*name).into()).collect(),
    )?;
    if device.name == guest_platform::FLASH.name {
        // Two CFI banks on a 32-bit bus, as QEMU's `virt` describes them
        // (EDK2 and U-Boot each take a `reg` entry as one bank).
        let bank = guest_platform::FLASH_BANK_BYTES;
        fdt.property_array_u32(
            "reg",
            &reg(&[(device.base, bank), (device.base + bank, bank)]),
        )?;
        fdt.property_u32("bank-width", guest_platform::FLASH_BANK_WIDTH)?;
    } else {
        fdt.property_array_u32("reg", &reg(&[(device.base, device.size)]))?;
    }
    if let Some(id) = device.interrupt {
        fdt.property_array_u32("interrupts", &[GIC_SPI, id - FIRST_SPI, LEVEL_HIGH])?;
    }
    if node.dma_coherent {
        fdt.property_null("dma-coherent")?;
    }
    if !node.clock_names.is_empty() {
        let clocks: Vec<u32> = node.clock_names.iter().map(|_| CLOCK_PHANDLE).collect();
        fdt.property_array_u32("clocks", &clocks)?;
        fdt.property_string_list(
            "clock-names",
            node.clock_names.iter().map(|name| (*name).into()).collect(),
        )?;
    }
    fdt.end_node(handle)
}

/// `reg` cells for `(address, size)` ranges, two cells each.
fn reg(ranges: &[(u32, u32)]) -> Vec<u32> {
    ranges
        .iter()
        .flat_map(|&(address, size)| [0, address, 0, size])
        .collect()
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

    fn tree_of(cpus: u32) -> Vec<u8> {
        guest_device_tree(&GuestTree {
            ram_base: 0x4000_0000,
            ram_size: 0x1000_0000,
            bootargs: "console=ttyAMA0 earlycon",
            initrd: Some((0x4800_0000, 0x480d_7b21)),
            cpus,
            devices: DeviceSet::ALL,
        })
        .unwrap()
    }

    fn tree() -> Vec<u8> {
        tree_of(1)
    }

    /// Big-endian cells, as a property holds them.
    fn cells(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    /// The CPUs of a tree: (node name, reg, enable-method).
    fn cpus_of(blob: &[u8]) -> Vec<(alloc::string::String, usize, Option<alloc::string::String>)> {
        let fdt = fdt::Fdt::new(blob).unwrap();
        let listed: Vec<_> = fdt
            .find_node("/cpus")
            .unwrap()
            .children()
            .map(|cpu| {
                (
                    alloc::string::String::from(cpu.name),
                    cpu.property("reg").and_then(|reg| reg.as_usize()).unwrap(),
                    cpu.property("enable-method")
                        .and_then(|method| method.as_str())
                        .map(alloc::string::String::from),
                )
            })
            .collect();
        // The fdt crate's own view of them: the same ids.
        assert_eq!(
            fdt.cpus().map(|cpu| cpu.ids().first()).collect::<Vec<_>>(),
            listed.iter().map(|(_, reg, _)| *reg).collect::<Vec<_>>()
        );
        listed
    }

    /// The timer's interrupts property.
    fn timer_interrupts(blob: &[u8]) -> Vec<u8> {
        let fdt = fdt::Fdt::new(blob).unwrap();
        let timer = fdt.find_compatible(&["arm,armv7-timer"]).unwrap();
        timer.property("interrupts").unwrap().value.to_vec()
    }

    /// The timer's four PPIs with `flags`.
    fn timer_with(flags: u32) -> Vec<u8> {
        cells(&[1, 13, flags, 1, 14, flags, 1, 11, flags, 1, 10, flags])
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
        assert_eq!(
            psci.property("cpu_on").unwrap().as_usize(),
            Some(0x8400_0003)
        );
        assert_eq!(
            psci.property("cpu_off").unwrap().as_usize(),
            Some(0x8400_0002)
        );
    }

    #[test]
    fn one_vcpu_is_one_cpu_without_an_enable_method() {
        let blob = tree();
        assert_eq!(cpus_of(&blob), [("cpu@0".into(), 0, None)]);
        // The timer's PPIs reach CPU 0: mask 0b1 in bits 15:8, level high.
        assert_eq!(timer_interrupts(&blob), timer_with(0x104));
        // 0 vCPUs is written as one.
        assert_eq!(tree_of(0), blob);
    }

    #[test]
    fn several_vcpus_are_listed_and_started_by_psci() {
        for (count, mask) in [(2u32, 0b11u32), (4, 0b1111)] {
            let blob = tree_of(count);
            let cpus = cpus_of(&blob);
            assert_eq!(cpus.len(), count as usize);
            for (index, (name, reg, method)) in cpus.into_iter().enumerate() {
                assert_eq!(name, alloc::format!("cpu@{index}"));
                assert_eq!(reg, index);
                assert_eq!(method.as_deref(), Some("psci"));
            }
            let fdt = fdt::Fdt::new(&blob).unwrap();
            for cpu in fdt.cpus() {
                assert_eq!(
                    cpu.property("compatible").unwrap().as_str(),
                    Some("arm,cortex-a15")
                );
                assert_eq!(cpu.property("device_type").unwrap().as_str(), Some("cpu"));
            }
            assert_eq!(timer_interrupts(&blob), timer_with((mask << 8) | 4));
            let psci = fdt.find_compatible(&["arm,psci-0.2"]).unwrap();
            assert_eq!(psci.property("method").unwrap().as_str(), Some("hvc"));
            // The PL011's SPI has no CPU mask.
            let uart = fdt.find_compatible(&["arm,pl011"]).unwrap();
            assert_eq!(
                uart.property("interrupts").unwrap().value,
                cells(&[0, 1, 4])
            );
        }
        // More than the GIC has CPU interfaces for: eight.
        let blob = tree_of(9);
        assert_eq!(cpus_of(&blob).len(), 8);
        assert_eq!(timer_interrupts(&blob), timer_with(0xff04));
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
                cpus: 1,
                devices: DeviceSet::ALL,
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

    #[test]
    fn each_claimed_device_gets_its_rows_node_and_only_those() {
        let blob = tree();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        let rtc = fdt.find_compatible(&["arm,pl031"]).unwrap();
        assert_eq!(rtc.name, "pl031@9010000");
        let reg = rtc.reg().unwrap().next().unwrap();
        assert_eq!(
            (reg.starting_address as usize, reg.size),
            (0x0901_0000, Some(0x1000))
        );
        // SPI 2, level high.
        assert_eq!(rtc.property("interrupts").unwrap().value, cells(&[0, 2, 4]));
        assert_eq!(
            rtc.property("compatible").unwrap().value,
            b"arm,pl031\0arm,primecell\0"
        );
        assert_eq!(
            rtc.property("clock-names").unwrap().as_str(),
            Some("apb_pclk")
        );
        assert_eq!(
            rtc.property("clocks").unwrap().value,
            cells(&[CLOCK_PHANDLE])
        );
        // A VM without the PL011 and the PL031: neither node, no console.
        let gic_only = DeviceSet(
            (1 << guest_platform::index_of("gic-distributor").unwrap())
                | (1 << guest_platform::index_of("gic-cpu-interface").unwrap()),
        );
        let blob = guest_device_tree(&GuestTree {
            ram_base: 0x4000_0000,
            ram_size: 0x0800_0000,
            bootargs: "",
            initrd: None,
            cpus: 1,
            devices: gic_only,
        })
        .unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert!(fdt.find_compatible(&["arm,pl031"]).is_none());
        assert!(fdt.find_compatible(&["arm,pl011"]).is_none());
        assert!(fdt.chosen().stdout().is_none());
        assert!(fdt.find_compatible(&["arm,cortex-a15-gic"]).is_some());
    }
}
