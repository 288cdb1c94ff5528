// SPDX-License-Identifier: MIT OR Apache-2.0
//! The device tree QEMU's `virt` leaves in RAM, read and checked at boot.
//!
//! QEMU describes the machine it built in a flattened device tree at the
//! start of RAM ([`DTB_ADDRESS`](crate::DTB_ADDRESS)). The board was built for
//! one configuration (the constants of this crate), so before it touches a
//! device it reads the tree and compares:
//!
//! 1. [`blob_at`] finds the blob's extent from its header;
//! 2. [`parse`] reads what the hypervisor depends on into a [`VirtMachine`]:
//!    RAM, the GICv2's four windows and maintenance interrupt, the console
//!    PL011 (window, interrupt, clock), the architected timer's interrupts,
//!    the PSCI conduit and the number of CPUs;
//! 3. [`check`] compares that with an [`Expected`] and names the first
//!    difference ([`Mismatch`]).
//!
//! Parsing uses the `fdt` crate (read-only, no allocation). `fdt` panics on
//! some malformed input, so the blob's header and token stream are checked
//! first (the private `structure` module): a broken tree is a
//! [`DeviceTreeError`], never a panic. Addresses and sizes are decoded here
//! from the raw cells, as `u64`, because `fdt`'s own `reg` helper truncates
//! them to `usize` (32 bits on the target).
//!
//! ```
//! use qemu_virt::device_tree::{check, parse, Expected, PsciMethod};
//! let blob: &[u8] = include_bytes!("../tests/virt-gicv2-512m.dtb");
//! let machine = parse(blob).unwrap();
//! assert_eq!(machine.psci_method, PsciMethod::Smc);
//! let refused = check(&machine, &Expected::qemu_virt(1 << 30)).unwrap_err();
//! assert_eq!(
//!     refused.to_string(),
//!     "device tree: RAM is 512 MiB at 0x40000000, the board needs at least 1 GiB"
//! );
//! ```

mod structure;

use core::fmt;

use fdt::node::FdtNode;
use fdt::Fdt;
use hyp::memory::Size;

/// The `compatible` string of the GICv2 QEMU's `virt` has with
/// `gic-version=2`.
const GIC_COMPATIBLE: &str = "arm,cortex-a15-gic";
/// The `compatible` string of a PL011.
const PL011_COMPATIBLE: &str = "arm,pl011";
/// The `compatible` string of the architected timer.
const TIMER_COMPATIBLE: &str = "arm,armv7-timer";

/// The GIC's four register windows, each `(base, size)` in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicWindows {
    /// GICD.
    pub distributor: (u64, u64),
    /// GICC.
    pub cpu_interface: (u64, u64),
    /// GICH: the list registers and maintenance status.
    pub hyp_interface: (u64, u64),
    /// GICV: what a guest is given as its GICC.
    pub virtual_cpu_interface: (u64, u64),
}

/// How PSCI is called (the `method` of `/psci`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// `smc #0`: QEMU's `virt` with `virtualization=on`.
    Smc,
    /// `hvc #0`: QEMU's `virt` without EL2 (and what a guest is given).
    Hvc,
    /// No `/psci` node.
    None,
}

impl fmt::Display for PsciMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PsciMethod::Smc => "SMC",
            PsciMethod::Hvc => "HVC",
            PsciMethod::None => "none",
        })
    }
}

/// What the device tree says about the machine. Interrupts are GIC ids
/// (SPI n = 32 + n, PPI n = 16 + n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtMachine {
    /// The start of RAM: the first `reg` entry of `/memory`.
    pub ram_base: u64,
    /// Its size.
    pub ram_size: u64,
    /// The windows of the `arm,cortex-a15-gic` node.
    pub gic: GicWindows,
    /// The GIC's maintenance interrupt (its own `interrupts`).
    pub maintenance_interrupt: u32,
    /// The console PL011's window `(base, size)`: the one `/chosen`'s
    /// `stdout-path` names, or the first PL011 if that names none.
    pub uart: (u64, u64),
    /// Its interrupt.
    pub uart_interrupt: u32,
    /// The rate of its `uartclk` (a fixed clock).
    pub uart_clock_hz: u32,
    /// The architected timer's interrupts, in the binding's order: secure
    /// physical, non-secure physical, virtual, hyp.
    pub timer_interrupts: [u32; 4],
    /// How PSCI is called.
    pub psci_method: PsciMethod,
    /// The number of `/cpus/cpu@...` nodes.
    pub cpus: u32,
}

/// What a board is built for: [`check`] compares a [`VirtMachine`] with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Where RAM must start.
    pub ram_base: u64,
    /// The least RAM the board can run with.
    pub min_ram: u64,
    /// Where the GIC's windows must be; each may be larger than given here.
    pub gic: GicWindows,
    /// The maintenance interrupt.
    pub maintenance_interrupt: u32,
    /// The console PL011's window; it may be larger than given here.
    pub uart: (u64, u64),
    /// The PL011's interrupt.
    pub uart_interrupt: u32,
    /// The PL011's `uartclk` rate.
    pub uart_clock_hz: u32,
    /// The timer's interrupts, in [`VirtMachine::timer_interrupts`] order.
    pub timer_interrupts: [u32; 4],
    /// How the board calls PSCI; [`PsciMethod::None`] if it never does (then
    /// any method, or none, is accepted).
    pub psci_method: PsciMethod,
}

impl Expected {
    /// QEMU's `virt` as this crate's constants describe it (`-M
    /// virt,virtualization=on,gic-version=2`), with at least `min_ram` bytes
    /// of RAM.
    pub const fn qemu_virt(min_ram: u64) -> Expected {
        const fn window(base: usize) -> (u64, u64) {
            (base as u64, crate::GIC_WINDOW as u64)
        }
        Expected {
            ram_base: crate::RAM_BASE as u64,
            min_ram,
            gic: GicWindows {
                distributor: window(crate::GICD_BASE),
                cpu_interface: window(crate::GICC_BASE),
                hyp_interface: window(crate::GICH_BASE),
                virtual_cpu_interface: window(crate::GICV_BASE),
            },
            maintenance_interrupt: crate::MAINTENANCE_INTERRUPT,
            uart: (crate::UART0_BASE as u64, crate::DEVICE_PAGE_SIZE as u64),
            uart_interrupt: crate::UART0_INTERRUPT,
            uart_clock_hz: crate::UART_CLOCK_HZ,
            timer_interrupts: [
                crate::SECURE_PHYSICAL_TIMER_INTERRUPT,
                crate::PHYSICAL_TIMER_INTERRUPT,
                crate::VIRTUAL_TIMER_INTERRUPT,
                crate::HYP_TIMER_INTERRUPT,
            ],
            psci_method: PsciMethod::Smc,
        }
    }
}

/// A node name kept without borrowing the blob (at most
/// [`NodeName::CAPACITY`] bytes; a longer one is cut).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeName {
    bytes: [u8; NodeName::CAPACITY],
    length: usize,
}

impl NodeName {
    /// The longest name kept whole: the specification's 31-character node
    /// name, `@` and a 64-bit unit address.
    pub const CAPACITY: usize = 48;

