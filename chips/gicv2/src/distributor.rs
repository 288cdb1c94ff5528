// SPDX-License-Identifier: MIT OR Apache-2.0
//! The GICv2 distributor (GICD): which interrupts reach which CPU, and how.
//!
//! The distributor holds, per interrupt id, the enable, pending and active
//! bits, the priority, the target CPUs (SPIs only) and the trigger mode. Set
//! and clear registers come in pairs (ISENABLER/ICENABLER, ...): writing 1
//! to a bit acts on that one interrupt and 0 bits do nothing, so the driver
//! writes a single bit and never reads back first. Priorities and targets
//! are one byte per id and are accessed as bytes, which GICv2 requires
//! implementations to support.
//!
//! Ids at or above [`MAX_INTERRUPTS`] (1020: the special ids and beyond) are
//! ignored by every setter and read as false / 0. Ids between
//! [`Distributor::lines`] and 1019 are not implemented by the GIC, whose
//! registers for them read as zero and ignore writes, so the driver does not
//! check them (that would cost a TYPER read per call).
//!
//! Security extensions: a GIC-400 has them, QEMU's virt GICv2 does not
//! (unless the machine is `secure=on`). The hypervisor runs Non-secure, so on
//! a GIC-400 it sees the Non-secure view, in which GICD_CTLR bit 0 enables
//! Group 1 and IGROUPR reads as zero and ignores writes (firmware has made
//! every interrupt Group 1, Non-secure). Writing CTLR = 1 and IGROUPR = 0 is
//! therefore right in both cases.
//!
//! ```no_run
//! use gicv2::Distributor;
//! // SAFETY: QEMU virt's GICD, mapped for the whole run, used only here.
//! let gicd = unsafe { Distributor::new(0x0800_0000) };
//! gicd.init();
//! gicd.set_priority(33, 0x80);
//! gicd.enable(33); // the PL011 on QEMU virt (SPI 1)
//! ```

use crate::{FIRST_SPI, MAX_INTERRUPTS, SGI_COUNT};
use hyp::utilities::StaticRef;
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

/// The priority [`Distributor::init`] gives every interrupt: the middle of
/// the range, so a board can rank interrupts above or below it.
pub const DEFAULT_PRIORITY: u8 = 0xa0;

register_structs! {
    /// The distributor register block (GICD).
    pub DistributorRegisters {
        (0x000 => ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x004 => typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x008 => iidr: ReadOnly<u32>),
        (0x00c => _reserved0),
        (0x080 => igroupr: [ReadWrite<u32>; 32]),
        (0x100 => isenabler: [ReadWrite<u32>; 32]),
        (0x180 => icenabler: [ReadWrite<u32>; 32]),
        (0x200 => ispendr: [ReadWrite<u32>; 32]),
        (0x280 => icpendr: [ReadWrite<u32>; 32]),
        (0x300 => isactiver: [ReadWrite<u32>; 32]),
        (0x380 => icactiver: [ReadWrite<u32>; 32]),
        (0x400 => ipriorityr: [ReadWrite<u8>; 1020]),
        (0x7fc => _reserved1),
        (0x800 => itargetsr: [ReadWrite<u8>; 1020]),
        (0xbfc => _reserved2),
        (0xc00 => icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved3),
        (0xf00 => sgir: WriteOnly<u32, GICD_SGIR::Register>),
        (0xf04 => _reserved4),
        (0xf10 => cpendsgir: [ReadWrite<u32>; 4]),
        (0xf20 => spendsgir: [ReadWrite<u32>; 4]),
        (0xf30 => _reserved5),
        (0xfd0 => id: [ReadOnly<u32>; 12]),
        (0x1000 => @END),
    }
}

