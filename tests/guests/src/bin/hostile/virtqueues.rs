// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hostile guest's attack on its virtio-blk disk and its virtqueue.
//!
//! The VM's disk 0 (slot 0: 0x0a00_0000) is a writable image disk of 128
//! sectors holding the pattern `tests/tests/hostile.rs` writes (byte `i`
//! is `i * 7 + i / 512`). Every case checks the outcome the transport
//! documents (`capsules/src/virtio/{mmio,queue,blk}.rs`):
//! - a malformed queue (a descriptor outside the VM's RAM, a chain that
//!   loops, a bad size or area, an available index that runs ahead, an
//!   indirect descriptor) puts the device in DEVICE_NEEDS_RESET with a
//!   configuration interrupt, returns nothing, writes nothing (the
//!   status byte keeps 0xff; the first 256 bytes and the last page of
//!   this VM's RAM, watched, keep their contents), and the device works
//!   again after a reset (a read of sector 0 gives the pattern, so no
//!   refused write reached the disk either);
//! - a bad request (empty, not whole sectors, past the disk, a short
//!   header) completes with IOERR, an unknown type with UNSUPP;
//! - accesses the transport refuses (a byte or halfword below 0x100, an
//!   unaligned one, past the configuration space, LDM/STM) abort, and
//!   writes to read-only registers change nothing.
//!
//! Descriptors aim at the hypervisor's memory and the other VM's RAM as
//! host-physical addresses on both boards (pool at 0x8100_0000 on
//! Integrator/CP, 0x4100_0000 on QEMU virt: this VM first, the victim 2
//! MiB on, whose own checks see its image and data unchanged), at device
//! windows, past the end of RAM, and with lengths that wrap 2^32 or 2^64.
//!
//! An image disk completes a request within the QueueNotify write (the
//! RAM disk answers at once), and a VM's devices are reached under its
//! lock, so a reset from another vCPU waits for that write to end: a
//! reset cannot land in the middle of a request. The attack resets right
//! after the notify and checks the device came back clean
//! (`notifications_and_reset`); a reset while a disk holds a step is the
//! host test `a_reset_mid_request_drops_it_and_the_disk_gives_the_buffer_back`
//! in `capsules/src/virtio/blk.rs`.

use super::{aborts, alignment_fault, load_multiple, outcome, store_multiple, Tally};
use capvisor_test_guests::virtio::{
    ACKNOWLEDGE, CONFIG, CONFIG_GENERATION, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    DEVICE_FEATURES, DEVICE_FEATURES_SEL, DEVICE_ID, DRIVER, DRIVER_FEATURES, DRIVER_FEATURES_SEL,
    DRIVER_OK, FEATURES_OK, F_EVENT_IDX, F_FLUSH, F_HIGH_RING_PACKED, F_HIGH_VERSION_1,
    F_INDIRECT_DESC, INTERRUPT_ACK, INTERRUPT_STATUS, INT_CONFIG, INT_USED, MAGIC, NEEDS_RESET,
    QUEUE_DESC, QUEUE_DEVICE, QUEUE_DRIVER, QUEUE_NOTIFY, QUEUE_NUM, QUEUE_NUM_MAX, QUEUE_READY,
    QUEUE_SEL, RUNNING, SHM_LEN_LOW, STATUS, S_IOERR, S_OK, S_UNSUPP, T_IN, T_OUT, VENDOR_ID,
    VERSION,
};
use capvisor_test_guests::{println, read32, write32};

/// The disk's virtio-mmio window.
const SLOT: usize = 0x0a00_0000;
/// Slot 1: the VM claims it but has no disk there.
const EMPTY_SLOT: usize = 0x0a00_0200;

/// The disk's size in sectors.
const SECTORS: u64 = 128;
/// The queue's size.
const QUEUE: u16 = 8;

/// This VM's RAM.
const RAM_START: u64 = 0x4000_0000;
const RAM_END: u64 = 0x4020_0000;
/// The queue and the buffers, 1.5 MiB into RAM (past the image, its .bss
/// and stacks, which end below 0x4010_0000).
const AREA: u64 = 0x4018_0000;
const DESC: u64 = AREA;
const AVAIL: u64 = AREA + 0x800;
const USED: u64 = AREA + 0x1000;
const HEADER: u64 = AREA + 0x2000;
const STATUS_BYTE: u64 = AREA + 0x2100;
/// An indirect descriptor table.
const TABLE: u64 = AREA + 0x2200;
/// Data buffers: up to 64 KiB.
const DATA: u64 = AREA + 0x4000;
/// The last page of RAM, filled with [`watch_word`]: a device write that
/// crossed the end of RAM (or wrapped onto it) would show here.
const WATCH: u64 = RAM_END - 0x1000;
/// The first bytes of RAM (the image's header), checksummed: a device
/// write that crossed the start of RAM would show here.
const HEAD_BYTES: u64 = 256;