    /// `name`, or `/` for the root (whose name is empty).
    pub fn new(name: &str) -> NodeName {
        let name = if name.is_empty() { "/" } else { name };
        let mut length = name.len().min(NodeName::CAPACITY);
        while !name.is_char_boundary(length) {
            length -= 1;
        }
        let mut bytes = [0; NodeName::CAPACITY];
        bytes[..length].copy_from_slice(&name.as_bytes()[..length]);
        NodeName { bytes, length }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // `new` copied whole characters of a `&str`.
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("?")
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the blob is not a device tree at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobProblem {
    /// [`blob_at`] was given address 0.
    NullAddress,
    /// Fewer bytes than the 40-byte header (or a header giving that few).
    TooShort {
        /// The bytes there are (or the header's total size).
        length: usize,
    },
    /// The first word is not 0xd00dfeed.
    BadMagic {
        /// The word found.
        magic: u32,
    },
    /// A header version this reader does not understand (it needs 17).
    Version {
        /// `version`.
        version: u32,
        /// `last_comp_version`.
        last_compatible: u32,
    },
    /// A block lies (partly) outside the blob.
    BlockOutside {
        /// Which block.
        block: &'static str,
        /// The blob's size from its header.
        total_size: usize,
    },
    /// The structure block is not a well-formed token stream.
    Structure {
        /// Where, from the start of the structure block.
        offset: usize,
        /// What is wrong there.
        problem: &'static str,
    },
}

impl fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobProblem::NullAddress => f.write_str("its address is 0"),
            BlobProblem::TooShort { length } => write!(
                f,
                "{length} bytes long, shorter than its {}-byte header",
                structure::HEADER_LEN
            ),
            BlobProblem::BadMagic { magic } => write!(
                f,
                "the magic is {magic:#010x}, not {:#010x}",
                structure::MAGIC
            ),
            BlobProblem::Version {
                version,
                last_compatible,
            } => write!(
                f,
                "header version {version} (compatible with {last_compatible}), \
                 this reader needs 17"
            ),
            BlobProblem::BlockOutside { block, total_size } => write!(
                f,
                "the {block} block lies outside the {total_size:#x} bytes of the blob"
            ),
            BlobProblem::Structure { offset, problem } => write!(
                f,
                "the structure block is broken at offset {offset:#x}: {problem}"
            ),
        }
    }
}

/// A node the hypervisor cannot run without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequiredNode {
    /// `/memory`.
    Memory,
    /// A node compatible with `arm,cortex-a15-gic`.
    Gic,
    /// A node compatible with `arm,pl011`.
    Uart,
    /// A node compatible with `arm,armv7-timer`.
    Timer,
    /// `/cpus` with at least one `cpu@...` node.
    Cpu,
}

/// What is wrong with a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropertyProblem {
    /// It is not there.
    Missing,
    /// Its length is not a whole number of entries.
    Length {
        /// Its length in bytes.
        length: usize,
    },
    /// Addresses or sizes of other than 1 or 2 cells.
    Cells {
        /// The parent's `#address-cells`.
        address: usize,
        /// The parent's `#size-cells`.
        size: usize,
    },
    /// Fewer entries than needed.
    Entries {
        /// How many there are.
        found: usize,
        /// How many are needed.
        needed: usize,
        /// What they are.
        of: &'static str,
    },
    /// An interrupt specifier that is neither an SPI nor a PPI (or a number
    /// out of range for its type).
    BadInterrupt {
        /// Which specifier, from 0.
        index: usize,
    },
    /// A phandle no node has.
    UnknownPhandle {
        /// The phandle.
        phandle: u32,
    },
    /// A clock with arguments (only fixed clocks are understood).
    NotFixedClock,
    /// A value other than the ones listed.
    NotOneOf(&'static str),
    /// A number that does not fit 32 bits.
    OutOfRange,
}

impl fmt::Display for PropertyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropertyProblem::Missing => f.write_str("is missing"),
            PropertyProblem::Length { length } => {
                write!(f, "is {length} bytes long, not a whole number of entries")
            }
            PropertyProblem::Cells { address, size } => write!(
                f,
                "uses {address} address and {size} size cells, only 1 or 2 of each are understood"
            ),
            PropertyProblem::Entries { found, needed, of } => {
                let entries = if *found == 1 { "entry" } else { "entries" };
                let are = if *needed == 1 { "is" } else { "are" };
                write!(f, "has {found} {entries}, {needed} {are} needed: {of}")
            }
            PropertyProblem::BadInterrupt { index } => {
                write!(f, "entry {index} is neither an SPI nor a PPI")
            }
            PropertyProblem::UnknownPhandle { phandle } => {
                write!(f, "names phandle {phandle:#x}, which no node has")
            }
            PropertyProblem::NotFixedClock => f.write_str(
                "names a clock with arguments, only fixed clocks (#clock-cells = 0) are understood",
            ),
            PropertyProblem::NotOneOf(values) => write!(f, "is not {values}"),
            PropertyProblem::OutOfRange => f.write_str("does not fit 32 bits"),
        }
    }
}

/// Why [`parse`] or [`blob_at`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTreeError {
    /// The bytes are not a (readable) flattened device tree.
    NotADeviceTree(BlobProblem),
    /// The header gives a size larger than the bytes there are (or than
    /// [`blob_at`] was allowed to take).
    TooLarge {
        /// The size the header gives.
        size: usize,
        /// The bytes there are, or the most allowed.
        max: usize,
    },
    /// A node the hypervisor needs is not there.
    MissingNode(RequiredNode),
    /// A property the hypervisor needs is missing or malformed.
    MalformedProperty {
        /// The node, by name.
        node: NodeName,
        /// The property.
        property: &'static str,
        /// What is wrong.
        problem: PropertyProblem,
    },
}

impl fmt::Display for DeviceTreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("device tree: ")?;
        match self {
            DeviceTreeError::NotADeviceTree(problem) => {
                write!(f, "not a flattened device tree: {problem}")
            }
            DeviceTreeError::TooLarge { size, max } => write!(
                f,
                "its header gives a size of {size:#x} bytes, more than the {max:#x} available"
            ),
            DeviceTreeError::MissingNode(node) => match node {
                RequiredNode::Memory => f.write_str("no /memory node"),
                RequiredNode::Gic => write!(
                    f,
                    "no node compatible with \"{GIC_COMPATIBLE}\": the board needs a GICv2 \
                     with virtualization extensions (QEMU: -M virt,gic-version=2)"
                ),
                RequiredNode::Uart => {
                    write!(f, "no node compatible with \"{PL011_COMPATIBLE}\"")
                }
                RequiredNode::Timer => {
                    write!(f, "no node compatible with \"{TIMER_COMPATIBLE}\"")
                }
                RequiredNode::Cpu => f.write_str("no /cpus/cpu node"),
            },
            DeviceTreeError::MalformedProperty {
                node,
                property,
                problem,
            } => write!(f, "property \"{property}\" of {node} {problem}"),
        }
    }
}

/// The error for `property` of `node`.
fn malformed(
    node: FdtNode<'_, '_>,
    property: &'static str,
    problem: PropertyProblem,
) -> DeviceTreeError {
    DeviceTreeError::MalformedProperty {
        node: NodeName::new(node.name),
        property,
        problem,
    }
}

/// The blob of the device tree at physical `address`: reads the header's
/// magic and total size, refuses a size over `max`, and returns the bytes.
/// Only the header is looked at; [`parse`] checks the rest.
///
/// # Safety
///
/// `address..address + max` must be mapped and readable, and must not be
/// written for the rest of the program (the slice returned is `'static`).
pub unsafe fn blob_at(address: usize, max: usize) -> Result<&'static [u8], DeviceTreeError> {
    if address == 0 {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::NullAddress));
    }
    if max < structure::HEADER_LEN {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::TooShort {
            length: max,
        }));
    }
    // SAFETY: the caller guarantees that `max` bytes from `address` are
    // readable and never written; the header is no more than `max` bytes;
    // `address` is not null and bytes need no alignment.
    let header =
        unsafe { core::slice::from_raw_parts(address as *const u8, structure::HEADER_LEN) };
    let size = structure::total_size(header)?;
    if size > max {
        return Err(DeviceTreeError::TooLarge { size, max });
    }
    // SAFETY: as above, with `size <= max`.
    Ok(unsafe { core::slice::from_raw_parts(address as *const u8, size) })
}

