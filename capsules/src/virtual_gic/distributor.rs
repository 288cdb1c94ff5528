// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual GIC's distributor: the guest's GICD window (0x0800_0000),
//! emulated for every backend, one view per vCPU. Its registers are listed
//! in the [module documentation](super).

use super::*;

impl VirtualGic {
    /// GICD_SGIR written by vCPU `from`: a software-generated interrupt to
    /// the vCPUs the filter names, from `from`.
    fn generate_sgi(&self, from: usize, value: u32) {
        let sgi = value & 0xf;
        let filter = (value >> 24) & 0x3;
        let list = (value >> 16) as u8;
        let everyone = self.vcpu_mask();
        let targets = match filter {
            0 => list & everyone,
            1 => everyone & !(1 << from),
            2 => 1 << from,
            // Reserved.
            _ => 0,
        };
        for target in 0..self.vcpus {
            if targets & (1 << target) != 0 {
                self.add_sgi_source(target, sgi, from as u32);
            }
        }
    }

    /// GICD_ITARGETSR byte of SPI `k` (id 32 + k): only existing vCPUs
    /// are kept, and the SPI is routed to the lowest of them.
    fn set_target(&self, k: u32, value: u8) {
        let value = value & self.vcpu_mask();
        self.targets.as_array_of_cells()[k as usize].set(value);
        let mut routes = self.routes.get();
        for routed in &mut routes {
            *routed &= !(1 << k);
        }
        if value != 0 {
            routes[value.trailing_zeros() as usize] |= 1 << k;
        }
        self.routes.set(routes);
    }

    /// The byte-accessible distributor registers, by byte, as `vcpu` sees
    /// them.
    fn distributor_byte(&self, vcpu: usize, offset: u64) -> Option<u8> {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR if index < NUM_INTERRUPTS => {
                Some(self.priority(vcpu, index))
            }
            // SGIs and PPIs: the reading vCPU's own bit.
            GICD_ITARGETSR..GICD_ICFGR if index < FIRST_SPI => Some(1 << vcpu),
            GICD_ITARGETSR..GICD_ICFGR if index < NUM_INTERRUPTS => {
                Some(self.targets.get()[(index - FIRST_SPI) as usize])
            }
            GICD_CPENDSGIR..0xf30 => Some(self.sgi_sources(vcpu, index & 0xf)),
            GICD_IPRIORITYR..GICD_ICFGR => Some(0),
            _ => None,
        }
    }

    fn set_distributor_byte(&self, vcpu: usize, offset: u64, value: u8) {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR => {
                if let Some((bank, k)) = self.bank(vcpu, index) {
                    bank.priorities.as_array_of_cells()[k as usize].set(value & PRIORITY_BITS);
                }
            }
            // SGIs' and PPIs' targets are fixed (writes ignored).
            GICD_ITARGETSR..GICD_ICFGR if (FIRST_SPI..NUM_INTERRUPTS).contains(&index) => {
                self.set_target(index - FIRST_SPI, value);
            }
            GICD_CPENDSGIR..GICD_SPENDSGIR => {
                let sgi = index & 0xf;
                self.set_sgi_sources(vcpu, sgi, self.sgi_sources(vcpu, sgi) & !value);
            }
            GICD_SPENDSGIR..0xf30 => {
                let sgi = index & 0xf;
                let sources = self.sgi_sources(vcpu, sgi) | (value & self.vcpu_mask());
                self.set_sgi_sources(vcpu, sgi, sources);
            }
            _ => {}
        }
    }

    /// The bank that bit array word `n` (of GICD_ISENABLER and the like)
    /// covers for `vcpu`: vCPU's own for word 0, the SPIs' for word 1.
    fn word_bank(&self, vcpu: usize, n: u64) -> Option<&Bank> {
        match n {
            0 => Some(&self.banked[vcpu].bank),
            1 => Some(&self.spis),
            _ => None,
        }
    }

    /// The bank and first bit of the 16 ids GICD_ICFGR word `n` (1-3)
    /// covers for `vcpu`.
    fn config_bank(&self, vcpu: usize, n: u64) -> (&Bank, u32) {
        self.bank(vcpu, (n * 16) as u32).unwrap_or((&self.spis, 0))
    }

    fn distributor_word(&self, vcpu: usize, offset: u64) -> u32 {
        if self.distributor_byte(vcpu, offset).is_some() {
            return (0..4).fold(0, |word, byte| {
                let value = self.distributor_byte(vcpu, offset + byte).unwrap_or(0);
                word | (u32::from(value) << (8 * byte))
            });
        }
        let n = (offset & 0x7f) / 4;
        let word = |field: fn(&Bank) -> u32| self.word_bank(vcpu, n).map_or(0, field);
        match offset {
            GICD_CTLR => u32::from(self.distributor_enabled.get()),
            GICD_TYPER => ((self.vcpus as u32 - 1) << TYPER_CPU_NUMBER_SHIFT) | TYPER_IT_LINES,
            GICD_IIDR => DISTRIBUTOR_IIDR,
            0x100..0x200 => word(|bank| bank.enabled.get()),
            0x200..0x300 => word(Bank::pending),
            0x300..0x400 => word(|bank| bank.active.get()),
            GICD_ICFGR => 0xaaaa_aaaa,
            0xc04..0xc10 => {
                let (bank, first) = self.config_bank(vcpu, (offset - GICD_ICFGR) / 4);
                let edge = bank.edge.get() >> first;
                (0..16).fold(0, |word, k| word | (((edge >> k) & 1) << (2 * k + 1)))
            }
            GICD_ID..0x1000 => GICD_ID_VALUES[((offset - GICD_ID) / 4) as usize],
            // IGROUPR (Group 0 only), SGIR (write-only), reserved space.
            _ => 0,
        }
    }

    fn set_distributor_word(&self, vcpu: usize, offset: u64, value: u32) {
        if self.distributor_byte(vcpu, offset).is_some() {
            for byte in 0..4 {
                self.set_distributor_byte(vcpu, offset + byte, (value >> (8 * byte)) as u8);
            }
            return;
        }
        let n = (offset & 0x7f) / 4;
        // SGIs cannot be disabled, and their pending bits are read-only
        // here: GICD_S/CPENDSGIR own them.
        let fixed = if n == 0 { SGI_MASK } else { 0 };
        match (offset, self.word_bank(vcpu, n)) {
            (GICD_CTLR, _) => self.distributor_enabled.set(value & 1 != 0),
            (GICD_ISENABLER..GICD_ICENABLER, Some(bank)) => set_bits(&bank.enabled, value, true),
            (GICD_ICENABLER..GICD_ISPENDR, Some(bank)) => {
                set_bits(&bank.enabled, value & !fixed, false);
            }
            (GICD_ISPENDR..GICD_ICPENDR, Some(bank)) => {
                set_bits(&bank.latched, value & !fixed, true);
            }
            // A level-sensitive interrupt whose line is high stays pending.
            (GICD_ICPENDR..GICD_ISACTIVER, Some(bank)) => {
                set_bits(&bank.latched, value & !fixed, false);
            }
            (GICD_ISACTIVER..GICD_ICACTIVER, Some(bank)) => set_bits(&bank.active, value, true),
            (GICD_ICACTIVER..GICD_IPRIORITYR, Some(bank)) => {
                set_bits(&bank.active, value, false);
            }
            (0xc04..0xc10, _) => {
                let (bank, first) = self.config_bank(vcpu, (offset - GICD_ICFGR) / 4);
                let mut edge = bank.edge.get() & !(0xffff << first);
                for k in 0..16 {
                    edge |= ((value >> (2 * k + 1)) & 1) << (first + k);
                }
                bank.edge.set(edge);
            }
            (GICD_SGIR, _) => self.generate_sgi(vcpu, value),
            // CTLR's other bits, TYPER, IIDR, IGROUPR, ICFGR0, the ID
            // registers, bit arrays of ids that do not exist and reserved
            // space: ignored.
            _ => {}
        }
    }
}