/// The GIC distributor and CPU interface, the PL011 and the PL031 as this
/// VM sees them.
const GICD: u64 = 0x0800_0000;
const GICC: u64 = 0x0801_0000;
const UART: u64 = 0x0900_0000;
const RTC: u64 = 0x0901_0000;

/// Where descriptors aim that the device must refuse: (name, address,
/// length).
const TARGETS: [(&str, u64, u32); 17] = [
    // The hypervisor: its image on Integrator/CP (and its alias at 0);
    // on QEMU virt its image follows this VM's RAM's IPA window.
    ("hypervisor image (integrator-cp)", 0x8000_0000, 512),
    ("hypervisor alias at 0", 0x0000_0000, 512),
    ("just past RAM (hypervisor on qemu-virt)", RAM_END, 512),
    // The victim VM's RAM (its image and data), 2 MiB into each pool.
    ("victim RAM (integrator-cp)", 0x8120_0000, 0x1_0000),
    ("victim RAM (qemu-virt)", 0x4120_0000, 0x1_0000),
    // Device windows, this disk's own among them.
    ("GIC distributor", GICD, 512),
    ("GIC CPU interface", GICC, 512),
    ("UART", UART, 512),
    ("RTC", RTC, 512),
    ("its own virtio window", SLOT as u64, 512),
    // Across the ends of RAM.
    ("across the end of RAM", RAM_END - 256, 512),
    ("across the start of RAM", RAM_START - 256, 512),
    // Lengths and addresses that wrap: 2^32 (a 32-bit sum would land at
    // 0x100), 2^64, a length of 4 GiB - 1 from inside RAM, and an
    // address above 4 GiB whose low word is the watched page.
    ("wrapping 2^32", 0xffff_ff00, 512),
    ("wrapping 2^64", 0xffff_ffff_ffff_fe00, 1024),
    ("a length of 4 GiB - 1 from RAM", AREA + 0x1_0000, u32::MAX),
    (
        "above 4 GiB, the watched page's low word",
        (1 << 32) | WATCH,
        512,
    ),
    // An empty buffer is still an address: outside RAM, refused.
    ("an empty buffer in the GIC", GICD, 0),
];

fn reg(offset: usize) -> u32 {
    // SAFETY: the virtio-mmio slot's window, device emulation.
    unsafe { read32(SLOT + offset) }
}

fn set_reg(offset: usize, value: u32) {
    // SAFETY: as for `reg`.
    unsafe { write32(SLOT + offset, value) }
}

fn poke<T>(address: u64, value: T) {
    // SAFETY: inside this guest's own RAM, in the areas no code or stack
    // uses (AREA, WATCH), naturally aligned.
    unsafe { core::ptr::write_volatile(address as usize as *mut T, value) }
}

fn peek<T>(address: u64) -> T {
    // SAFETY: this guest's own RAM, naturally aligned.
    unsafe { core::ptr::read_volatile(address as usize as *const T) }
}

/// A byte load (`ldrb`) from `address`.
fn load_byte(address: usize) -> u32 {
    let value: u32;
    // SAFETY: an access to the virtio window the transport may refuse
    // (the runtime skips it when it aborts).
    unsafe { core::arch::asm!("ldrb {v}, [{a}]", a = in(reg) address, v = out(reg) value) };
    value
}

/// A halfword load (`ldrh`) from `address`.
fn load_halfword(address: usize) -> u32 {
    let value: u32;
    // SAFETY: as for `load_byte`.
    unsafe { core::arch::asm!("ldrh {v}, [{a}]", a = in(reg) address, v = out(reg) value) };
    value
}

/// A word load (`ldr`) from `address`, which may be unaligned.
fn load_word(address: usize) -> u32 {
    let value: u32;
    // SAFETY: as for `load_byte`.
    unsafe { core::arch::asm!("ldr {v}, [{a}]", a = in(reg) address, v = out(reg) value) };
    value
}

/// A byte store (`strb`) of `value` to `address`.
fn store_byte(address: usize, value: u32) {
    // SAFETY: as for `load_byte`.
    unsafe { core::arch::asm!("strb {v}, [{a}]", a = in(reg) address, v = in(reg) value) };
}

/// A halfword store (`strh`) of `value` to `address`.
fn store_halfword(address: usize, value: u32) {
    // SAFETY: as for `load_byte`.
    unsafe { core::arch::asm!("strh {v}, [{a}]", a = in(reg) address, v = in(reg) value) };
}

/// A word store (`str`) of `value` to `address`, which may be unaligned.
fn store_word(address: usize, value: u32) {
    // SAFETY: as for `load_byte`.
    unsafe { core::arch::asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) value) };
}

/// The disk's byte at `offset`.
fn pattern(offset: u64) -> u8 {
    (offset as u32)
        .wrapping_mul(7)
        .wrapping_add(offset as u32 >> 9) as u8
}

fn watch_word(index: u64) -> u32 {
    (index as u32).wrapping_mul(0x2545_f491) ^ 0xc3c3_5a5a
}