/// Reads the device tree in `blob` (the blob may be followed by other
/// bytes: only as many as its header gives are read).
pub fn parse(blob: &[u8]) -> Result<VirtMachine, DeviceTreeError> {
    let blob = structure::validate(blob)?;
    let tree = Fdt::new(blob).map_err(|_| {
        // `validate` has checked everything `Fdt::new` checks.
        DeviceTreeError::NotADeviceTree(BlobProblem::TooShort { length: blob.len() })
    })?;

    let memory = tree
        .find_node("/memory")
        .ok_or(DeviceTreeError::MissingNode(RequiredNode::Memory))?;
    let [(ram_base, ram_size)] = reg(memory, "the RAM")?;

    let gic = tree
        .find_compatible(&[GIC_COMPATIBLE])
        .ok_or(DeviceTreeError::MissingNode(RequiredNode::Gic))?;
    let [distributor, cpu_interface, hyp_interface, virtual_cpu_interface] = reg(
        gic,
        "GICD, GICC, GICH and GICV (QEMU gives the last two only with virtualization=on)",
    )?;
    // Every interrupt below is read as a GIC specifier <type number flags>:
    // the GIC is the only interrupt controller of `virt`.
    match gic
        .property("#interrupt-cells")
        .and_then(|cells| cells.as_usize())
    {
        Some(3) => {}
        Some(_) => {
            return Err(malformed(
                gic,
                "#interrupt-cells",
                PropertyProblem::NotOneOf("3"),
            ))
        }
        None => return Err(malformed(gic, "#interrupt-cells", PropertyProblem::Missing)),
    }
    let [maintenance_interrupt] = interrupts(gic, "the maintenance interrupt")?;

    let uart = console_uart(&tree).ok_or(DeviceTreeError::MissingNode(RequiredNode::Uart))?;
    let [uart_window] = reg(uart, "the registers")?;
    let [uart_interrupt] = interrupts(uart, "the UART interrupt")?;
    let uart_clock_hz = uart_clock(&tree, uart)?;

    let timer = tree
        .find_compatible(&[TIMER_COMPATIBLE])
        .ok_or(DeviceTreeError::MissingNode(RequiredNode::Timer))?;
    let timer_interrupts = interrupts(timer, "secure physical, non-secure physical, virtual, hyp")?;

    Ok(VirtMachine {
        ram_base,
        ram_size,
        gic: GicWindows {
            distributor,
            cpu_interface,
            hyp_interface,
            virtual_cpu_interface,
        },
        maintenance_interrupt,
        uart: uart_window,
        uart_interrupt,
        uart_clock_hz,
        timer_interrupts,
        psci_method: psci_method(&tree)?,
        cpus: cpu_count(&tree)?,
    })
}

/// A big-endian number of one or two cells.
fn cells_value(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0, |value, &byte| (value << 8) | u64::from(byte))
}

/// The first `N` entries of `node`'s `reg`, as `(base, size)`.
fn reg<const N: usize>(
    node: FdtNode<'_, '_>,
    of: &'static str,
) -> Result<[(u64, u64); N], DeviceTreeError> {
    let fail = |problem| malformed(node, "reg", problem);
    let value = node
        .property("reg")
        .ok_or(fail(PropertyProblem::Missing))?
        .value;
    // `raw_reg` splits the value by the parent's #address-cells and
    // #size-cells; the first entry shows what those are.
    let entries = || node.raw_reg().into_iter().flatten();
    let Some(first) = entries().next() else {
        return Err(fail(if value.is_empty() {
            PropertyProblem::Entries {
                found: 0,
                needed: N,
                of,
            }
        } else {
            PropertyProblem::Length {
                length: value.len(),
            }
        }));
    };
    let (address_cells, size_cells) = (first.address.len() / 4, first.size.len() / 4);
    if !(1..=2).contains(&address_cells) || !(1..=2).contains(&size_cells) {
        return Err(fail(PropertyProblem::Cells {
            address: address_cells,
            size: size_cells,
        }));
    }
    let entry = 4 * (address_cells + size_cells);
    if value.len() % entry != 0 {
        return Err(fail(PropertyProblem::Length {
            length: value.len(),
        }));
    }
    if value.len() / entry < N {
        return Err(fail(PropertyProblem::Entries {
            found: value.len() / entry,
            needed: N,
            of,
        }));
    }
    let mut windows = [(0, 0); N];
    for (window, raw) in windows.iter_mut().zip(entries()) {
        *window = (cells_value(raw.address), cells_value(raw.size));
    }
    Ok(windows)
}

/// The first `N` of `node`'s `interrupts`, as GIC ids.
fn interrupts<const N: usize>(
    node: FdtNode<'_, '_>,
    of: &'static str,
) -> Result<[u32; N], DeviceTreeError> {
    /// One GIC interrupt specifier: <type number flags>.
    const SPECIFIER: usize = 12;
    let fail = |problem| malformed(node, "interrupts", problem);
    let value = node
        .property("interrupts")
        .ok_or(fail(PropertyProblem::Missing))?
        .value;
    if value.len() % SPECIFIER != 0 {
        return Err(fail(PropertyProblem::Length {
            length: value.len(),
        }));
    }
    if value.len() / SPECIFIER < N {
        return Err(fail(PropertyProblem::Entries {
            found: value.len() / SPECIFIER,
            needed: N,
            of,
        }));
    }
    let mut ids = [0; N];
    for (index, (id, specifier)) in ids
        .iter_mut()
        .zip(value.chunks_exact(SPECIFIER))
        .enumerate()
    {
        let kind = cells_value(&specifier[0..4]);
        let number = cells_value(&specifier[4..8]);
        *id = match (kind, number) {
            // SPIs are ids 32 to 1019, PPIs 16 to 31.
            (0, 0..=987) => 32 + number as u32,
            (1, 0..=15) => 16 + number as u32,
            _ => return Err(fail(PropertyProblem::BadInterrupt { index })),
        };
    }
    Ok(ids)
}

/// Whether `node` lists `compatible` among its `compatible` strings.
fn is_compatible(node: FdtNode<'_, '_>, compatible: &str) -> bool {
    node.compatible()
        .is_some_and(|strings| strings.all().any(|string| string == compatible))
}

/// The console PL011: the node `/chosen`'s `stdout-path` names if that is a
/// PL011, else the first PL011.
fn console_uart<'b, 'a>(tree: &'b Fdt<'a>) -> Option<FdtNode<'b, 'a>> {
    stdout_node(tree)
        .filter(|&node| is_compatible(node, PL011_COMPATIBLE))
        .or_else(|| tree.find_compatible(&[PL011_COMPATIBLE]))
}

/// The node `/chosen`'s `stdout-path` names: a path or an alias, either
/// perhaps followed by `:options`.
fn stdout_node<'b, 'a>(tree: &'b Fdt<'a>) -> Option<FdtNode<'b, 'a>> {
    let chosen = tree.find_node("/chosen")?;
    let path = chosen.property("stdout-path")?.as_str()?;
    let path = path.split(':').next()?;
    let path = if path.starts_with('/') {
        path
    } else {
        tree.find_node("/aliases")?.property(path)?.as_str()?
    };
    // Only absolute paths: `Fdt::find_node` retries a path it does not find
    // as an alias name, and an alias naming an alias could recurse forever.
    // (No property name contains '/', so an absolute path never matches one.)
    if !path.starts_with('/') {
        return None;
    }
    tree.find_node(path)
}

/// The rate of `uart`'s `uartclk`: the clock `clock-names` calls so, or the
/// first of `clocks`. It must be a fixed clock with a `clock-frequency`.
fn uart_clock(tree: &Fdt<'_>, uart: FdtNode<'_, '_>) -> Result<u32, DeviceTreeError> {
    let clocks = uart
        .property("clocks")
        .ok_or(malformed(uart, "clocks", PropertyProblem::Missing))?
        .value;
    if clocks.len() % 4 != 0 {
        return Err(malformed(
            uart,
            "clocks",
            PropertyProblem::Length {
                length: clocks.len(),
            },
        ));
    }
    let wanted = uart
        .property("clock-names")
        .and_then(|names| {
            names
                .value
                .split(|&byte| byte == 0)
                .position(|name| name == b"uartclk")
        })
        .unwrap_or(0);
    let too_few = |found| {
        malformed(
            uart,
            "clocks",
            PropertyProblem::Entries {
                found,
                needed: wanted + 1,
                of: "one for each of clock-names",
            },
        )
    };
    // Each entry is a phandle and as many cells as the clock's #clock-cells.
    let mut cells = clocks.chunks_exact(4).map(cells_value);
    let mut index = 0;
    loop {
        let phandle = cells.next().ok_or(too_few(index))? as u32;
        let clock = tree.find_phandle(phandle).ok_or(malformed(
            uart,
            "clocks",
            PropertyProblem::UnknownPhandle { phandle },
        ))?;
        let arguments = clock
            .property("#clock-cells")
            .and_then(|cells| cells.as_usize())
            .ok_or(malformed(clock, "#clock-cells", PropertyProblem::Missing))?;
        if index == wanted {
            if arguments != 0 {
                return Err(malformed(uart, "clocks", PropertyProblem::NotFixedClock));
            }
            return clock_frequency(clock);
        }
        for _ in 0..arguments {
            cells.next().ok_or(too_few(index))?;
        }
        index += 1;
    }
}