register_bitfields![u32,
    GICD_CTLR [
        /// Forward interrupts to the CPU interfaces: Group 0 (no security
        /// extensions, or Secure view) or Group 1 (Non-secure view).
        ENABLE OFFSET(0) NUMBITS(1) [],
        /// Group 1 forwarding, in the view without security extensions.
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) []
    ],
    GICD_TYPER [
        /// Implemented interrupt ids: 32 * (ITLinesNumber + 1).
        IT_LINES_NUMBER OFFSET(0) NUMBITS(5) [],
        /// Implemented CPU interfaces, minus one.
        CPU_NUMBER OFFSET(5) NUMBITS(3) [],
        SECURITY_EXTN OFFSET(10) NUMBITS(1) [],
        LSPI OFFSET(11) NUMBITS(5) []
    ],
    GICD_SGIR [
        SGI_INTID OFFSET(0) NUMBITS(4) [],
        NSATT OFFSET(15) NUMBITS(1) [],
        CPU_TARGET_LIST OFFSET(16) NUMBITS(8) [],
        TARGET_LIST_FILTER OFFSET(24) NUMBITS(2) [
            /// The CPUs in CPU_TARGET_LIST.
            List = 0,
            AllButSelf = 1,
            SelfOnly = 2
        ]
    ]
];

/// The word index and bit mask of `id` in a one-bit-per-id register array,
/// or `None` for an id out of range.
fn bit(id: u32) -> Option<(usize, u32)> {
    (id < MAX_INTERRUPTS).then(|| ((id / 32) as usize, 1 << (id % 32)))
}

/// The GICv2 distributor.
#[derive(Debug)]
pub struct Distributor {
    registers: StaticRef<DistributorRegisters>,
}

impl Distributor {
    /// A driver for the distributor at `base`.
    ///
    /// # Safety
    /// `base` must be the address of a GICD block that stays mapped
    /// (Device memory) whenever the driver is used, and this driver must be
    /// the only user of the registers it touches.
    pub const unsafe fn new(base: usize) -> Distributor {
        Distributor {
            // SAFETY: forwarded to the caller.
            registers: unsafe { StaticRef::new(base as *const DistributorRegisters) },
        }
    }

    /// Number of interrupt ids the GIC implements: 32 * (TYPER.ITLinesNumber
    /// + 1), at most 1020.
    pub fn lines(&self) -> u32 {
        let blocks = self.registers.typer.read(GICD_TYPER::IT_LINES_NUMBER) + 1;
        (32 * blocks).min(MAX_INTERRUPTS)
    }

    /// Number of CPU interfaces the GIC implements (TYPER.CPUNumber + 1).
    pub fn cpus(&self) -> u32 {
        self.registers.typer.read(GICD_TYPER::CPU_NUMBER) + 1
    }

    /// The implementer, product and revision word (GICD_IIDR): bits 11:0
    /// are the implementer's JEP106 code (0x43b for Arm).
    pub fn implementer(&self) -> u32 {
        self.registers.iidr.get()
    }

    /// Puts the distributor in a known state and turns it on:
    ///
    /// - forwarding off while it is reprogrammed;
    /// - every SPI (id >= 32) disabled, not pending, not active,
    ///   level-sensitive and targeted at CPU 0 only;
    /// - every id in Group 1 (what a GIC-400 seen from Non-secure Hyp mode
    ///   has anyway; on a GIC without security extensions, such as QEMU's,
    ///   the GIC forwards a guest's deactivation of a hardware-linked
    ///   virtual interrupt only to a Group 1 physical one) with priority
    ///   [`DEFAULT_PRIORITY`];
    /// - every PPI (16-31) of this CPU disabled; SGIs (0-15) are left
    ///   enabled (on GICv2 they may be permanently enabled anyway);
    /// - forwarding of both groups on (CTLR = 0b11).
    pub fn init(&self) {
        let regs = &*self.registers;
        regs.ctlr.set(0);
        let lines = self.lines() as usize;
        let words = lines.div_ceil(32);
        for word in (FIRST_SPI as usize / 32)..words {
            regs.icenabler[word].set(u32::MAX);
            regs.icpendr[word].set(u32::MAX);
            regs.icactiver[word].set(u32::MAX);
        }
        for word in 1..words {
            regs.igroupr[word].set(u32::MAX);
        }
        for priority in &regs.ipriorityr[FIRST_SPI as usize..lines] {
            priority.set(DEFAULT_PRIORITY);
        }
        for target in &regs.itargetsr[FIRST_SPI as usize..lines] {
            target.set(1);
        }
        // Two configuration bits per id, 16 ids a word; 0 = level-sensitive.
        for word in (FIRST_SPI as usize / 16)..lines.div_ceil(16) {
            regs.icfgr[word].set(0);
        }
        self.init_cpu();
        // EnableGrp0 | EnableGrp1 (a Non-secure view has bit 0 only).
        regs.ctlr.set(0b11);
    }