/// A checksum of the first [`HEAD_BYTES`] of RAM.
fn head_checksum() -> u32 {
    (0..HEAD_BYTES / 4).fold(0u32, |sum, index| {
        sum.rotate_left(7) ^ peek::<u32>(RAM_START + 4 * index)
    })
}

/// The watched memory, set before the attack: the last page's pattern
/// and the checksum of the first bytes.
fn watch() -> u32 {
    for index in 0..0x400 {
        poke::<u32>(WATCH + 4 * index, watch_word(index));
    }
    head_checksum()
}

/// Whether the watched memory is as [`watch`] left it.
fn untouched(head: u32) -> bool {
    head_checksum() == head
        && (0..0x400).all(|index| peek::<u32>(WATCH + 4 * index) == watch_word(index))
}

/// One case: counted, and named on the console if it failed.
fn case(tally: &mut Tally, name: &str, ok: bool) {
    tally.case(ok);
    if !ok {
        println!("hostile: virtqueue case failed: {}", name);
    }
}

/// Zeroes the descriptor table and both rings.
fn clear_rings() {
    for offset in (0..HEADER - DESC).step_by(4) {
        poke::<u32>(DESC + offset, 0);
    }
}

/// Resets the device and negotiates `low` and `high` feature words;
/// whether FEATURES_OK held.
fn negotiate(low: u32, high: u32) -> bool {
    set_reg(STATUS, 0);
    set_reg(STATUS, ACKNOWLEDGE);
    set_reg(STATUS, ACKNOWLEDGE | DRIVER);
    set_reg(DRIVER_FEATURES_SEL, 0);
    set_reg(DRIVER_FEATURES, low);
    set_reg(DRIVER_FEATURES_SEL, 1);
    set_reg(DRIVER_FEATURES, high);
    set_reg(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    reg(STATUS) & FEATURES_OK != 0
}

/// A queue's setup: size and the three areas.
#[derive(Clone, Copy)]
struct Setup {
    size: u32,
    desc: u64,
    avail: u64,
    used: u64,
}

const GOOD: Setup = Setup {
    size: QUEUE as u32,
    desc: DESC,
    avail: AVAIL,
    used: USED,
};

/// Sets queue 0 up as `setup` says and asks for it to be ready; whether
/// it is.
fn set_queue(setup: Setup) -> bool {
    set_reg(QUEUE_SEL, 0);
    set_reg(QUEUE_NUM, setup.size);
    for (register, address) in [
        (QUEUE_DESC, setup.desc),
        (QUEUE_DRIVER, setup.avail),
        (QUEUE_DEVICE, setup.used),
    ] {
        set_reg(register, address as u32);
        set_reg(register + 4, (address >> 32) as u32);
    }
    set_reg(QUEUE_READY, 1);
    reg(QUEUE_READY) == 1
}

/// What a driver does: reset, negotiate FLUSH and VERSION_1, a queue of
/// 8 at the area (rings zeroed), DRIVER_OK; whether every step held.
fn bring_up() -> bool {
    clear_rings();
    negotiate(F_FLUSH, F_HIGH_VERSION_1) && set_queue(GOOD) && {
        set_reg(STATUS, RUNNING);
        reg(STATUS) == RUNNING
    }
}

fn descriptor(index: u16, address: u64, len: u32, flags: u16, next: u16) {
    let at = DESC + 16 * u64::from(index);
    poke::<u32>(at, address as u32);
    poke::<u32>(at + 4, (address >> 32) as u32);
    poke::<u32>(at + 8, len);
    poke::<u16>(at + 12, flags);
    poke::<u16>(at + 14, next);
}

/// The request header (and the status byte, 0xff until the device
/// writes it).
fn header(kind: u32, sector: u64) {
    poke::<u32>(HEADER, kind);
    poke::<u32>(HEADER + 4, 0);
    poke::<u32>(HEADER + 8, sector as u32);
    poke::<u32>(HEADER + 12, (sector >> 32) as u32);
    poke::<u8>(STATUS_BYTE, 0xff);
}

/// Makes `head` available (without notifying).
fn publish(head: u16) {
    let index: u16 = peek(AVAIL + 2);
    poke::<u16>(AVAIL + 4 + 2 * u64::from(index % QUEUE), head);
    poke::<u16>(AVAIL + 2, index.wrapping_add(1));
}

/// What the device did with what was offered.
#[derive(Clone, Copy)]
struct Seen {
    /// Used-ring entries added.
    returned: u16,
    /// The last used entry: id and length.
    id: u32,
    len: u32,
    /// The status byte.
    status: u8,
    /// The device's Status register.
    device: u32,
    /// InterruptStatus (then acknowledged).
    interrupt: u32,
}

impl Seen {
    /// Since the used index was `used_before`.
    fn since(used_before: u16) -> Seen {
        let used: u16 = peek(USED + 2);
        let last = u64::from(used.wrapping_sub(1) % QUEUE);
        let interrupt = reg(INTERRUPT_STATUS);
        set_reg(INTERRUPT_ACK, interrupt);
        Seen {
            returned: used.wrapping_sub(used_before),
            id: peek(USED + 4 + 8 * last),
            len: peek(USED + 8 + 8 * last),
            status: peek(STATUS_BYTE),
            device: reg(STATUS),
            interrupt,
        }
    }

    /// A malformed queue: DEVICE_NEEDS_RESET with a configuration
    /// interrupt, nothing returned, no status written.
    fn malformed(&self) -> bool {
        self.returned == 0
            && self.status == 0xff
            && self.device & NEEDS_RESET != 0
            && self.interrupt & INT_CONFIG != 0
    }

    /// Chain 0 came back with `status` and `len` bytes written, with a
    /// used-buffer interrupt, the device still running.
    fn completed(&self, status: u8, len: u32) -> bool {
        self.returned == 1
            && self.id == 0
            && self.len == len
            && self.status == status
            && self.device == RUNNING
            && self.interrupt == INT_USED
    }

    /// Nothing happened.
    fn ignored(&self) -> bool {
        self.returned == 0
            && self.status == 0xff
            && self.device & NEEDS_RESET == 0
            && self.interrupt == 0
    }
}

/// Offers chain 0 and notifies queue 0.
fn submit() -> Seen {
    let used_before: u16 = peek(USED + 2);
    publish(0);
    set_reg(QUEUE_NOTIFY, 0);
    Seen::since(used_before)
}

/// A request of `kind` at `sector` with one data buffer of `len` bytes
/// at `address` (device-writable if `into_guest`), as descriptors 0-2.
fn request(kind: u32, sector: u64, address: u64, len: u32, into_guest: bool) -> Seen {
    header(kind, sector);
    let flags = if into_guest { DESC_F_WRITE } else { 0 };
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    descriptor(1, address, len, flags | DESC_F_NEXT, 2);
    descriptor(2, STATUS_BYTE, 1, DESC_F_WRITE, 0);
    submit()
}

/// Whether `len` bytes at DATA are the disk's from `sector` on.
fn data_is_pattern(sector: u64, len: u64) -> bool {
    (0..len).all(|n| peek::<u8>(DATA + n) == pattern(sector * 512 + n))
}

fn clear_data(len: u64) {
    for offset in (0..len).step_by(4) {
        poke::<u32>(DATA + offset, 0);
    }
}

/// A read of sector 0: completes with its pattern.
fn reads_sector_0() -> bool {
    clear_data(512);
    request(T_IN, 0, DATA, 512, true).completed(S_OK, 513) && data_is_pattern(0, 512)
}

/// The driver resets the device and brings it up again: it reads sector
/// 0, still the pattern (nothing refused reached the disk).
fn recovers() -> bool {
    bring_up() && reads_sector_0()
}

/// A malformed queue seen, the watched memory untouched, and the device
/// back after a reset.
fn contained(seen: Seen, head: u32) -> bool {
    seen.malformed() && untouched(head) && recovers()
}

/// The attack: nothing if this VM has no disk in slot 0 (the soak's
/// hostile VM); otherwise 130 cases, which `tests/tests/hostile.rs`
/// counts section by section.
pub fn attack(tally: &mut Tally) {
    let mut id = 0;
    if outcome(|| id = reg(DEVICE_ID)).is_some() || id != 2 {
        return;
    }
    let head = watch();
    registers(tally);
    negotiation(tally, head);
    queue_setup(tally, head);
    descriptors(tally, head);
    chains(tally, head);
    requests(tally);
    notifications_and_reset(tally);
    empty_slot(tally);
    // Left reset: status 0, no queue, the line low.
    set_reg(STATUS, 0);
    case(tally, "the watched memory at the end", untouched(head));
}

/// Writes to read-only registers, and accesses of sizes and offsets the
/// transport refuses.
fn registers(tally: &mut Tally) {
    case(tally, "bring-up", bring_up());
    for offset in [
        MAGIC,
        VERSION,
        DEVICE_ID,
        VENDOR_ID,
        DEVICE_FEATURES,
        QUEUE_NUM_MAX,
        INTERRUPT_STATUS,
        SHM_LEN_LOW,
        CONFIG_GENERATION,
        CONFIG,
    ] {
        let before = reg(offset);
        let absorbed = outcome(|| set_reg(offset, !before)).is_none();
        case(
            tally,
            "a read-only register written",
            absorbed && reg(offset) == before && reg(STATUS) == RUNNING,
        );
    }
    // Below 0x100 only words: a byte or halfword aborts, and a refused
    // write has no effect (a byte of 0 into Status would be a reset).
    case(
        tally,
        "ldrb Status",
        aborts(|| {
            load_byte(SLOT + STATUS);
        }),
    );
    case(
        tally,
        "ldrh MagicValue",
        aborts(|| {
            load_halfword(SLOT + MAGIC);
        }),
    );
    case(
        tally,
        "strb 0 to Status",
        aborts(|| store_byte(SLOT + STATUS, 0)) && reg(STATUS) == RUNNING,
    );
    case(
        tally,
        "strh QueueNotify",
        aborts(|| store_halfword(SLOT + QUEUE_NOTIFY, 0)),
    );
    case(
        tally,
        "unaligned ldr",
        alignment_fault(|| {
            load_word(SLOT + 2);
        }),
    );
    case(
        tally,
        "unaligned str to Status",
        alignment_fault(|| store_word(SLOT + STATUS + 1, 0)) && reg(STATUS) == RUNNING,
    );
    // The configuration space takes any aligned size up to a word:
    // capacity's low byte (128) and seg_max's low half (126).
    let mut byte = 0;
    let completed = outcome(|| byte = load_byte(SLOT + CONFIG)).is_none();
    case(tally, "ldrb capacity", completed && byte == 128);
    let mut half = 0;
    let completed = outcome(|| half = load_halfword(SLOT + CONFIG + 0xc)).is_none();
    case(tally, "ldrh seg_max", completed && half == 126);
    case(
        tally,
        "unaligned ldrh in the configuration",
        alignment_fault(|| {
            load_halfword(SLOT + CONFIG + 1);
        }),
    );
    // Past virtio_blk_config (0x3c bytes): nothing there.
    case(
        tally,
        "past the configuration",
        aborts(|| {
            load_word(SLOT + CONFIG + 0x3c);
        }),
    );
    case(
        tally,
        "the window's last word",
        aborts(|| {
            load_word(SLOT + 0x1fc);
        }),
    );
    // No syndrome: not emulated.
    case(tally, "ldm", aborts(|| load_multiple(SLOT as u32)));
    case(
        tally,
        "stm to Status",
        aborts(|| store_multiple((SLOT + STATUS) as u32)) && reg(STATUS) == RUNNING,
    );
}

/// Feature negotiation abuse, and queue setup around DRIVER_OK.
fn negotiation(tally: &mut Tally, head: u32) {
    set_reg(DEVICE_FEATURES_SEL, 0);
    let low = reg(DEVICE_FEATURES);
    set_reg(DEVICE_FEATURES_SEL, 1);
    let high = reg(DEVICE_FEATURES);
    case(
        tally,
        "INDIRECT_DESC, EVENT_IDX and RING_PACKED not offered",
        low & (F_INDIRECT_DESC | F_EVENT_IDX) == 0
            && high & F_HIGH_RING_PACKED == 0
            && high & F_HIGH_VERSION_1 != 0,
    );
    // FEATURES_OK for features not offered, or without VERSION_1: it
    // stays clear.
    for (name, low, high) in [
        (
            "FEATURES_OK with INDIRECT_DESC",
            F_FLUSH | F_INDIRECT_DESC,
            1,
        ),
        ("FEATURES_OK with EVENT_IDX", F_EVENT_IDX, 1),
        (
            "FEATURES_OK with RING_PACKED",
            F_FLUSH,
            F_HIGH_VERSION_1 | F_HIGH_RING_PACKED,
        ),
        ("FEATURES_OK without VERSION_1", F_FLUSH, 0),
    ] {
        case(
            tally,
            name,
            !negotiate(low, high) && reg(STATUS) == ACKNOWLEDGE | DRIVER,
        );
    }
    // DRIVER_OK without FEATURES_OK: it does not hold, and a request
    // made available and notified is not served.
    clear_rings();
    set_reg(STATUS, 0);
    set_reg(STATUS, ACKNOWLEDGE | DRIVER);
    let ready = set_queue(GOOD);
    set_reg(STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK);
    let status = reg(STATUS);
    let seen = request(T_IN, 0, DATA, 512, true);
    case(
        tally,
        "DRIVER_OK without FEATURES_OK",
        ready && status == ACKNOWLEDGE | DRIVER && seen.ignored(),
    );
    // INDIRECT_DESC written after FEATURES_OK is not negotiated: an
    // indirect descriptor (a well-formed table in RAM) is still
    // malformed.
    case(tally, "bring-up", bring_up());
    set_reg(DRIVER_FEATURES_SEL, 0);
    set_reg(DRIVER_FEATURES, F_FLUSH | F_INDIRECT_DESC);
    header(T_IN, 0);
    for (index, (address, len, flags)) in [
        (HEADER, 16, DESC_F_NEXT),
        (DATA, 512, DESC_F_WRITE | DESC_F_NEXT),
        (STATUS_BYTE, 1, DESC_F_WRITE),
    ]
    .into_iter()
    .enumerate()
    {
        let at = TABLE + 16 * index as u64;
        poke::<u32>(at, address as u32);
        poke::<u32>(at + 4, 0);
        poke::<u32>(at + 8, len);
        poke::<u16>(at + 12, flags);
        poke::<u16>(at + 14, index as u16 + 1);
    }
    descriptor(0, TABLE, 48, DESC_F_INDIRECT, 0);
    case(tally, "an indirect descriptor", contained(submit(), head));
    // After DRIVER_OK a ready queue's registers ignore writes, and it
    // keeps working.
    set_reg(QUEUE_NUM, 256);
    set_reg(QUEUE_DESC, GICD as u32);
    set_reg(QUEUE_DEVICE, 0x8000_0000);
    let kept = reg(QUEUE_NUM) == u32::from(QUEUE)
        && reg(QUEUE_DESC) == DESC as u32
        && reg(QUEUE_DEVICE) == USED as u32;
    case(
        tally,
        "a ready queue's registers after DRIVER_OK",
        kept && reads_sector_0(),
    );
    // A queue set up again after DRIVER_OK is checked as at first: into
    // the GIC, malformed; in RAM, it works (its indices start again).
    header(T_IN, 0);
    set_reg(QUEUE_READY, 0);
    set_reg(QUEUE_DESC, GICD as u32);
    set_reg(QUEUE_READY, 1);
    let seen = Seen::since(peek(USED + 2));
    case(
        tally,
        "a queue set up again into the GIC",
        reg(QUEUE_READY) == 0 && contained(seen, head),
    );
    set_reg(QUEUE_READY, 0);
    clear_rings();
    case(
        tally,
        "a queue set up again in RAM",
        set_queue(GOOD) && reads_sector_0(),
    );
    // Queues the device does not have: QueueNumMax 0, nothing can be set
    // or made ready, queue 0 untouched.
    for select in [1, 2, 0xffff, u32::MAX] {
        set_reg(QUEUE_SEL, select);
        let max = reg(QUEUE_NUM_MAX);
        set_reg(QUEUE_NUM, u32::from(QUEUE));
        set_reg(QUEUE_DESC, DESC as u32);
        set_reg(QUEUE_READY, 1);
        case(
            tally,
            "an absent queue selected",
            max == 0 && reg(QUEUE_NUM) == 0 && reg(QUEUE_READY) == 0 && reg(STATUS) == RUNNING,
        );
    }
    set_reg(QUEUE_SEL, 0);
    case(
        tally,
        "queue 0 after the absent ones",
        reg(QUEUE_READY) == 1 && reg(QUEUE_NUM) == u32::from(QUEUE) && reads_sector_0(),
    );
}

/// Queue sizes and areas the device must refuse at QueueReady, and ring
/// indices it must refuse at QueueNotify.
fn queue_setup(tally: &mut Tally, head: u32) {
    let sizes = [0, 3, 100, 256, u32::MAX];
    let areas = [
        // Misaligned (16, 2 and 4 bytes are required).
        (DESC + 8, AVAIL, USED),
        (DESC, AVAIL + 1, USED),
        (DESC, AVAIL, USED + 2),
        // Outside RAM, across its end, above 4 GiB.
        (GICD, AVAIL, USED),
        (DESC, 0x8000_0000, USED),
        (DESC, AVAIL, RAM_END - 16),
        (RAM_END - 0x70, AVAIL, USED),
        ((1 << 32) | DESC, AVAIL, USED),
    ];
    let setups = sizes
        .into_iter()
        .map(|size| Setup { size, ..GOOD })
        .chain(areas.into_iter().map(|(desc, avail, used)| Setup {
            desc,
            avail,
            used,
            ..GOOD
        }));
    for setup in setups {
        clear_rings();
        header(T_IN, 0);
        let negotiated = negotiate(F_FLUSH, F_HIGH_VERSION_1);
        let ready = set_queue(setup);
        let seen = Seen::since(peek(USED + 2));
        case(
            tally,
            "a bad queue setup",
            negotiated && !ready && reg(QUEUE_READY) == 0 && contained(seen, head),
        );
    }
    // The available index runs ahead by more than the queue holds; a head
    // index not below the size.
    for (index, entry) in [(QUEUE + 1, 0), (0x8000, 0), (1, QUEUE), (1, 0xffff)] {
        let up = bring_up();
        header(T_IN, 0);
        descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
        descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
        descriptor(2, STATUS_BYTE, 1, DESC_F_WRITE, 0);
        poke::<u16>(AVAIL + 4, entry);
        poke::<u16>(AVAIL + 2, index);
        set_reg(QUEUE_NOTIFY, 0);
        case(
            tally,
            "a bad available index or head",
            up && contained(Seen::since(0), head),
        );
    }
}

/// Buffers outside RAM, for the device to write (a read request) and to
/// read (a write request), and headers and status bytes outside RAM.
fn descriptors(tally: &mut Tally, head: u32) {
    for (name, address, len) in TARGETS {
        for (kind, into_guest) in [(T_IN, true), (T_OUT, false)] {
            let up = bring_up();
            let seen = request(kind, 0, address, len, into_guest);
            case(tally, name, up && contained(seen, head));
        }
    }
    for (name, header_at, status_at) in [
        ("a header in the GIC", GICD, STATUS_BYTE),
        (
            "a header in the victim (integrator-cp)",
            0x8120_0000,
            STATUS_BYTE,
        ),
        (
            "a header in the victim (qemu-virt)",
            0x4120_0000,
            STATUS_BYTE,
        ),
        ("a status byte in the UART", HEADER, UART),
        ("a status byte past RAM", HEADER, RAM_END),
    ] {
        let up = bring_up();
        header(T_IN, 0);
        descriptor(0, header_at, 16, DESC_F_NEXT, 1);
        descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
        descriptor(2, status_at, 1, DESC_F_WRITE, 0);
        case(tally, name, up && contained(submit(), head));
    }
}

/// Chains that loop, run past the queue, break the order, or name
/// descriptors that do not exist; and the longest chain that is fine.
fn chains(tally: &mut Tally, head: u32) {
    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 0);
    case(
        tally,
        "a descriptor naming itself",
        up && contained(submit(), head),
    );

    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 0);
    case(tally, "a loop of two", up && contained(submit(), head));

    // Every descriptor of the queue, then the first again: nine.
    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    for index in 1..QUEUE {
        let data = DATA + 512 * u64::from(index - 1);
        descriptor(
            index,
            data,
            512,
            DESC_F_WRITE | DESC_F_NEXT,
            (index + 1) % QUEUE,
        );
    }
    case(
        tally,
        "a chain longer than the queue",
        up && contained(submit(), head),
    );

    // The longest chain there is: all eight (header, six sectors, status).
    let up = bring_up();
    clear_data(3072);
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    for index in 1..QUEUE - 1 {
        let data = DATA + 512 * u64::from(index - 1);
        descriptor(index, data, 512, DESC_F_WRITE | DESC_F_NEXT, index + 1);
    }
    descriptor(QUEUE - 1, STATUS_BYTE, 1, DESC_F_WRITE, 0);
    let seen = submit();
    case(
        tally,
        "a chain as long as the queue",
        up && seen.completed(S_OK, 3073) && data_is_pattern(0, 3072),
    );

    for next in [QUEUE, 0xffff] {
        let up = bring_up();
        header(T_IN, 0);
        descriptor(0, HEADER, 16, DESC_F_NEXT, next);
        case(
            tally,
            "a next beyond the queue",
            up && contained(submit(), head),
        );
    }

    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
    descriptor(2, DATA + 512, 16, DESC_F_NEXT, 3);
    descriptor(3, STATUS_BYTE, 1, DESC_F_WRITE, 0);
    case(
        tally,
        "a readable descriptor after a writable one",
        up && contained(submit(), head),
    );

    // A read into the queue's own descriptor table, then one into its used
    // ring: the device walked the chain before it wrote, so both complete
    // (the used entry written over the data), the data where it was sent.
    let up = bring_up();
    let seen = request(T_IN, 0, DESC, 512, true);
    case(
        tally,
        "a read into its own descriptor table",
        up && seen.completed(S_OK, 513) && (0..512).all(|n| peek::<u8>(DESC + n) == pattern(n)),
    );
    let up = bring_up();
    let seen = request(T_IN, 0, USED, 512, true);
    case(
        tally,
        "a read into its own used ring",
        up && seen.completed(S_OK, 513)
            && (12..512).all(|n| peek::<u8>(USED + n) == pattern(n))
            && reads_sector_0(),
    );

    // A device that needs a reset serves nothing until it gets one.
    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 0);
    let failed = submit().malformed();
    let seen = request(T_IN, 0, DATA, 512, true);
    case(
        tally,
        "nothing served before the reset",
        up && failed && seen.returned == 0 && seen.status == 0xff && recovers(),
    );
}

