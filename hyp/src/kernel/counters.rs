// SPDX-License-Identifier: MIT OR Apache-2.0
//! What a vCPU counts of its exits and slices, and how a status line
//! shows them.

/// Exit counts of one vCPU, by what the exit was. Each exit is counted
/// once, in its kind's counter; [`VcpuCounters::exits`] is their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuCounters {
    /// Hypercalls and SMCs.
    pub hypercalls: u32,
    /// Emulated MMIO accesses (and MMIO accesses refused with an abort).
    pub mmio: u32,
    /// WFI/WFE.
    pub waits: u32,
    /// Other exits: trapped system registers and floating point,
    /// undefined instructions, aborts.
    pub other: u32,
    /// Faults reflected into the guest.
    pub injected_faults: u32,
    /// Restarts of its VM it took part in.
    pub restarts: u32,
    /// Physical interrupts that took the CPU from it.
    pub irqs: u32,
    /// Times it was given the CPU.
    pub slices: u32,
    /// Times its slice ran out while another vCPU was ready.
    pub preemptions: u32,
    /// Times its slice ran out with no other vCPU ready (it went on).
    pub ticks: u32,
}

impl VcpuCounters {
    /// Every exit.
    pub const fn exits(&self) -> u32 {
        self.hypercalls
            .wrapping_add(self.mmio)
            .wrapping_add(self.waits)
            .wrapping_add(self.other)
            .wrapping_add(self.irqs)
    }

    /// The exits that were neither physical interrupts nor reflected
    /// faults: the vCPU's progress, for the fault loop detector.
    pub(super) const fn progress(&self) -> u32 {
        self.exits()
            .wrapping_sub(self.irqs)
            .wrapping_sub(self.injected_faults)
    }

    /// The sum of two vCPUs' counts (restarts: the larger).
    pub const fn plus(&self, other: &VcpuCounters) -> VcpuCounters {
        VcpuCounters {
            hypercalls: self.hypercalls.wrapping_add(other.hypercalls),
            mmio: self.mmio.wrapping_add(other.mmio),
            waits: self.waits.wrapping_add(other.waits),
            other: self.other.wrapping_add(other.other),
            injected_faults: self.injected_faults.wrapping_add(other.injected_faults),
            restarts: if self.restarts > other.restarts {
                self.restarts
            } else {
                other.restarts
            },
            irqs: self.irqs.wrapping_add(other.irqs),
            slices: self.slices.wrapping_add(other.slices),
            preemptions: self.preemptions.wrapping_add(other.preemptions),
            ticks: self.ticks.wrapping_add(other.ticks),
        }
    }
}

/// Writes a state and counters as one status line's tail.
pub(super) fn write_counters(
    out: &mut dyn core::fmt::Write,
    state: &str,
    c: &VcpuCounters,
) -> core::fmt::Result {
    write!(
        out,
        "{}; exits {} (hypercalls {}, mmio {}, waits {}, irqs {}), injected faults {}, restarts {}, slices {}, preemptions {}, ticks {}",
        state,
        c.exits(),
        c.hypercalls,
        c.mmio,
        c.waits,
        c.irqs,
        c.injected_faults,
        c.restarts,
        c.slices,
        c.preemptions,
        c.ticks
    )
}