    /// Sets up the calling CPU's banked part of the distributor, the SGIs
    /// and PPIs (ids 0-31): Group 1, default priority, the PPIs disabled.
    /// [`Distributor::init`] does it for the boot CPU; every other CPU
    /// calls it once.
    pub fn init_cpu(&self) {
        let regs = &*self.registers;
        regs.igroupr[0].set(u32::MAX);
        for priority in &regs.ipriorityr[..FIRST_SPI as usize] {
            priority.set(DEFAULT_PRIORITY);
        }
        // Word 0 of ICENABLER: bits 0-15 are the SGIs, 16-31 the PPIs.
        regs.icenabler[0].set(0xffff_0000);
    }

    /// Lets interrupt `id` be forwarded (ISENABLER).
    pub fn enable(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.isenabler[word].set(mask);
        }
    }

    /// Stops interrupt `id` from being forwarded (ICENABLER). An interrupt
    /// already forwarded to a CPU interface may still be acknowledged.
    pub fn disable(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.icenabler[word].set(mask);
        }
    }

    /// Whether interrupt `id` is enabled.
    pub fn is_enabled(&self, id: u32) -> bool {
        bit(id).is_some_and(|(word, mask)| self.registers.isenabler[word].get() & mask != 0)
    }

    /// Sets the priority of interrupt `id` (lower value, higher priority).
    /// A GIC implements only the top bits (5 on GIC-400 and QEMU); the
    /// others read as zero.
    pub fn set_priority(&self, id: u32, priority: u8) {
        if id < MAX_INTERRUPTS {
            self.registers.ipriorityr[id as usize].set(priority);
        }
    }

    /// The priority of interrupt `id` (0 for an id out of range).
    pub fn priority(&self, id: u32) -> u8 {
        if id < MAX_INTERRUPTS {
            self.registers.ipriorityr[id as usize].get()
        } else {
            0
        }
    }

    /// Routes SPI `id` to the CPU interfaces in `cpu_mask` (bit n: CPU n).
    /// SGI and PPI targets are fixed (their ITARGETSR bytes are read-only),
    /// so ids below 32 are ignored.
    pub fn set_target(&self, id: u32, cpu_mask: u8) {
        if (FIRST_SPI..MAX_INTERRUPTS).contains(&id) {
            self.registers.itargetsr[id as usize].set(cpu_mask);
        }
    }

    /// Makes interrupt `id` edge-triggered (`edge`) or level-sensitive.
    /// SGIs are always edge-triggered, so ids below 16 are ignored; whether
    /// a PPI's mode can change is implementation defined. The GIC leaves the
    /// effect of changing the mode of an enabled interrupt unpredictable:
    /// disable it first.
    pub fn set_edge_triggered(&self, id: u32, edge: bool) {
        if !(SGI_COUNT..MAX_INTERRUPTS).contains(&id) {
            return;
        }
        let register = &self.registers.icfgr[(id / 16) as usize];
        // Bit 2n+1 of the id's two-bit field: 1 = edge-triggered.
        let mask = 1 << (2 * (id % 16) + 1);
        let value = register.get();
        register.set(if edge { value | mask } else { value & !mask });
    }

    /// Makes interrupt `id` pending (ISPENDR). GICv2 ignores this for SGIs,
    /// whose pending state is per source CPU (SPENDSGIR).
    pub fn set_pending(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.ispendr[word].set(mask);
        }
    }

    /// Clears the pending state of interrupt `id` (ICPENDR). A level-
    /// sensitive interrupt whose line is still asserted stays pending.
    pub fn clear_pending(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.icpendr[word].set(mask);
        }
    }

    /// Whether interrupt `id` is pending.
    pub fn is_pending(&self, id: u32) -> bool {
        bit(id).is_some_and(|(word, mask)| self.registers.ispendr[word].get() & mask != 0)
    }

    /// Makes interrupt `id` active (ISACTIVER), e.g. when restoring a VM
    /// that had it active.
    pub fn set_active(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.isactiver[word].set(mask);
        }
    }

    /// Clears the active state of interrupt `id` (ICACTIVER).
    pub fn clear_active(&self, id: u32) {
        if let Some((word, mask)) = bit(id) {
            self.registers.icactiver[word].set(mask);
        }
    }

    /// Whether interrupt `id` is active.
    pub fn is_active(&self, id: u32) -> bool {
        bit(id).is_some_and(|(word, mask)| self.registers.isactiver[word].get() & mask != 0)
    }

    /// Sends software-generated interrupt `sgi` (0-15) to the CPUs in
    /// `target_list` (bit n: CPU n). An `sgi` above 15 is ignored.
    pub fn send_sgi(&self, sgi: u32, target_list: u8) {
        if sgi < SGI_COUNT {
            self.registers.sgir.write(
                GICD_SGIR::TARGET_LIST_FILTER::List
                    + GICD_SGIR::CPU_TARGET_LIST.val(target_list as u32)
                    + GICD_SGIR::SGI_INTID.val(sgi),
            );
        }
    }

    /// Clears the pending state of `sgi` from every source CPU
    /// (CPENDSGIR: one byte per SGI, one bit per source). An `sgi` above 15
    /// is ignored.
    pub fn clear_pending_sgi(&self, sgi: u32) {
        if sgi < SGI_COUNT {
            let register = &self.registers.cpendsgir[(sgi / 4) as usize];
            register.set(0xff << (8 * (sgi % 4)));
        }
    }

    /// The sources (bit n: CPU n) from which `sgi` is pending on this CPU
    /// (SPENDSGIR; 0 for an `sgi` above 15).
    pub fn pending_sgi_sources(&self, sgi: u32) -> u8 {
        if sgi < SGI_COUNT {
            let word = self.registers.spendsgir[(sgi / 4) as usize].get();
            (word >> (8 * (sgi % 4))) as u8
        } else {
            0
        }
    }

    /// The identification bytes PIDR0-3 (0xfe0-0xfec) packed little-endian
    /// into a word. Their layout is implementation defined except bits 7:4
    /// of PIDR2 (bits 23:20 here), the architecture version: 2 for GICv2.
    pub fn peripheral_id(&self) -> u32 {
        // PIDR4-7 are at 0xfd0-0xfdc (indices 0-3), PIDR0-3 at 0xfe0-0xfec.
        (0..4).fold(0, |id, i| {
            id | ((self.registers.id[4 + i].get() & 0xff) << (8 * i))
        })
    }
}