/// A fixed clock's `clock-frequency`.
fn clock_frequency(clock: FdtNode<'_, '_>) -> Result<u32, DeviceTreeError> {
    let fail = |problem| malformed(clock, "clock-frequency", problem);
    let value = clock
        .property("clock-frequency")
        .ok_or(fail(PropertyProblem::Missing))?
        .value;
    match value.len() {
        4 | 8 => u32::try_from(cells_value(value)).map_err(|_| fail(PropertyProblem::OutOfRange)),
        length => Err(fail(PropertyProblem::Length { length })),
    }
}

/// `/psci`'s `method`, or [`PsciMethod::None`] without a `/psci`.
fn psci_method(tree: &Fdt<'_>) -> Result<PsciMethod, DeviceTreeError> {
    let Some(psci) = tree.find_node("/psci") else {
        return Ok(PsciMethod::None);
    };
    let method =
        psci.property("method")
            .ok_or(malformed(psci, "method", PropertyProblem::Missing))?;
    match method.as_str() {
        Some("smc") => Ok(PsciMethod::Smc),
        Some("hvc") => Ok(PsciMethod::Hvc),
        _ => Err(malformed(
            psci,
            "method",
            PropertyProblem::NotOneOf("\"smc\" or \"hvc\""),
        )),
    }
}

/// The number of `cpu` nodes under `/cpus` (not counting `cpu-map`).
fn cpu_count(tree: &Fdt<'_>) -> Result<u32, DeviceTreeError> {
    let missing = DeviceTreeError::MissingNode(RequiredNode::Cpu);
    let cpus = tree.find_node("/cpus").ok_or(missing)?;
    let count = cpus
        .children()
        .filter(|node| node.name.split('@').next() == Some("cpu"))
        .count();
    match u32::try_from(count) {
        Ok(0) | Err(_) => Err(missing),
        Ok(count) => Ok(count),
    }
}

/// A register window the board depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// GICD.
    GicDistributor,
    /// GICC.
    GicCpuInterface,
    /// GICH.
    GicHypInterface,
    /// GICV.
    GicVirtualCpuInterface,
    /// The console PL011.
    Uart,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Window::GicDistributor => "the GIC's distributor",
            Window::GicCpuInterface => "the GIC's CPU interface",
            Window::GicHypInterface => "the GIC's hypervisor interface",
            Window::GicVirtualCpuInterface => "the GIC's virtual CPU interface",
            Window::Uart => "the PL011",
        })
    }
}

/// An interrupt the board depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// The GIC's maintenance interrupt.
    Maintenance,
    /// The console PL011's.
    Uart,
    /// The secure physical timer's.
    SecurePhysicalTimer,
    /// The non-secure physical timer's (CNTP).
    PhysicalTimer,
    /// The virtual timer's (CNTV).
    VirtualTimer,
    /// The Hyp physical timer's (CNTHP).
    HypTimer,
}

impl Interrupt {
    /// The timers' interrupts, in [`VirtMachine::timer_interrupts`] order.
    const TIMERS: [Interrupt; 4] = [
        Interrupt::SecurePhysicalTimer,
        Interrupt::PhysicalTimer,
        Interrupt::VirtualTimer,
        Interrupt::HypTimer,
    ];
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interrupt::Maintenance => "the GIC maintenance interrupt",
            Interrupt::Uart => "the PL011's interrupt",
            Interrupt::SecurePhysicalTimer => "the secure physical timer's interrupt",
            Interrupt::PhysicalTimer => "the non-secure physical timer's interrupt",
            Interrupt::VirtualTimer => "the virtual timer's interrupt",
            Interrupt::HypTimer => "the hypervisor timer's interrupt",
        })
    }
}

/// A GIC id with its kind and number: `25 (PPI 9)`.
struct GicId(u32);

impl fmt::Display for GicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.0;
        match id {
            0..=15 => write!(f, "{id} (SGI {id})"),
            16..=31 => write!(f, "{id} (PPI {})", id - 16),
            _ => write!(f, "{id} (SPI {})", id - 32),
        }
    }
}

/// The first way the machine differs from what the board is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// RAM starts elsewhere.
    RamBase {
        /// Where RAM starts.
        base: u64,
        /// Its size.
        size: u64,
        /// Where the board needs it.
        expected: u64,
    },
    /// There is too little RAM.
    RamSize {
        /// Where RAM starts.
        base: u64,
        /// Its size.
        size: u64,
        /// The least the board needs.
        min: u64,
    },
    /// A window is elsewhere, or smaller.
    Window {
        /// Which.
        window: Window,
        /// `(base, size)` in the tree.
        found: (u64, u64),
        /// `(base, least size)` the board needs.
        expected: (u64, u64),
    },
    /// An interrupt has another id.
    Interrupt {
        /// Which.
        interrupt: Interrupt,
        /// The GIC id in the tree.
        found: u32,
        /// The one the board needs.
        expected: u32,
    },
    /// The PL011's clock runs at another rate.
    UartClock {
        /// In the tree.
        found: u32,
        /// What the board's divisors assume.
        expected: u32,
    },
    /// PSCI is called another way, or is absent.
    PsciMethod {
        /// In the tree.
        found: PsciMethod,
        /// How the board calls it.
        expected: PsciMethod,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("device tree: ")?;
        match *self {
            Mismatch::RamBase {
                base,
                size,
                expected,
            } => write!(
                f,
                "RAM is {} at {base:#010x}, the board expects it at {expected:#010x}",
                Size(size)
            ),
            Mismatch::RamSize { base, size, min } => write!(
                f,
                "RAM is {} at {base:#010x}, the board needs at least {}",
                Size(size),
                Size(min)
            ),
            Mismatch::Window {
                window,
                found: (base, size),
                expected: (expected_base, expected_size),
            } => write!(
                f,
                "{window} is at {base:#010x} ({size:#x} bytes), the board expects \
                 {expected_base:#010x} (at least {expected_size:#x} bytes)"
            ),
            Mismatch::Interrupt {
                interrupt,
                found,
                expected,
            } => write!(
                f,
                "{interrupt} is {}, the board expects {}",
                GicId(found),
                GicId(expected)
            ),
            Mismatch::UartClock { found, expected } => write!(
                f,
                "the PL011's clock runs at {found} Hz, the board expects {expected} Hz"
            ),
            Mismatch::PsciMethod {
                found: PsciMethod::None,
                expected,
            } => write!(
                f,
                "there is no /psci node, the board calls PSCI by {expected}"
            ),
            Mismatch::PsciMethod { found, expected } => write!(
                f,
                "PSCI is called by {found}, the board calls it by {expected}"
            ),
        }
    }
}