/// Well-formed chains with bad requests: IOERR, UNSUPP, or returned
/// empty when there is no byte for the status.
fn requests(tally: &mut Tally) {
    for (name, kind, sector, len, into_guest, status) in [
        ("an empty read", T_IN, 0, 0, true, S_IOERR),
        ("an empty write", T_OUT, 0, 0, false, S_IOERR),
        ("a read of 100 bytes", T_IN, 0, 100, true, S_IOERR),
        ("a write of 1000 bytes", T_OUT, 0, 1000, false, S_IOERR),
        ("a read past the disk", T_IN, SECTORS, 512, true, S_IOERR),
        (
            "a read across the end",
            T_IN,
            SECTORS - 1,
            1024,
            true,
            S_IOERR,
        ),
        (
            "a read at sector 2^64 - 1",
            T_IN,
            u64::MAX,
            512,
            true,
            S_IOERR,
        ),
        (
            "a write at sector 2^63",
            T_OUT,
            1 << 63,
            512,
            false,
            S_IOERR,
        ),
        ("an unknown type", 0x55, 0, 512, true, S_UNSUPP),
        ("type 0xffffffff", u32::MAX, 0, 512, true, S_UNSUPP),
    ] {
        let up = bring_up();
        let seen = request(kind, sector, DATA, len, into_guest);
        case(
            tally,
            name,
            up && seen.completed(status, 1) && reads_sector_0(),
        );
    }
    // A header of 8 bytes.
    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 8, DESC_F_NEXT, 1);
    descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
    descriptor(2, STATUS_BYTE, 1, DESC_F_WRITE, 0);
    case(
        tally,
        "a short header",
        up && submit().completed(S_IOERR, 1),
    );
    // No writable byte for the status: returned with nothing written.
    let up = bring_up();
    header(T_IN, 0);
    descriptor(0, HEADER, 16, 0, 0);
    let seen = submit();
    case(
        tally,
        "no room for the status",
        up && seen.returned == 1
            && seen.len == 0
            && seen.status == 0xff
            && seen.device == RUNNING
            && reads_sector_0(),
    );
}