/// The distributor's window as one vCPU sees it, a virtual device
/// ([`VirtualGic::distributor_for`]).
#[derive(Clone, Copy, Debug)]
pub struct GicDistributor<'a> {
    pub(super) gic: &'a VirtualGic,
    /// The vCPU whose accesses this view answers.
    pub(super) vcpu: usize,
}

impl GicDistributor<'_> {
    /// The vCPU whose accesses this view answers.
    pub fn vcpu(&self) -> usize {
        self.vcpu
    }
}

impl MmioDevice for GicDistributor<'_> {
    fn name(&self) -> &'static str {
        DISTRIBUTOR.name
    }

    /// The VM's virtual GIC back to its reset state.
    fn reset(&self) -> Result<(), NotResettable> {
        self.gic.reset();
        Ok(())
    }

    fn base(&self) -> u64 {
        u64::from(DISTRIBUTOR.base)
    }

    fn size(&self) -> u64 {
        u64::from(DISTRIBUTOR.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        Ok(match check_access(offset, size)? {
            AccessSize::Word => self.gic.distributor_word(self.vcpu, offset),
            AccessSize::Byte => self
                .gic
                .distributor_byte(self.vcpu, offset)
                .map_or(0, u32::from),
            _ => 0,
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        let (gic, vcpu) = (self.gic, self.vcpu);
        match check_access(offset, size)? {
            AccessSize::Word => gic.tracked(|| gic.set_distributor_word(vcpu, offset, value)),
            AccessSize::Byte if gic.distributor_byte(vcpu, offset).is_some() => {
                gic.tracked(|| gic.set_distributor_byte(vcpu, offset, value as u8));
            }
            _ => {}
        }
        Ok(())
    }

    /// Distributor reads have no side effects; every write may change
    /// what is pending, enabled or routed.
    fn changes_interrupts(&self, _offset: u64, write: bool) -> bool {
        write
    }
}