/// Compares `machine` with what the board is built for. Windows must start
/// where expected and be at least as large; interrupts, the UART clock and
/// the PSCI method must be equal; RAM must start where expected and be at
/// least `min_ram`. Any number of CPUs is accepted.
pub fn check(machine: &VirtMachine, expected: &Expected) -> Result<(), Mismatch> {
    if machine.ram_base != expected.ram_base {
        return Err(Mismatch::RamBase {
            base: machine.ram_base,
            size: machine.ram_size,
            expected: expected.ram_base,
        });
    }
    if machine.ram_size < expected.min_ram {
        return Err(Mismatch::RamSize {
            base: machine.ram_base,
            size: machine.ram_size,
            min: expected.min_ram,
        });
    }
    let windows = [
        (
            Window::GicDistributor,
            machine.gic.distributor,
            expected.gic.distributor,
        ),
        (
            Window::GicCpuInterface,
            machine.gic.cpu_interface,
            expected.gic.cpu_interface,
        ),
        (
            Window::GicHypInterface,
            machine.gic.hyp_interface,
            expected.gic.hyp_interface,
        ),
        (
            Window::GicVirtualCpuInterface,
            machine.gic.virtual_cpu_interface,
            expected.gic.virtual_cpu_interface,
        ),
        (Window::Uart, machine.uart, expected.uart),
    ];
    for (window, found, wanted) in windows {
        if found.0 != wanted.0 || found.1 < wanted.1 {
            return Err(Mismatch::Window {
                window,
                found,
                expected: wanted,
            });
        }
    }
    let interrupts = [
        (
            Interrupt::Maintenance,
            machine.maintenance_interrupt,
            expected.maintenance_interrupt,
        ),
        (
            Interrupt::Uart,
            machine.uart_interrupt,
            expected.uart_interrupt,
        ),
    ];
    let timers = Interrupt::TIMERS
        .into_iter()
        .zip(machine.timer_interrupts)
        .zip(expected.timer_interrupts)
        .map(|((interrupt, found), wanted)| (interrupt, found, wanted));
    for (interrupt, found, wanted) in interrupts.into_iter().chain(timers) {
        if found != wanted {
            return Err(Mismatch::Interrupt {
                interrupt,
                found,
                expected: wanted,
            });
        }
    }
    if machine.uart_clock_hz != expected.uart_clock_hz {
        return Err(Mismatch::UartClock {
            found: machine.uart_clock_hz,
            expected: expected.uart_clock_hz,
        });
    }
    if expected.psci_method != PsciMethod::None && machine.psci_method != expected.psci_method {
        return Err(Mismatch::PsciMethod {
            found: machine.psci_method,
            expected: expected.psci_method,
        });
    }
    Ok(())
}

/// The `compatible` string of a PL031 real-time clock.
const PL031_COMPATIBLE: &str = "arm,pl031";