// The register block is exactly the GICD page.
const _: () = assert!(core::mem::size_of::<DistributorRegisters>() == crate::DISTRIBUTOR_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRegisters;

    /// A distributor over `fake` whose TYPER says `it_lines_number`.
    fn distributor(fake: &FakeRegisters, it_lines_number: u32) -> Distributor {
        fake.set_word(0x004, it_lines_number);
        // SAFETY: the fake is a zeroed, aligned window that outlives the
        // driver (each test declares the driver after it).
        unsafe { Distributor::new(fake.base()) }
    }

    #[test]
    fn lines_follow_typer_and_stop_at_1020() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 0);
        assert_eq!(gicd.lines(), 32);
        fake.set_word(0x004, 2);
        assert_eq!(gicd.lines(), 96);
        // QEMU virt: 288 interrupts (ITLinesNumber 8), 8 CPUs possible.
        fake.set_word(0x004, 8 | 7 << 5);
        assert_eq!(gicd.lines(), 288);
        assert_eq!(gicd.cpus(), 8);
        fake.set_word(0x004, 31);
        assert_eq!(gicd.lines(), 1020);
    }

    #[test]
    fn enable_writes_one_bit_of_isenabler() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.enable(33);
        assert_eq!(fake.word(0x104), 1 << 1);
        assert!(gicd.is_enabled(33));
        assert!(!gicd.is_enabled(34));
        // Set registers are written, never read-modify-written.
        gicd.enable(34);
        assert_eq!(fake.word(0x104), 1 << 2);
        gicd.enable(0);
        assert_eq!(fake.word(0x100), 1);
        gicd.enable(1019);
        assert_eq!(fake.word(0x17c), 1 << 27);
    }

    #[test]
    fn disable_writes_one_bit_of_icenabler() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.disable(65);
        assert_eq!(fake.word(0x188), 1 << 1);
        assert_eq!(fake.word(0x184), 0);
    }

    #[test]
    fn pending_and_active_use_their_register_pairs() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.set_pending(40);
        assert_eq!(fake.word(0x204), 1 << 8);
        assert!(gicd.is_pending(40));
        gicd.clear_pending(41);
        assert_eq!(fake.word(0x284), 1 << 9);
        gicd.set_active(95);
        assert_eq!(fake.word(0x308), 1 << 31);
        assert!(gicd.is_active(95));
        assert!(!gicd.is_active(94));
        gicd.clear_active(16);
        assert_eq!(fake.word(0x380), 1 << 16);
    }

    #[test]
    fn ids_out_of_range_are_ignored() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 31);
        for id in [1020, 1023, 1024, u32::MAX] {
            gicd.enable(id);
            gicd.disable(id);
            gicd.set_pending(id);
            gicd.clear_pending(id);
            gicd.set_active(id);
            gicd.clear_active(id);
            gicd.set_priority(id, 0x10);
            gicd.set_target(id, 0xff);
            gicd.set_edge_triggered(id, true);
            assert!(!gicd.is_enabled(id));
            assert!(!gicd.is_pending(id));
            assert!(!gicd.is_active(id));
            assert_eq!(gicd.priority(id), 0);
        }
        gicd.send_sgi(16, 0xff);
        // Nothing but TYPER (set up by the test) was written.
        for offset in (0..0x1000).step_by(4).filter(|&offset| offset != 0x004) {
            assert_eq!(fake.word(offset), 0, "offset {offset:#x}");
        }
    }

    #[test]
    fn priority_and_target_are_bytes() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.set_priority(33, 0x80);
        assert_eq!(fake.byte(0x400 + 33), 0x80);
        assert_eq!(fake.word(0x420), 0x80 << 8);
        assert_eq!(gicd.priority(33), 0x80);
        gicd.set_target(34, 0b10);
        assert_eq!(fake.byte(0x800 + 34), 0b10);
        assert_eq!(fake.word(0x820), 0b10 << 16);
        // SGI/PPI targets are read-only: not written.
        gicd.set_target(31, 0b10);
        assert_eq!(fake.word(0x81c), 0);
    }

    #[test]
    fn trigger_mode_is_bit_2n_plus_1_of_icfgr() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        fake.set_word(0xc08, 0x5555_5555);
        gicd.set_edge_triggered(33, true);
        assert_eq!(fake.word(0xc08), 0x5555_5555 | 1 << 3);
        gicd.set_edge_triggered(47, true);
        assert_eq!(fake.word(0xc08), 0x5555_5555 | 1 << 3 | 1 << 31);
        gicd.set_edge_triggered(33, false);
        assert_eq!(fake.word(0xc08), 0x5555_5555 | 1 << 31);
        gicd.set_edge_triggered(27, true);
        assert_eq!(fake.word(0xc04), 1 << 23);
        // SGIs are always edge-triggered; ICFGR0 is not written.
        gicd.set_edge_triggered(3, false);
        assert_eq!(fake.word(0xc00), 0);
    }

    #[test]
    fn sgi_encodes_target_list_and_id() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.send_sgi(3, 0b10);
        assert_eq!(fake.word(0xf00), 0x0002_0003);
        gicd.send_sgi(15, 0xff);
        assert_eq!(fake.word(0xf00), 0x00ff_000f);
    }

    #[test]
    fn sgi_pending_bytes() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        gicd.clear_pending_sgi(6);
        assert_eq!(fake.word(0xf14), 0x00ff_0000);
        fake.set_word(0xf2c, 0x0300_0000);
        assert_eq!(gicd.pending_sgi_sources(15), 0x03);
        assert_eq!(gicd.pending_sgi_sources(14), 0);
        assert_eq!(gicd.pending_sgi_sources(16), 0);
    }

    #[test]
    fn init_programs_every_spi_and_enables() {
        let fake = FakeRegisters::new();
        // 96 ids: SGIs, PPIs and SPIs 32-95.
        let gicd = distributor(&fake, 2);
        // Leftovers init must overwrite.
        for offset in [0x080, 0x084, 0x088, 0xc08, 0xc0c, 0xc10, 0xc14] {
            fake.set_word(offset, u32::MAX);
        }
        fake.set_word(0x084, 0x1234);
        gicd.init();

        assert_eq!(fake.word(0x000), 0b11);
        for offset in [0x184, 0x188, 0x284, 0x288, 0x384, 0x388] {
            assert_eq!(fake.word(offset), u32::MAX, "offset {offset:#x}");
        }
        // Only the implemented words, and PPIs but not SGIs disabled.
        assert_eq!(fake.word(0x18c), 0);
        assert_eq!(fake.word(0x180), 0xffff_0000);
        assert_eq!(fake.word(0x280), 0);
        assert_eq!(fake.word(0x380), 0);
        for offset in [0x080, 0x084, 0x088] {
            assert_eq!(fake.word(offset), u32::MAX, "Group 1: offset {offset:#x}");
        }
        for id in 0..96 {
            assert_eq!(fake.byte(0x400 + id), DEFAULT_PRIORITY, "id {id}");
            let target = if id >= 32 { 1 } else { 0 };
            assert_eq!(fake.byte(0x800 + id), target, "id {id}");
        }
        assert_eq!(fake.byte(0x400 + 96), 0);
        assert_eq!(fake.byte(0x800 + 96), 0);
        for offset in [0xc08, 0xc0c, 0xc10, 0xc14] {
            assert_eq!(fake.word(offset), 0, "offset {offset:#x}");
        }
        assert_eq!(fake.word(0xc00), 0);
    }

    #[test]
    fn init_with_1020_ids_stays_inside_the_block() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 31);
        gicd.init();
        assert_eq!(fake.byte(0x400 + 1019), DEFAULT_PRIORITY);
        assert_eq!(fake.byte(0x800 + 1019), 1);
        // 0x7fc-0x7ff and 0xbfc-0xbff are reserved.
        assert_eq!(fake.word(0x7fc), 0);
        assert_eq!(fake.word(0xbfc), 0);
        assert_eq!(fake.word(0xcfc), 0);
        assert_eq!(fake.word(0x1fc), u32::MAX);
    }

    #[test]
    fn identification_registers() {
        let fake = FakeRegisters::new();
        let gicd = distributor(&fake, 2);
        fake.set_word(0x008, 0x0200_143b);
        assert_eq!(gicd.implementer(), 0x0200_143b);
        for (i, byte) in [0x90, 0xb4, 0x2b, 0x00].into_iter().enumerate() {
            fake.set_word(0xfe0 + 4 * i, byte);
        }
        assert_eq!(gicd.peripheral_id(), 0x002b_b490);
    }
}
