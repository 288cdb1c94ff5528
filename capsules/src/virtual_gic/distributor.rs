// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual GIC's distributor: the guest's GICD window (0x0800_0000),
//! emulated for every backend. Its registers are listed in the
//! [module documentation](super).

use super::*;

impl VirtualGic {
    /// GICD_SGIR: a software-generated interrupt from CPU 0.
    fn generate_sgi(&self, value: u32) {
        let sgi = value & 0xf;
        let filter = (value >> 24) & 0x3;
        let targets = (value >> 16) & 0xff;
        // Filter 1 (every CPU but the sender) names nobody; 3 is reserved.
        let to_self = match filter {
            0 => targets & 1 != 0,
            2 => true,
            _ => false,
        };
        if to_self {
            self.latched.set(self.latched.get() | bit(sgi));
        }
    }

    /// The byte-accessible distributor registers, by byte.
    fn distributor_byte(&self, offset: u64) -> Option<u8> {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR if index < NUM_INTERRUPTS => {
                Some(self.priorities.as_array_of_cells()[index as usize].get())
            }
            GICD_ITARGETSR..GICD_ICFGR if index < NUM_INTERRUPTS => {
                Some(u8::from(self.targeted.get() & bit(index) != 0))
            }
            GICD_CPENDSGIR..0xf30 => {
                let sgi = index & 0xf;
                Some(u8::from(self.latched.get() & bit(sgi) != 0))
            }
            GICD_IPRIORITYR..GICD_ICFGR => Some(0),
            _ => None,
        }
    }

    fn set_distributor_byte(&self, offset: u64, value: u8) {
        let index = (offset & 0x3ff) as u32;
        match offset {
            GICD_IPRIORITYR..GICD_ITARGETSR if index < NUM_INTERRUPTS => {
                self.priorities.as_array_of_cells()[index as usize].set(value & PRIORITY_BITS);
            }
            // SGIs and PPIs always target CPU 0 (writes ignored); only an
            // SPI's bit 0 (CPU 0, the one CPU) is stored.
            GICD_ITARGETSR..GICD_ICFGR if (32..NUM_INTERRUPTS).contains(&index) => {
                let targeted = self.targeted.get() & !bit(index);
                self.targeted
                    .set(targeted | (u64::from(value & 1) << index));
            }
            GICD_CPENDSGIR..GICD_SPENDSGIR if value & 1 != 0 => {
                self.latched.set(self.latched.get() & !bit(index & 0xf));
            }
            GICD_SPENDSGIR..0xf30 if value & 1 != 0 => {
                self.latched.set(self.latched.get() | bit(index & 0xf));
            }
            _ => {}
        }
    }

    fn distributor_word(&self, offset: u64) -> u32 {
        if self.distributor_byte(offset).is_some() {
            return (0..4).fold(0, |word, byte| {
                let value = self.distributor_byte(offset + byte).unwrap_or(0);
                word | (u32::from(value) << (8 * byte))
            });
        }
        let n = (offset & 0x7f) / 4;
        match offset {
            GICD_CTLR => u32::from(self.distributor_enabled.get()),
            GICD_TYPER => TYPER_VALUE,
            GICD_IIDR => DISTRIBUTOR_IIDR,
            0x100..0x200 => word_of(self.enabled.get(), n),
            0x200..0x300 => word_of(self.pending(), n),
            0x300..0x400 => word_of(self.active.get(), n),
            GICD_ICFGR => 0xaaaa_aaaa,
            0xc04..0xc10 => {
                let first = ((offset - GICD_ICFGR) / 4 * 16) as u32;
                (0..16).fold(0, |word, k| {
                    let edge = self.edge.get() & bit(first + k) != 0;
                    word | (u32::from(edge) << (2 * k + 1))
                })
            }
            GICD_ID..0x1000 => GICD_ID_VALUES[((offset - GICD_ID) / 4) as usize],
            // IGROUPR (Group 0 only), SGIR (write-only), reserved space.
            _ => 0,
        }
    }

    fn set_distributor_word(&self, offset: u64, value: u32) {
        if self.distributor_byte(offset).is_some() {
            for byte in 0..4 {
                self.set_distributor_byte(offset + byte, (value >> (8 * byte)) as u8);
            }
            return;
        }
        let n = (offset & 0x7f) / 4;
        let ids = bits_of(value, n);
        match offset {
            GICD_CTLR => self.distributor_enabled.set(value & 1 != 0),
            GICD_ISENABLER..GICD_ICENABLER => self.enabled.set(self.enabled.get() | ids),
            // SGIs cannot be disabled.
            GICD_ICENABLER..GICD_ISPENDR => {
                self.enabled.set(self.enabled.get() & !(ids & !SGI_MASK));
            }
            // SGI pending bits are read-only here: GICD_S/CPENDSGIR own them.
            GICD_ISPENDR..GICD_ICPENDR => {
                self.latched.set(self.latched.get() | (ids & !SGI_MASK));
            }
            // A level-sensitive interrupt whose line is high stays pending.
            GICD_ICPENDR..GICD_ISACTIVER => {
                self.latched.set(self.latched.get() & !(ids & !SGI_MASK));
            }
            GICD_ISACTIVER..GICD_ICACTIVER => self.active.set(self.active.get() | ids),
            GICD_ICACTIVER..GICD_IPRIORITYR => self.active.set(self.active.get() & !ids),
            0xc04..0xc10 => {
                let first = ((offset - GICD_ICFGR) / 4 * 16) as u32;
                let mut edge = self.edge.get();
                for k in 0..16 {
                    edge &= !bit(first + k);
                    if value & (1 << (2 * k + 1)) != 0 {
                        edge |= bit(first + k);
                    }
                }
                self.edge.set(edge);
            }
            GICD_SGIR => self.generate_sgi(value),
            // CTLR's other bits, TYPER, IIDR, IGROUPR, ICFGR0, the ID
            // registers and reserved space: ignored.
            _ => {}
        }
    }
}

/// The distributor's window, as a virtual device.
#[derive(Clone, Copy, Debug)]
pub struct GicDistributor<'a> {
    pub(super) gic: &'a VirtualGic,
}

impl MmioDevice for GicDistributor<'_> {
    fn name(&self) -> &'static str {
        DISTRIBUTOR_NAME
    }

    /// The VM's virtual GIC back to its reset state.
    fn reset(&self) -> Result<(), NotResettable> {
        self.gic.reset();
        Ok(())
    }

    fn base(&self) -> u64 {
        DISTRIBUTOR_BASE
    }

    fn size(&self) -> u64 {
        DISTRIBUTOR_SIZE
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        Ok(match check_access(offset, size)? {
            AccessSize::Word => self.gic.distributor_word(offset),
            AccessSize::Byte => self.gic.distributor_byte(offset).map_or(0, u32::from),
            _ => 0,
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        match check_access(offset, size)? {
            AccessSize::Word => self.gic.set_distributor_word(offset, value),
            AccessSize::Byte if self.gic.distributor_byte(offset).is_some() => {
                self.gic.set_distributor_byte(offset, value as u8)
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