/// The window `(base, size)` of the first PL031 real-time clock `blob`
/// lists, or `None` when it lists none (the board then has no clock to
/// read, and guests' clocks start at 1970). Apart from [`parse`]: the
/// hypervisor runs without an RTC.
pub fn rtc_window(blob: &[u8]) -> Result<Option<(u64, u64)>, DeviceTreeError> {
    let blob = structure::validate(blob)?;
    let tree = Fdt::new(blob).map_err(|_| {
        // `validate` has checked everything `Fdt::new` checks.
        DeviceTreeError::NotADeviceTree(BlobProblem::TooShort { length: blob.len() })
    })?;
    match tree.find_compatible(&[PL031_COMPATIBLE]) {
        Some(rtc) => {
            let [window] = reg(rtc, "the registers")?;
            Ok(Some(window))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Device trees QEMU 7.2 made; tests/README.md gives the command for each.
    const GICV2: &[u8] = include_bytes!("../tests/virt-gicv2.dtb");
    const GICV2_512M: &[u8] = include_bytes!("../tests/virt-gicv2-512m.dtb");
    const GICV2_SMP2: &[u8] = include_bytes!("../tests/virt-gicv2-smp2.dtb");
    const GICV2_NO_VIRTUALIZATION: &[u8] = include_bytes!("../tests/virt-gicv2-novirt.dtb");
    const GICV3: &[u8] = include_bytes!("../tests/virt-gicv3.dtb");

    const GIB: u64 = 1 << 30;

    /// The 1 GiB `virt` as `dtc -I dtb -O dts tests/virt-gicv2.dtb` shows it:
    /// memory@40000000 reg <0 0x40000000 0 0x40000000>; intc@8000000 reg
    /// <0 0x8000000 0 0x10000 0 0x8010000 0 0x10000 0 0x8030000 0 0x10000
    /// 0 0x8040000 0 0x10000>, interrupts <1 9 4>; pl011@9000000 reg
    /// <0 0x9000000 0 0x1000>, interrupts <0 1 4>, clocks <0x8000 0x8000>
    /// (apb-pclk, clock-frequency 0x16e3600); timer interrupts <1 0xd 0x104
    /// 1 0xe 0x104 1 0xb 0x104 1 0xa 0x104>; psci method "smc"; cpu@0.
    fn virt_1g() -> VirtMachine {
        VirtMachine {
            ram_base: 0x4000_0000,
            ram_size: 0x4000_0000,
            gic: GicWindows {
                distributor: (0x0800_0000, 0x1_0000),
                cpu_interface: (0x0801_0000, 0x1_0000),
                hyp_interface: (0x0803_0000, 0x1_0000),
                virtual_cpu_interface: (0x0804_0000, 0x1_0000),
            },
            maintenance_interrupt: 25,
            uart: (0x0900_0000, 0x1000),
            uart_interrupt: 33,
            uart_clock_hz: 24_000_000,
            timer_interrupts: [29, 30, 27, 26],
            psci_method: PsciMethod::Smc,
            cpus: 1,
        }
    }

    #[test]
    fn qemu_virt_gicv2_reads_as_dtc_shows_it() {
        assert_eq!(parse(GICV2), Ok(virt_1g()));
        assert_eq!(check(&virt_1g(), &Expected::qemu_virt(GIB)), Ok(()));
    }

    #[test]
    fn the_expected_machine_is_the_crate_constants() {
        let expected = Expected::qemu_virt(GIB);
        let machine = virt_1g();
        assert_eq!(expected.gic, machine.gic);
        assert_eq!(expected.uart, machine.uart);
        assert_eq!(
            expected.maintenance_interrupt,
            machine.maintenance_interrupt
        );
        assert_eq!(expected.uart_interrupt, machine.uart_interrupt);
        assert_eq!(expected.uart_clock_hz, machine.uart_clock_hz);
        assert_eq!(expected.timer_interrupts, machine.timer_interrupts);
        assert_eq!(expected.psci_method, machine.psci_method);
        assert_eq!((expected.ram_base, expected.min_ram), (0x4000_0000, GIB));
    }

    #[test]
    fn two_cpus_are_counted_and_accepted() {
        // -smp 2: cpu@0 and cpu@1 (and a cpu-map, not counted); the timer's
        // flags now name two CPUs (0x304), its interrupts are the same.
        let machine = parse(GICV2_SMP2).unwrap();
        assert_eq!(
            machine,
            VirtMachine {
                cpus: 2,
                ..virt_1g()
            }
        );
        assert_eq!(check(&machine, &Expected::qemu_virt(GIB)), Ok(()));
    }

    #[test]
    fn half_a_gibibyte_is_too_little() {
        let machine = parse(GICV2_512M).unwrap();
        assert_eq!(
            machine,
            VirtMachine {
                ram_size: 0x2000_0000,
                ..virt_1g()
            }
        );
        let mismatch = check(&machine, &Expected::qemu_virt(GIB)).unwrap_err();
        assert_eq!(
            mismatch,
            Mismatch::RamSize {
                base: 0x4000_0000,
                size: 0x2000_0000,
                min: GIB,
            }
        );
        assert_eq!(
            mismatch.to_string(),
            "device tree: RAM is 512 MiB at 0x40000000, the board needs at least 1 GiB"
        );
        // And is enough for a board that asks for less.
        assert_eq!(check(&machine, &Expected::qemu_virt(GIB / 2)), Ok(()));
    }

    #[test]
    fn a_gicv3_has_no_gicv2_node() {
        let error = parse(GICV3).unwrap_err();
        assert_eq!(error, DeviceTreeError::MissingNode(RequiredNode::Gic));
        assert_eq!(
            error.to_string(),
            "device tree: no node compatible with \"arm,cortex-a15-gic\": the board needs a \
             GICv2 with virtualization extensions (QEMU: -M virt,gic-version=2)"
        );
    }

    #[test]
    fn without_virtualization_the_gic_has_two_windows() {
        let error = parse(GICV2_NO_VIRTUALIZATION).unwrap_err();
        assert_eq!(
            error,
            DeviceTreeError::MalformedProperty {
                node: NodeName::new("intc@8000000"),
                property: "reg",
                problem: PropertyProblem::Entries {
                    found: 2,
                    needed: 4,
                    of: "GICD, GICC, GICH and GICV (QEMU gives the last two only with \
                         virtualization=on)",
                },
            }
        );
        assert_eq!(
            error.to_string(),
            "device tree: property \"reg\" of intc@8000000 has 2 entries, 4 are needed: GICD, \
             GICC, GICH and GICV (QEMU gives the last two only with virtualization=on)"
        );
    }

    /// `blob` as QEMU leaves it in RAM: the committed files were cut to the
    /// end of their strings block (tests/README.md); in RAM the header's
    /// total size is the whole 1 MiB buffer, the rest zeros.
    fn in_ram(blob: &[u8]) -> &'static [u8] {
        let mut ram = vec![0; crate::DTB_MAX_SIZE];
        ram[..blob.len()].copy_from_slice(blob);
        ram[4..8].copy_from_slice(&(crate::DTB_MAX_SIZE as u32).to_be_bytes());
        Vec::leak(ram)
    }

    #[test]
    fn blob_at_takes_the_whole_buffer_qemu_leaves() {
        let ram = in_ram(GICV2);
        // SAFETY: `ram` is leaked, so readable and never written again.
        let blob = unsafe { blob_at(ram.as_ptr() as usize, crate::DTB_MAX_SIZE) }.unwrap();
        assert_eq!((blob.as_ptr(), blob.len()), (ram.as_ptr(), 0x10_0000));
        assert_eq!(parse(blob), Ok(virt_1g()));
    }

    #[test]
    fn blob_at_refuses_more_than_it_may_take() {
        let ram = in_ram(GICV2);
        // SAFETY: as above; `max` is less than the buffer.
        let error = unsafe { blob_at(ram.as_ptr() as usize, 0xf_0000) }.unwrap_err();
        assert_eq!(
            error,
            DeviceTreeError::TooLarge {
                size: 0x10_0000,
                max: 0xf_0000,
            }
        );
        assert_eq!(
            error.to_string(),
            "device tree: its header gives a size of 0x100000 bytes, more than the 0xf0000 \
             available"
        );
    }

    #[test]
    fn blob_at_refuses_what_is_not_a_device_tree() {
        let zeros: &'static [u8] = Vec::leak(vec![0; 64]);
        // SAFETY: `zeros` is leaked: readable, never written.
        let error = unsafe { blob_at(zeros.as_ptr() as usize, zeros.len()) }.unwrap_err();
        assert_eq!(
            error.to_string(),
            "device tree: not a flattened device tree: the magic is 0x00000000, not 0xd00dfeed"
        );
        // SAFETY: address 0 is refused before anything is read.
        let error = unsafe { blob_at(0, crate::DTB_MAX_SIZE) }.unwrap_err();
        assert_eq!(
            error.to_string(),
            "device tree: not a flattened device tree: its address is 0"
        );
        // SAFETY: `zeros` is readable; max is below the header's size.
        let error = unsafe { blob_at(zeros.as_ptr() as usize, 39) }.unwrap_err();
        assert_eq!(
            error.to_string(),
            "device tree: not a flattened device tree: 39 bytes long, shorter than its 40-byte \
             header"
        );
    }

    #[test]
    fn a_truncated_tree_is_refused() {
        let error = parse(&GICV2[..GICV2.len() - 1]).unwrap_err();
        assert_eq!(
            error,
            DeviceTreeError::TooLarge {
                size: GICV2.len(),
                max: GICV2.len() - 1,
            }
        );
    }

    #[test]
    fn no_cut_or_flipped_byte_makes_parse_panic() {
        // fdt 0.1.5 panics on some malformed input; `structure::validate`
        // must catch all of it. Every prefix, and every single-byte change.
        for length in 0..GICV2.len() {
            assert!(parse(&GICV2[..length]).is_err(), "prefix of {length} bytes");
        }
        let mut blob = GICV2.to_vec();
        let mut refused = 0;
        for offset in 0..blob.len() {
            for flip in [0xff, 0x01, 0x80] {
                blob[offset] ^= flip;
                refused += usize::from(parse(&blob).is_err());
                blob[offset] ^= flip;
            }
        }
        // Most changes land in a value (an address, an rng seed) and leave a
        // readable tree; flipped magic, sizes and tokens must be refused.
        assert!(refused > 3 * 40, "only {refused} changes refused");
        assert_eq!(parse(&blob), Ok(virt_1g()));
    }

    #[test]
    fn each_difference_is_named() {
        let expected = Expected::qemu_virt(GIB);
        let named = |machine: VirtMachine| check(&machine, &expected).unwrap_err().to_string();
        // A board built with GICH where GICV is.
        let mut misbuilt = expected;
        misbuilt.gic.hyp_interface = (0x0804_0000, 0x1_0000);
        assert_eq!(
            check(&virt_1g(), &misbuilt).unwrap_err().to_string(),
            "device tree: the GIC's hypervisor interface is at 0x08030000 (0x10000 bytes), the \
             board expects 0x08040000 (at least 0x10000 bytes)"
        );
        // The first difference, in the order of `VirtMachine`.
        let mut machine = virt_1g();
        machine.gic.virtual_cpu_interface = (0x0803_0000, 0x1_0000);
        machine.uart_interrupt = 34;
        assert_eq!(
            named(machine),
            "device tree: the GIC's virtual CPU interface is at 0x08030000 (0x10000 bytes), the \
             board expects 0x08040000 (at least 0x10000 bytes)"
        );
        machine = virt_1g();
        machine.gic.cpu_interface.1 = 0x2000;
        assert_eq!(
            named(machine),
            "device tree: the GIC's CPU interface is at 0x08010000 (0x2000 bytes), the board \
             expects 0x08010000 (at least 0x10000 bytes)"
        );
        machine = virt_1g();
        machine.uart.1 = 0x2000;
        assert_eq!(
            check(&machine, &expected),
            Ok(()),
            "a larger window is fine"
        );
        machine = VirtMachine {
            ram_base: 0x8000_0000,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: RAM is 1 GiB at 0x80000000, the board expects it at 0x40000000"
        );
        machine = VirtMachine {
            maintenance_interrupt: 26,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: the GIC maintenance interrupt is 26 (PPI 10), the board expects 25 \
             (PPI 9)"
        );
        machine = VirtMachine {
            uart_interrupt: 37,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: the PL011's interrupt is 37 (SPI 5), the board expects 33 (SPI 1)"
        );
        machine = VirtMachine {
            timer_interrupts: [29, 30, 27, 28],
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: the hypervisor timer's interrupt is 28 (PPI 12), the board expects 26 \
             (PPI 10)"
        );
        machine = VirtMachine {
            uart_clock_hz: 12_000_000,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: the PL011's clock runs at 12000000 Hz, the board expects 24000000 Hz"
        );
        machine = VirtMachine {
            psci_method: PsciMethod::Hvc,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: PSCI is called by HVC, the board calls it by SMC"
        );
        machine = VirtMachine {
            psci_method: PsciMethod::None,
            ..virt_1g()
        };
        assert_eq!(
            named(machine),
            "device tree: there is no /psci node, the board calls PSCI by SMC"
        );
        let without_psci = Expected {
            psci_method: PsciMethod::None,
            ..expected
        };
        assert_eq!(check(&machine, &without_psci), Ok(()));
    }

    // Hand-made trees, for what QEMU's never show.

    /// A node or property of a tree to flatten.
    enum Item {
        Property(&'static str, Vec<u8>),
        Node(&'static str, Vec<Item>),
        Nop,
    }

    fn cells(values: &[u32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_be_bytes())
            .collect()
    }

    fn string(value: &str) -> Vec<u8> {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        bytes
    }

    fn property(name: &'static str, value: Vec<u8>) -> Item {
        Item::Property(name, value)
    }

    fn node(name: &'static str, items: Vec<Item>) -> Item {
        Item::Node(name, items)
    }

    /// The blob of a tree whose root holds `items`: header, an empty memory
    /// reservation block, structure, strings (each property name once).
    fn flatten(items: Vec<Item>) -> Vec<u8> {
        fn emit(item: &Item, structure: &mut Vec<u8>, strings: &mut Vec<u8>) {
            let align =
                |structure: &mut Vec<u8>| structure.resize(structure.len().next_multiple_of(4), 0);
            match item {
                Item::Property(name, value) => {
                    let offset = strings
                        .windows(name.len() + 1)
                        .position(|window| window == string(name))
                        .unwrap_or_else(|| {
                            strings.extend(string(name));
                            strings.len() - name.len() - 1
                        });
                    structure.extend(cells(&[3, value.len() as u32, offset as u32]));
                    structure.extend(value);
                    align(structure);
                }
                Item::Node(name, items) => {
                    structure.extend(cells(&[1]));
                    structure.extend(string(name));
                    align(structure);
                    for item in items {
                        emit(item, structure, strings);
                    }
                    structure.extend(cells(&[2]));
                }
                Item::Nop => structure.extend(cells(&[4])),
            }
        }
        let (mut structure, mut strings) = (Vec::new(), Vec::new());
        emit(&node("", items), &mut structure, &mut strings);
        structure.extend(cells(&[9]));
        let structure_offset = 40 + 16;
        let strings_offset = structure_offset + structure.len();
        let total = strings_offset + strings.len();
        let mut blob = cells(&[
            0xd00d_feed,
            total as u32,
            structure_offset as u32,
            strings_offset as u32,
            40,
            17,
            16,
            0,
            strings.len() as u32,
            structure.len() as u32,
        ]);
        blob.extend([0; 16]);
        blob.extend(structure);
        blob.extend(strings);
        blob
    }

    /// A PL011 with its two clocks.
    fn pl011(name: &'static str, base: u32, spi: u32, clocks: &[u32]) -> Item {
        node(
            name,
            vec![
                property("compatible", string("arm,pl011\0arm,primecell")),
                property("reg", cells(&[base, 0x1000])),
                property("interrupts", cells(&[0, spi, 4])),
                property("clocks", cells(clocks)),
                property("clock-names", string("uartclk\0apb_pclk")),
            ],
        )
    }

    fn fixed_clock(name: &'static str, phandle: u32, hz: u32) -> Item {
        node(
            name,
            vec![
                property("compatible", string("fixed-clock")),
                property("#clock-cells", cells(&[0])),
                property("clock-frequency", cells(&[hz])),
                property("phandle", cells(&[phandle])),
            ],
        )
    }

    /// A `vexpress-a15`-like tree with one-cell addresses: two PL011s (the
    /// second the console, through an alias with options), two clocks, three
    /// CPUs, PSCI by HVC.
    fn express() -> Vec<Item> {
        vec![
            property("#address-cells", cells(&[1])),
            property("#size-cells", cells(&[1])),
            property("interrupt-parent", cells(&[1])),
            node(
                "psci",
                vec![
                    property("compatible", string("arm,psci-0.2")),
                    property("method", string("hvc")),
                ],
            ),
            node(
                "memory@80000000",
                vec![
                    property("device_type", string("memory")),
                    property("reg", cells(&[0x8000_0000, 0x1000_0000])),
                ],
            ),
            node(
                "interrupt-controller@2c001000",
                vec![
                    property("compatible", string("arm,cortex-a15-gic")),
                    property("#interrupt-cells", cells(&[3])),
                    property("interrupt-controller", Vec::new()),
                    property("phandle", cells(&[1])),
                    property(
                        "reg",
                        cells(&[
                            0x2c00_1000,
                            0x1000,
                            0x2c00_2000,
                            0x2000,
                            0x2c00_4000,
                            0x2000,
                            0x2c00_6000,
                            0x2000,
                        ]),
                    ),
                    property("interrupts", cells(&[1, 9, 0xf04])),
                ],
            ),
            fixed_clock("clock-24", 2, 24_000_000),
            fixed_clock("clock-12", 3, 12_000_000),
            pl011("uart@1c090000", 0x1c09_0000, 5, &[3, 2]),
            pl011("uart@1c0a0000", 0x1c0a_0000, 6, &[2, 3]),
            node(
                "timer",
                vec![
                    property("compatible", string("arm,armv7-timer")),
                    property(
                        "interrupts",
                        cells(&[1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08]),
                    ),
                ],
            ),
            node(
                "cpus",
                vec![
                    property("#address-cells", cells(&[1])),
                    property("#size-cells", cells(&[0])),
                    node("cpu-map", vec![node("cluster0", Vec::new())]),
                    node("cpu@0", vec![property("reg", cells(&[0]))]),
                    node("cpu@1", vec![property("reg", cells(&[1]))]),
                    node("cpu@2", vec![property("reg", cells(&[2]))]),
                ],
            ),
            node(
                "aliases",
                vec![property("serial1", string("/uart@1c0a0000"))],
            ),
            node(
                "chosen",
                vec![property("stdout-path", string("serial1:115200n8"))],
            ),
        ]
    }

    fn express_machine() -> VirtMachine {
        VirtMachine {
            ram_base: 0x8000_0000,
            ram_size: 0x1000_0000,
            gic: GicWindows {
                distributor: (0x2c00_1000, 0x1000),
                cpu_interface: (0x2c00_2000, 0x2000),
                hyp_interface: (0x2c00_4000, 0x2000),
                virtual_cpu_interface: (0x2c00_6000, 0x2000),
            },
            maintenance_interrupt: 25,
            uart: (0x1c0a_0000, 0x1000),
            uart_interrupt: 38,
            uart_clock_hz: 24_000_000,
            timer_interrupts: [29, 30, 27, 26],
            psci_method: PsciMethod::Hvc,
            cpus: 3,
        }
    }

    /// The items of the node `name` of `items`.
    fn children<'a>(items: &'a mut [Item], name: &str) -> &'a mut Vec<Item> {
        items
            .iter_mut()
            .find_map(|item| match item {
                Item::Node(node, children) if *node == name => Some(children),
                _ => None,
            })
            .unwrap()
    }

    /// Replaces property `name` of `items`, or adds it after the others.
    fn set(items: &mut Vec<Item>, name: &'static str, value: Vec<u8>) {
        let position = items.iter().position(|item| match item {
            Item::Property(property, _) => *property == name,
            _ => true,
        });
        match position {
            Some(index) if matches!(&items[index], Item::Property(..)) => {
                items[index] = property(name, value)
            }
            Some(index) => items.insert(index, property(name, value)),
            None => items.push(property(name, value)),
        }
    }

    #[test]
    fn the_console_is_the_pl011_stdout_path_names() {
        assert_eq!(parse(&flatten(express())), Ok(express_machine()));
        // By absolute path; the first PL011's `uartclk` is the 12 MHz clock.
        let mut items = express();
        set(
            children(&mut items, "chosen"),
            "stdout-path",
            string("/uart@1c090000"),
        );
        let first = VirtMachine {
            uart: (0x1c09_0000, 0x1000),
            uart_interrupt: 37,
            uart_clock_hz: 12_000_000,
            ..express_machine()
        };
        assert_eq!(parse(&flatten(items)), Ok(first));
        // Naming something that is not a PL011, or nothing: the first PL011.
        let mut items = express();
        set(
            children(&mut items, "chosen"),
            "stdout-path",
            string("/timer"),
        );
        assert_eq!(parse(&flatten(items)), Ok(first));
        let mut items = express();
        set(
            children(&mut items, "aliases"),
            "serial1",
            string("serial1"),
        );
        assert_eq!(parse(&flatten(items)), Ok(first));
        let mut items = express();
        children(&mut items, "chosen").clear();
        assert_eq!(parse(&flatten(items)), Ok(first));
    }

    #[test]
    fn another_machine_is_named_by_its_ram() {
        let machine = parse(&flatten(express())).unwrap();
        assert_eq!(
            check(&machine, &Expected::qemu_virt(GIB))
                .unwrap_err()
                .to_string(),
            "device tree: RAM is 256 MiB at 0x80000000, the board expects it at 0x40000000"
        );
    }

    /// The message `parse` gives for the tree `items`.
    fn refusal(items: Vec<Item>) -> String {
        parse(&flatten(items)).unwrap_err().to_string()
    }

    #[test]
    fn psci_is_optional_but_its_method_is_not() {
        let mut items = express();
        items.retain(|item| !matches!(item, Item::Node("psci", _)));
        let machine = parse(&flatten(items)).unwrap();
        assert_eq!(machine.psci_method, PsciMethod::None);
        let mut items = express();
        children(&mut items, "psci").retain(|item| !matches!(item, Item::Property("method", _)));
        assert_eq!(
            refusal(items),
            "device tree: property \"method\" of psci is missing"
        );
        let mut items = express();
        set(children(&mut items, "psci"), "method", string("svc"));
        assert_eq!(
            refusal(items),
            "device tree: property \"method\" of psci is not \"smc\" or \"hvc\""
        );
    }

    #[test]
    fn the_uart_clock_must_be_a_fixed_clock_that_exists() {
        let mut items = express();
        set(
            children(&mut items, "uart@1c0a0000"),
            "clocks",
            cells(&[9, 2]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"clocks\" of uart@1c0a0000 names phandle 0x9, which no node has"
        );
        let mut items = express();
        set(
            children(&mut items, "clock-24"),
            "#clock-cells",
            cells(&[1]),
        );
        set(
            children(&mut items, "uart@1c0a0000"),
            "clocks",
            cells(&[2, 0, 3]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"clocks\" of uart@1c0a0000 names a clock with arguments, \
             only fixed clocks (#clock-cells = 0) are understood"
        );
        // With the 12 MHz clock's argument-less entry second, it is found past
        // the first clock's argument cell.
        let mut items = express();
        set(
            children(&mut items, "clock-24"),
            "#clock-cells",
            cells(&[1]),
        );
        set(
            children(&mut items, "uart@1c0a0000"),
            "clocks",
            cells(&[2, 0, 3]),
        );
        set(
            children(&mut items, "uart@1c0a0000"),
            "clock-names",
            string("apb_pclk\0uartclk"),
        );
        assert_eq!(parse(&flatten(items)).unwrap().uart_clock_hz, 12_000_000);
        let mut items = express();
        set(
            children(&mut items, "uart@1c0a0000"),
            "clock-names",
            string("apb_pclk\0uartclk"),
        );
        set(children(&mut items, "uart@1c0a0000"), "clocks", cells(&[2]));
        assert_eq!(
            refusal(items),
            "device tree: property \"clocks\" of uart@1c0a0000 has 1 entry, 2 are needed: one \
             for each of clock-names"
        );
        let mut items = express();
        children(&mut items, "clock-24")
            .retain(|item| !matches!(item, Item::Property("clock-frequency", _)));
        assert_eq!(
            refusal(items),
            "device tree: property \"clock-frequency\" of clock-24 is missing"
        );
    }

    #[test]
    fn interrupts_are_gic_specifiers() {
        let mut items = express();
        set(
            children(&mut items, "uart@1c0a0000"),
            "interrupts",
            cells(&[2, 6, 4]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"interrupts\" of uart@1c0a0000 entry 0 is neither an SPI nor a \
             PPI"
        );
        let mut items = express();
        set(
            children(&mut items, "timer"),
            "interrupts",
            cells(&[1, 13, 8, 1, 14, 8, 1, 16, 8, 1, 10, 8]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"interrupts\" of timer entry 2 is neither an SPI nor a PPI"
        );
        let mut items = express();
        set(
            children(&mut items, "timer"),
            "interrupts",
            cells(&[1, 13, 8, 1, 14, 8, 1, 11, 8]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"interrupts\" of timer has 3 entries, 4 are needed: secure \
             physical, non-secure physical, virtual, hyp"
        );
        let mut items = express();
        set(children(&mut items, "timer"), "interrupts", cells(&[1, 13]));
        assert_eq!(
            refusal(items),
            "device tree: property \"interrupts\" of timer is 8 bytes long, not a whole number of \
             entries"
        );
        let mut items = express();
        set(
            children(&mut items, "interrupt-controller@2c001000"),
            "#interrupt-cells",
            cells(&[2]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"#interrupt-cells\" of interrupt-controller@2c001000 is not 3"
        );
    }

    #[test]
    fn reg_is_read_with_the_parents_cells() {
        let mut items = express();
        set(&mut items, "#address-cells", cells(&[3]));
        let reg = cells(&[0, 0, 0x8000_0000, 0x1000_0000]);
        set(children(&mut items, "memory@80000000"), "reg", reg);
        assert_eq!(
            refusal(items),
            "device tree: property \"reg\" of memory@80000000 uses 3 address and 1 size cells, \
             only 1 or 2 of each are understood"
        );
        let mut items = express();
        set(
            children(&mut items, "memory@80000000"),
            "reg",
            cells(&[0x8000_0000]),
        );
        assert_eq!(
            refusal(items),
            "device tree: property \"reg\" of memory@80000000 is 4 bytes long, not a whole number \
             of entries"
        );
        let mut items = express();
        set(children(&mut items, "memory@80000000"), "reg", Vec::new());
        assert_eq!(
            refusal(items),
            "device tree: property \"reg\" of memory@80000000 has 0 entries, 1 is needed: the RAM"
        );
    }

    #[test]
    fn required_nodes_are_named() {
        let mut items = express();
        items.retain(|item| !matches!(item, Item::Node("memory@80000000", _)));
        assert_eq!(refusal(items), "device tree: no /memory node");
        let mut items = express();
        items.retain(|item| !matches!(item, Item::Node("timer", _)));
        assert_eq!(
            refusal(items),
            "device tree: no node compatible with \"arm,armv7-timer\""
        );
        let mut items = express();
        items.retain(|item| !matches!(item, Item::Node("uart@1c090000" | "uart@1c0a0000", _)));
        assert_eq!(
            refusal(items),
            "device tree: no node compatible with \"arm,pl011\""
        );
        let mut items = express();
        children(&mut items, "cpus")
            .retain(|item| !matches!(item, Item::Node("cpu@0" | "cpu@1" | "cpu@2", _)));
        assert_eq!(refusal(items), "device tree: no /cpus/cpu node");
    }

    #[test]
    fn token_streams_fdt_cannot_read_are_refused() {
        let mut items = express();
        items.insert(0, Item::Nop);
        assert_eq!(
            refusal(items),
            "device tree: not a flattened device tree: the structure block is broken at offset \
             0x8: a NOP token (not accepted here)"
        );
        let mut items = express();
        items.push(property("late", Vec::new()));
        assert!(refusal(items).ends_with(": a property after a child node"));
        let mut deep = node("leaf", Vec::new());
        for _ in 0..32 {
            deep = node("level", vec![deep]);
        }
        let mut items = express();
        items.push(deep);
        assert!(refusal(items).ends_with(": nodes nest more than 32 deep"));
        let mut blob = flatten(express());
        blob[20..24].copy_from_slice(&16u32.to_be_bytes());
        assert_eq!(
            parse(&blob).unwrap_err().to_string(),
            "device tree: not a flattened device tree: header version 16 (compatible with 16), \
             this reader needs 17"
        );
        let mut blob = flatten(express());
        blob[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            parse(&blob).unwrap_err().to_string(),
            format!(
                "device tree: not a flattened device tree: the structure block lies outside the \
                 {:#x} bytes of the blob",
                blob.len()
            )
        );
    }

    #[test]
    fn long_node_names_are_cut_whole_characters() {
        assert_eq!(NodeName::new("").as_str(), "/");
        let long = "é".repeat(30);
        assert_eq!(NodeName::new(&long).as_str(), "é".repeat(24));
    }

    #[test]
    fn the_rtc_is_found_where_qemu_puts_it_or_not_at_all() {
        assert_eq!(
            rtc_window(GICV2),
            Ok(Some((crate::RTC_BASE as u64, 0x1000)))
        );
        assert_eq!(rtc_window(&flatten(express())), Ok(None));
        assert!(rtc_window(&GICV2[..100]).is_err());
    }
}
