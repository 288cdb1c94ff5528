// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual GIC's emulated CPU interface: the guest's GICC window
//! (0x0801_0000) on a board without a GIC virtualization interface, where
//! every access traps and [`GicCpuInterface`] answers it (the software
//! backend). It is vCPU 0's: such boards run one-vCPU VMs. With GICv2
//! virtualization the window is the GIC's own GICV instead, and this code
//! is not used.

use super::*;

impl VirtualGic {
    /// Whether the CPU interface (vCPU 0's) signals an IRQ now: the
    /// interrupt GICC_IAR would acknowledge exists; the software backend
    /// drives HCR.VI from it.
    pub fn pending_irq(&self) -> bool {
        self.highest_pending().is_some()
    }

    /// The id GICC_IAR would acknowledge now, if any.
    pub fn highest_pending(&self) -> Option<u32> {
        self.signalled().map(|(id, _)| id)
    }

    /// The highest-priority pending, enabled, inactive interrupt forwarded
    /// to vCPU 0, with its priority, when both enables are set.
    fn best_candidate(&self) -> Option<(u32, u8)> {
        if self.cpu_control.get() & GICC_CTLR_ENABLE == 0 {
            return None;
        }
        self.best_of(CPU_INTERFACE_VCPU, self.forwarded(CPU_INTERFACE_VCPU))
    }

    /// The group priority of `priority` under the current binary point.
    fn group_priority(&self, priority: u8) -> u32 {
        u32::from(priority) & (0xff << (self.binary_point.get() + 1)) & 0xff
    }

    fn running_priority(&self) -> u32 {
        match self.active_priorities.get() {
            0 => IDLE_PRIORITY,
            levels => levels.trailing_zeros() << 3,
        }
    }

    /// The best candidate if its priority passes GICC_PMR and its group
    /// priority preempts the running priority.
    fn signalled(&self) -> Option<(u32, u8)> {
        self.best_candidate().filter(|&(_, priority)| {
            priority < self.priority_mask.get()
                && (self.active_priorities.get() == 0
                    || self.group_priority(priority) < self.running_priority())
        })
    }

    /// GICC_IAR: acknowledges the signalled interrupt. An SGI is
    /// acknowledged from its lowest-numbered pending source, which bits
    /// 12:10 name; its other sources stay pending.
    fn acknowledge(&self) -> u32 {
        let vcpu = CPU_INTERFACE_VCPU;
        let Some((id, priority)) = self.signalled() else {
            return SPURIOUS;
        };
        let source = if id < NUM_SGIS as u32 {
            self.take_sgi_source(vcpu, id).unwrap_or(0)
        } else {
            self.clear_latched(vcpu, id);
            0
        };
        self.set_active(vcpu, id, true);
        let level = self.group_priority(priority) >> 3;
        self.active_priorities
            .set(self.active_priorities.get() | (1 << level));
        id | (source << SOURCE_SHIFT)
    }

    /// GICC_EOIR: priority drop, and deactivation in EOImode 0.
    fn end_of_interrupt(&self, value: u32) {
        let id = value & ID_BITS;
        if id >= NUM_INTERRUPTS {
            return;
        }
        let levels = self.active_priorities.get();
        self.active_priorities.set(levels & levels.wrapping_sub(1));
        if self.cpu_control.get() & GICC_CTLR_EOIMODE == 0 {
            self.deactivate(value);
        }
    }

    /// GICC_DIR (and the second half of EOIR in EOImode 0).
    fn deactivate(&self, value: u32) {
        self.set_active(CPU_INTERFACE_VCPU, value & ID_BITS, false);
    }

    fn cpu_interface_word(&self, offset: u64) -> u32 {
        match offset {
            GICC_CTLR => self.cpu_control.get(),
            GICC_PMR => u32::from(self.priority_mask.get()),
            GICC_BPR => self.binary_point.get(),
            GICC_IAR => self.acknowledge(),
            GICC_RPR => self.running_priority(),
            GICC_HPPIR => self.best_candidate().map_or(SPURIOUS, |(id, _)| id),
            GICC_AIAR | GICC_AHPPIR => SPURIOUS,
            GICC_APR0 => self.active_priorities.get(),
            GICC_IIDR => CPU_INTERFACE_IIDR,
            // EOIR, DIR, AEOIR (write-only), ABPR and reserved space.
            _ => 0,
        }
    }

    fn set_cpu_interface_word(&self, offset: u64, value: u32) {
        match offset {
            GICC_CTLR => self
                .cpu_control
                .set(value & (GICC_CTLR_ENABLE | GICC_CTLR_EOIMODE)),
            GICC_PMR => self.priority_mask.set(value as u8 & PRIORITY_BITS),
            GICC_BPR => self.binary_point.set((value & 7).max(MIN_BINARY_POINT)),
            GICC_EOIR => self.end_of_interrupt(value),
            GICC_APR0 => self.active_priorities.set(value),
            GICC_DIR => self.deactivate(value),
            // IAR, RPR, HPPIR, IIDR (read-only), the Group 1 aliases and
            // reserved space.
            _ => {}
        }
    }
}

/// vCPU 0's CPU interface window, as a virtual device.
#[derive(Clone, Copy, Debug)]
pub struct GicCpuInterface<'a> {
    pub(super) gic: &'a VirtualGic,
}

impl MmioDevice for GicCpuInterface<'_> {
    fn name(&self) -> &'static str {
        CPU_INTERFACE.name
    }

    /// The VM's virtual GIC back to its reset state.
    fn reset(&self) -> Result<(), NotResettable> {
        self.gic.reset();
        Ok(())
    }

    fn base(&self) -> u64 {
        u64::from(CPU_INTERFACE.base)
    }

    fn size(&self) -> u64 {
        u64::from(CPU_INTERFACE.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        let word = check_access(offset, size)? == AccessSize::Word;
        Ok(if word {
            self.gic.cpu_interface_word(offset)
        } else {
            0
        })
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        if check_access(offset, size)? == AccessSize::Word {
            // A deactivation can forward an SPI to another vCPU.
            let gic = self.gic;
            gic.tracked(|| gic.set_cpu_interface_word(offset, value));
        }
        Ok(())
    }

    /// Of the reads only GICC_IAR (an acknowledge) changes what the vCPU
    /// is signalled; every write may (EOIR, DIR, CTLR, PMR, BPR).
    fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
        write || offset == GICC_IAR
    }
}