/// Slot 1, claimed without a disk: a transport whose DeviceID reads 0
/// (as QEMU's unused ones); words written are absorbed and change
/// nothing, other sizes abort.
fn empty_slot(tally: &mut Tally) {
    // SAFETY: the empty slot's window, device emulation.
    let read = |offset: usize| unsafe { read32(EMPTY_SLOT + offset) };
    let identity = [read(MAGIC), read(VERSION), read(DEVICE_ID), read(VENDOR_ID)];
    case(
        tally,
        "the empty slot's identity",
        identity == [0x7472_6976, 2, 0, 0x5650_4143],
    );
    let mut absorbed = true;
    for (offset, value) in [
        (STATUS, RUNNING),
        (QUEUE_SEL, 0),
        (QUEUE_NUM, 8),
        (QUEUE_DESC, DESC as u32),
        (QUEUE_READY, 1),
        (QUEUE_NOTIFY, 0),
    ] {
        // SAFETY: as above.
        absorbed &= outcome(|| unsafe { write32(EMPTY_SLOT + offset, value) }).is_none();
    }
    case(
        tally,
        "the empty slot absorbs a driver's writes",
        absorbed
            && [
                STATUS,
                QUEUE_NUM_MAX,
                QUEUE_NUM,
                QUEUE_READY,
                INTERRUPT_STATUS,
            ]
            .iter()
            .all(|&offset| read(offset) == 0),
    );
    case(
        tally,
        "ldrb in the empty slot",
        aborts(|| {
            load_byte(EMPTY_SLOT + STATUS);
        }),
    );
}

/// Notifications of queues the device does not have, and a reset right
/// after a notification.
fn notifications_and_reset(tally: &mut Tally) {
    // A request made available but not notified: notifications of other
    // queues leave it alone; queue 0's serves it.
    let up = bring_up();
    clear_data(512);
    header(T_IN, 0);
    descriptor(0, HEADER, 16, DESC_F_NEXT, 1);
    descriptor(1, DATA, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
    descriptor(2, STATUS_BYTE, 1, DESC_F_WRITE, 0);
    publish(0);
    for queue in [1, 2, 0xffff, 0x1_0000, u32::MAX] {
        set_reg(QUEUE_NOTIFY, queue);
        case(
            tally,
            "a notification of an absent queue",
            up && Seen::since(0).ignored(),
        );
    }
    set_reg(QUEUE_NOTIFY, 0);
    let seen = Seen::since(0);
    case(
        tally,
        "then queue 0's",
        seen.completed(S_OK, 513) && data_is_pattern(0, 512),
    );

    // A reset right after a notification: the device is in its reset
    // state (status 0, no queue, no interrupt).
    header(T_IN, 1);
    publish(0);
    set_reg(QUEUE_NOTIFY, 0);
    set_reg(STATUS, 0);
    case(
        tally,
        "reset right after a notification",
        reg(STATUS) == 0
            && reg(QUEUE_READY) == 0
            && reg(QUEUE_NUM) == 0
            && reg(QUEUE_DESC) == 0
            && reg(INTERRUPT_STATUS) == 0,
    );
    // Set up again over the old rings (used index 2, available index 2),
    // the driver's available index back at 0: the device's indices start
    // again too, so the next request is served and is the used ring's
    // first entry.
    let negotiated = negotiate(F_FLUSH, F_HIGH_VERSION_1);
    let ready = set_queue(GOOD);
    set_reg(STATUS, RUNNING);
    let stale: u16 = peek(USED + 2);
    poke::<u16>(AVAIL + 2, 0);
    clear_data(512);
    header(T_IN, 0);
    publish(0);
    set_reg(QUEUE_NOTIFY, 0);
    let seen = Seen::since(0);
    case(
        tally,
        "no stale state after the reset",
        negotiated
            && ready
            && stale == 2
            && peek::<u16>(USED + 2) == 1
            && seen.completed(S_OK, 513)
            && data_is_pattern(0, 512),
    );
}
