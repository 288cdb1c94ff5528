// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest's CP14 debug registers: trapped, and emulated per vCPU.
//!
//! HDCR.TDA, TDOSA and TDRA (set by `world_switch::set_pmu_trap` for every
//! guest) trap each PL0/PL1 access to a CP14 debug register to Hyp mode
//! (EC 0x05 for `MRC`/`MCR`, 0x0c for `MRRC`; `LDC`/`STC` to DBGDTR, EC
//! 0x06, becomes an undefined instruction). [`DebugRegister::of`] names
//! the register an access reaches and [`DebugContext::emulate`] performs
//! it on the vCPU's own copy:
//!
//! - DBGDIDR reads as the hardware's, with at most the [`BREAKPOINTS`]
//!   and [`WATCHPOINTS`] Capvisor switches;
//! - DBGDRAR and DBGDSAR read as 0 ("not valid": no memory-mapped debug
//!   interface is offered);
//! - the breakpoints, watchpoints and DBGVCR are the vCPU's own: a write
//!   changes its [`DebugContext`] and, while it runs, the hardware, with
//!   the Hyp-mode match bit (HMC) of a control register forced to 0, so
//!   that no guest's breakpoint or watchpoint can match in Hyp mode;
//! - DBGDSCR: the guest may set MDBGen (monitor debug, what Linux uses)
//!   and UDCCdis; the bits meant for an external debugger (HDBGen, ITRen,
//!   INTdis) stay the hardware's, and the method of entry (MOE) reads as
//!   the hardware's, which records the guest's own debug events;
//! - the debug communications channel (DBGDTRRXint/TXint) has no one on
//!   the other end: it reads as empty and writes are dropped;
//! - the OS lock (DBGOSLAR, DBGOSLSR) is per vCPU, emulated; the OS
//!   double lock and power-down registers (DBGOSDLR, DBGPRCR) read as 0
//!   and ignore writes, and DBGPRSR reads "powered up";
//! - any other debug register is an undefined instruction.
//!
//! Since every guest access traps, the [`DebugContext`] is always the
//! guest's current state: nothing needs reading back at a switch-out, and
//! a switch-in writes the hardware only when it or the previous VM had a
//! register other than zero (see `vcpu`).

use hyp::trap::SystemRegisterAccess;

/// `mrc`/`mcr p14, 0, Rt, c0, c<crm>, <opc2>`: a debug register.
#[cfg(target_arch = "arm")]
macro_rules! cp14_debug {
    (read $crm:literal, $opc2:literal) => {{
        let value: u32;
        // SAFETY: reading a debug register from Hyp mode has no side
        // effects.
        unsafe {
            core::arch::asm!(
                concat!("mrc p14, 0, {}, c0, c", $crm, ", ", $opc2),
                out(reg) value,
                options(nomem, nostack, preserves_flags)
            )
        };
        value
    }};
    (write $crm:literal, $opc2:literal, $value:expr) => {
        core::arch::asm!(
            concat!("mcr p14, 0, {}, c0, c", $crm, ", ", $opc2),
            in(reg) $value,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Writes every breakpoint and watchpoint pair of a [`DebugContext`] to
/// the CPU (CRm is the pair's number; opc2 4/5 for breakpoints, 6/7 for
/// watchpoints), each disabled while its value changes.
#[cfg(target_arch = "arm")]
macro_rules! write_debug_pairs {
    ($self:ident) => {
        write_debug_pairs!(@pair $self, breakpoints, 0, 4, 5);
        write_debug_pairs!(@pair $self, breakpoints, 1, 4, 5);
        write_debug_pairs!(@pair $self, breakpoints, 2, 4, 5);
        write_debug_pairs!(@pair $self, breakpoints, 3, 4, 5);
        write_debug_pairs!(@pair $self, breakpoints, 4, 4, 5);
        write_debug_pairs!(@pair $self, breakpoints, 5, 4, 5);
        write_debug_pairs!(@pair $self, watchpoints, 0, 6, 7);
        write_debug_pairs!(@pair $self, watchpoints, 1, 6, 7);
        write_debug_pairs!(@pair $self, watchpoints, 2, 6, 7);
        write_debug_pairs!(@pair $self, watchpoints, 3, 6, 7);
    };
    (@pair $self:ident, $field:ident, $n:literal, $value:literal, $control:literal) => {
        cp14_debug!(write $n, $control, 0u32);
        cp14_debug!(write $n, $value, $self.$field[$n].0);
        cp14_debug!(write $n, $control, $self.$field[$n].1);
    };
}

/// Breakpoint and watchpoint register pairs switched per VM: the first
/// six and four, all a Cortex-A15 (and A7) has.
pub const BREAKPOINTS: usize = 6;
/// See [`BREAKPOINTS`].
pub const WATCHPOINTS: usize = 4;

/// DBGDSCR bits a guest may set: MDBGen (15, monitor debug-mode enable)
/// and UDCCdis (12, the debug communications channel undefined at PL0).
pub const DSCR_GUEST_BITS: u32 = (1 << 15) | (1 << 12);
/// DBGDSCR.MOE (bits 5:2): the method of debug entry, read from the
/// hardware.
pub const DSCR_METHOD_OF_ENTRY: u32 = 0xf << 2;
/// DBGBCR and DBGWCR bit 13, HMC: the breakpoint or watchpoint also
/// matches in Hyp mode. Always 0 for a guest.
pub const CONTROL_HYP_MATCH: u32 = 1 << 13;
/// What DBGOSLAR takes to lock the OS lock.
pub const OS_LOCK_KEY: u32 = 0xc5ac_ce55;
/// DBGOSLSR.OSLM = 0b10 (bit 3 set, bit 0 clear): the v7.1 OS lock is
/// implemented (and no OS save and restore register).
pub const OSLSR_LOCK_IMPLEMENTED: u32 = 1 << 3;
/// DBGOSLSR.OSLK (bit 1): the OS lock is locked.
pub const OSLSR_LOCKED: u32 = 1 << 1;
/// DBGPRSR.PU (bit 0): the debug logic is powered up.
pub const PRSR_POWERED_UP: u32 = 1;

/// One guest's debug registers: breakpoints, watchpoints, vector catch,
/// its DBGDSCR bits and its OS lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugContext {
    /// DBGBVR0-5, DBGBCR0-5.
    pub breakpoints: [(u32, u32); BREAKPOINTS],
    /// DBGWVR0-3, DBGWCR0-3.
    pub watchpoints: [(u32, u32); WATCHPOINTS],
    /// DBGVCR.
    pub vector_catch: u32,
    /// The guest's DBGDSCR bits ([`DSCR_GUEST_BITS`] only).
    pub status_control: u32,
    /// The OS lock (emulated; not written to the hardware).
    pub os_locked: bool,
}

/// The debug register a trapped CP14 access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugRegister {
    /// DBGDIDR (`c0, c0, 0`), read only.
    Identification,
    /// DBGDRAR (`c1, c0, 0`; 64-bit `c1`) and DBGDSAR (`c2, c0, 0`; 64-bit
    /// `c2`), read only.
    RomAddress,
    /// DBGDSCRint (`c0, c1, 0`, read only) and DBGDSCRext (`c0, c2, 2`).
    StatusControl,
    /// DBGDTRRXint (read) and DBGDTRTXint (write), `c0, c5, 0`.
    Transfer,
    /// DBGVCR (`c0, c7, 0`).
    VectorCatch,
    /// DBGBVRn (`c0, cn, 4`) or, with `control`, DBGBCRn (`c0, cn, 5`).
    Breakpoint { number: usize, control: bool },
    /// DBGWVRn (`c0, cn, 6`) or, with `control`, DBGWCRn (`c0, cn, 7`).
    Watchpoint { number: usize, control: bool },
    /// DBGOSLAR (`c1, c0, 4`), write only.
    OsLockAccess,
    /// DBGOSLSR (`c1, c1, 4`), read only.
    OsLockStatus,
    /// DBGOSDLR (`c1, c3, 4`) and DBGPRCR (`c1, c4, 4`).
    PowerDownControl,
    /// DBGPRSR (`c1, c5, 4`), read only.
    PowerDownStatus,
}

impl DebugRegister {
    /// The register `access` reaches, if it is a CP14 debug register
    /// Capvisor emulates in that direction; `None` for anything else
    /// (an undefined instruction for the guest).
    pub fn of(access: &SystemRegisterAccess) -> Option<DebugRegister> {
        if access.coprocessor != 14 || access.opc1 != 0 {
            return None;
        }
        let read = access.read;
        if access.register2.is_some() {
            // MRRC p14, 0, Rt, Rt2, c1 / c2: DBGDRAR / DBGDSAR.
            return (read && matches!(access.crm, 1 | 2)).then_some(DebugRegister::RomAddress);
        }
        let number = access.crm as usize;
        let register = match (access.crn, access.crm, access.opc2) {
            (0, 0, 0) if read => DebugRegister::Identification,
            (1 | 2, 0, 0) if read => DebugRegister::RomAddress,
            (0, 1, 0) if read => DebugRegister::StatusControl,
            (0, 2, 2) => DebugRegister::StatusControl,
            (0, 5, 0) => DebugRegister::Transfer,
            (0, 7, 0) => DebugRegister::VectorCatch,
            (0, _, 4 | 5) if number < BREAKPOINTS => DebugRegister::Breakpoint {
                number,
                control: access.opc2 == 5,
            },
            (0, _, 6 | 7) if number < WATCHPOINTS => DebugRegister::Watchpoint {
                number,
                control: access.opc2 == 7,
            },
            (1, 0, 4) if !read => DebugRegister::OsLockAccess,
            (1, 1, 4) if read => DebugRegister::OsLockStatus,
            (1, 3 | 4, 4) => DebugRegister::PowerDownControl,
            (1, 5, 4) if read => DebugRegister::PowerDownStatus,
            _ => return None,
        };
        Some(register)
    }
}

/// The hardware a [`DebugContext`] emulates on: the CPU's debug registers
/// while the vCPU runs ([`DebugHardware::Live`]), nothing while it is
/// switched out or on the host (then only the context changes, and the
/// hardware is written at its next switch-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugHardware {
    /// The vCPU is switched in: its registers are the CPU's.
    Live,
    /// The vCPU's registers are only in its context.
    Absent,
}

impl DebugContext {
    /// Whether every register holds its reset value (zero, unlocked).
    pub fn is_clear(&self) -> bool {
        *self == DebugContext::default()
    }

    /// Performs a trapped access to `register`: a read returns the value
    /// the guest sees, a write (`written`) changes the vCPU's registers
    /// (and the CPU's when `hardware` is live) and returns `None`.
    /// `None` for a read as well when the register cannot be read on this
    /// hardware (DBGDIDR on the host).
    pub fn emulate(
        &mut self,
        register: DebugRegister,
        written: Option<u32>,
        hardware: DebugHardware,
    ) -> Option<u32> {
        let Some(value) = written else {
            return self.read(register, hardware);
        };
        match register {
            DebugRegister::StatusControl => self.status_control = value & DSCR_GUEST_BITS,
            DebugRegister::VectorCatch => self.vector_catch = value,
            DebugRegister::Breakpoint { number, control } => {
                set_pair(&mut self.breakpoints[number], control, value)
            }
            DebugRegister::Watchpoint { number, control } => {
                set_pair(&mut self.watchpoints[number], control, value)
            }
            DebugRegister::OsLockAccess => self.os_locked = value == OS_LOCK_KEY,
            // Read only (DebugRegister::of never names these for a
            // write), or writes with no effect: the channel has no one on
            // the other end, power-down requests are not honoured.
            DebugRegister::Identification
            | DebugRegister::RomAddress
            | DebugRegister::Transfer
            | DebugRegister::OsLockStatus
            | DebugRegister::PowerDownControl
            | DebugRegister::PowerDownStatus => return None,
        }
        if hardware == DebugHardware::Live {
            // SAFETY: the vCPU is switched in: these are its registers,
            // and HMC is clear in every control register it set.
            #[cfg(target_arch = "arm")]
            unsafe {
                self.restore()
            };
        }
        None
    }

    fn read(&self, register: DebugRegister, hardware: DebugHardware) -> Option<u32> {
        Some(match register {
            DebugRegister::Identification => limit_identification(hardware_identification()?),
            DebugRegister::RomAddress | DebugRegister::Transfer => 0,
            DebugRegister::PowerDownControl => 0,
            DebugRegister::StatusControl => {
                let entry = match hardware {
                    DebugHardware::Live => hardware_status() & DSCR_METHOD_OF_ENTRY,
                    DebugHardware::Absent => 0,
                };
                self.status_control | entry
            }
            DebugRegister::VectorCatch => self.vector_catch,
            DebugRegister::Breakpoint { number, control } => {
                pair_half(self.breakpoints[number], control)
            }
            DebugRegister::Watchpoint { number, control } => {
                pair_half(self.watchpoints[number], control)
            }
            DebugRegister::OsLockAccess => return None,
            DebugRegister::OsLockStatus => {
                OSLSR_LOCK_IMPLEMENTED | if self.os_locked { OSLSR_LOCKED } else { 0 }
            }
            DebugRegister::PowerDownStatus => PRSR_POWERED_UP,
        })
    }
}

fn set_pair(pair: &mut (u32, u32), control: bool, value: u32) {
    if control {
        pair.1 = value & !CONTROL_HYP_MATCH;
    } else {
        pair.0 = value;
    }
}

fn pair_half(pair: (u32, u32), control: bool) -> u32 {
    if control {
        pair.1
    } else {
        pair.0
    }
}

/// DBGDIDR with its WRPs (bits 31:28) and BRPs (27:24) fields (the count
/// less one) at most what Capvisor switches.
pub fn limit_identification(didr: u32) -> u32 {
    let watchpoints = ((didr >> 28) & 0xf).min(WATCHPOINTS as u32 - 1);
    let breakpoints = ((didr >> 24) & 0xf).min(BREAKPOINTS as u32 - 1);
    (didr & 0x00ff_ffff) | (watchpoints << 28) | (breakpoints << 24)
}

/// Whether a CPU with DBGDIDR `didr` has every breakpoint and watchpoint
/// pair Capvisor switches ([`BREAKPOINTS`], [`WATCHPOINTS`]): a vCPU's
/// [`DebugContext::restore`] writes them all, and on a CPU with fewer
/// those writes would be undefined instructions in Hyp mode.
pub fn has_switched_pairs(didr: u32) -> bool {
    ((didr >> 24) & 0xf) + 1 >= BREAKPOINTS as u32 && ((didr >> 28) & 0xf) + 1 >= WATCHPOINTS as u32
}

/// Refuses to run on a CPU with fewer breakpoints or watchpoints than
/// Capvisor switches (every Cortex-A15 and Cortex-A7 has 6 and 4), at
/// boot, before a guest exists, with the CPU's DBGDIDR in the message.
///
/// # Panics
///
/// On such a CPU (a hypervisor built for it would have to switch fewer).
#[cfg(target_arch = "arm")]
pub fn check_hardware() {
    let didr = cp14_debug!(read 0, 0);
    assert!(
        has_switched_pairs(didr),
        "DBGDIDR {didr:#010x}: this CPU has fewer than the {BREAKPOINTS} breakpoints and {WATCHPOINTS} watchpoints Capvisor switches per vCPU"
    );
}

/// DBGDIDR from the CPU.
#[cfg(target_arch = "arm")]
fn hardware_identification() -> Option<u32> {
    Some(cp14_debug!(read 0, 0))
}

/// The host has no debug hardware to identify.
#[cfg(not(target_arch = "arm"))]
fn hardware_identification() -> Option<u32> {
    None
}

/// DBGDSCRext from the CPU.
#[cfg(target_arch = "arm")]
fn hardware_status() -> u32 {
    cp14_debug!(read 2, 2)
}

/// Never called on the host: [`DebugHardware::Live`] exists only while a
/// vCPU runs on the target.
#[cfg(not(target_arch = "arm"))]
fn hardware_status() -> u32 {
    0
}

impl DebugContext {
    /// Writes the debug registers to the CPU: DBGDSCR's guest bits, every
    /// breakpoint and watchpoint, DBGVCR.
    ///
    /// # Safety
    /// Only for the vCPU switched in (or being switched in) on this CPU;
    /// its control registers have HMC clear (as [`DebugContext::emulate`]
    /// leaves them), so that nothing it arms matches in Hyp mode.
    #[cfg(target_arch = "arm")]
    pub unsafe fn restore(&self) {
        let dscr = cp14_debug!(read 2, 2);
        // SAFETY: the guest's own values (the caller's promise); debug
        // exceptions they enable are taken at PL1 by that guest.
        unsafe {
            cp14_debug!(write 2, 2, (dscr & !DSCR_GUEST_BITS) | self.status_control);
            write_debug_pairs!(self);
            cp14_debug!(write 7, 0, self.vector_catch);
        }
        aarch32_cpu::asm::isb();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(read: bool, crn: u8, crm: u8, opc2: u8) -> SystemRegisterAccess {
        SystemRegisterAccess {
            coprocessor: 14,
            read,
            opc1: 0,
            crn,
            crm,
            opc2,
            register: 0,
            register2: None,
        }
    }

    #[test]
    fn a_cpu_must_have_every_switched_pair() {
        // Cortex-A15: 4 watchpoints, 6 breakpoints (fields hold count - 1).
        assert!(has_switched_pairs(0x3515_f005));
        assert!(!has_switched_pairs(0x3415_f005), "5 breakpoints");
        assert!(!has_switched_pairs(0x2515_f005), "3 watchpoints");
        assert!(has_switched_pairs(0xff15_f005), "more than switched");
    }

    #[test]
    fn linux_boot_registers_are_named() {
        // What Linux's hw_breakpoint reads and writes at boot.
        let cases = [
            (access(true, 0, 0, 0), Some(DebugRegister::Identification)),
            (access(true, 1, 3, 4), Some(DebugRegister::PowerDownControl)),
            (access(false, 1, 0, 4), Some(DebugRegister::OsLockAccess)),
            (access(true, 1, 1, 4), Some(DebugRegister::OsLockStatus)),
            (access(true, 1, 5, 4), Some(DebugRegister::PowerDownStatus)),
            (access(false, 0, 7, 0), Some(DebugRegister::VectorCatch)),
            (access(true, 0, 1, 0), Some(DebugRegister::StatusControl)),
            (access(false, 0, 2, 2), Some(DebugRegister::StatusControl)),
            (
                access(false, 0, 5, 5),
                Some(DebugRegister::Breakpoint {
                    number: 5,
                    control: true,
                }),
            ),
            (
                access(true, 0, 3, 6),
                Some(DebugRegister::Watchpoint {
                    number: 3,
                    control: false,
                }),
            ),
        ];
        for (access, register) in cases {
            assert_eq!(DebugRegister::of(&access), register, "{access:?}");
        }
    }

    #[test]
    fn other_accesses_are_undefined() {
        for access in [
            access(false, 0, 0, 0), // DBGDIDR is read only
            access(true, 1, 0, 4),  // DBGOSLAR is write only
            access(false, 1, 1, 4), // DBGOSLSR is read only
            access(true, 0, 6, 4),  // DBGBVR6: beyond the six switched
            access(true, 0, 4, 7),  // DBGWCR4: beyond the four switched
            access(true, 7, 8, 6),  // DBGCLAIMSET
            access(true, 0, 0, 2),  // DBGDTRRXext
        ] {
            assert_eq!(DebugRegister::of(&access), None, "{access:?}");
        }
        let mut thumbee = access(true, 1, 0, 0);
        thumbee.opc1 = 6;
        assert_eq!(DebugRegister::of(&thumbee), None);
        let mut cp15 = access(true, 0, 0, 0);
        cp15.coprocessor = 15;
        assert_eq!(DebugRegister::of(&cp15), None);
        let mut rom = access(true, 0, 1, 0);
        rom.register2 = Some(1);
        assert_eq!(DebugRegister::of(&rom), Some(DebugRegister::RomAddress));
        rom.crm = 3;
        assert_eq!(DebugRegister::of(&rom), None);
    }

    #[test]
    fn breakpoints_are_per_context_and_never_match_in_hyp() {
        let (mut a, mut b) = (DebugContext::default(), DebugContext::default());
        let value = DebugRegister::Breakpoint {
            number: 1,
            control: false,
        };
        let control = DebugRegister::Breakpoint {
            number: 1,
            control: true,
        };
        a.emulate(value, Some(0x4000_1000), DebugHardware::Absent);
        // Enabled, PL1 and PL0, and HMC: HMC does not stick.
        a.emulate(control, Some(0x2000 | 0x1e7), DebugHardware::Absent);
        assert_eq!(
            a.emulate(value, None, DebugHardware::Absent),
            Some(0x4000_1000)
        );
        assert_eq!(a.emulate(control, None, DebugHardware::Absent), Some(0x1e7));
        assert_eq!(b.emulate(value, None, DebugHardware::Absent), Some(0));
        assert!(b.is_clear() && !a.is_clear());
        let watch = DebugRegister::Watchpoint {
            number: 3,
            control: true,
        };
        b.emulate(watch, Some(0xffff_ffff), DebugHardware::Absent);
        assert_eq!(b.watchpoints[3].1, !CONTROL_HYP_MATCH);
    }

    #[test]
    fn status_control_keeps_only_the_guest_bits() {
        let mut context = DebugContext::default();
        let dscr = DebugRegister::StatusControl;
        context.emulate(dscr, Some(u32::MAX), DebugHardware::Absent);
        assert_eq!(
            context.emulate(dscr, None, DebugHardware::Absent),
            Some(DSCR_GUEST_BITS)
        );
        assert_eq!(context.status_control & (1 << 14), 0, "HDBGen stays clear");
    }

    #[test]
    fn the_os_lock_is_emulated() {
        let mut context = DebugContext::default();
        let status = |context: &mut DebugContext| {
            context.emulate(DebugRegister::OsLockStatus, None, DebugHardware::Absent)
        };
        assert_eq!(status(&mut context), Some(OSLSR_LOCK_IMPLEMENTED));
        context.emulate(
            DebugRegister::OsLockAccess,
            Some(OS_LOCK_KEY),
            DebugHardware::Absent,
        );
        assert_eq!(
            status(&mut context),
            Some(OSLSR_LOCK_IMPLEMENTED | OSLSR_LOCKED)
        );
        // Linux unlocks with anything but the key.
        context.emulate(
            DebugRegister::OsLockAccess,
            Some(!OS_LOCK_KEY),
            DebugHardware::Absent,
        );
        assert_eq!(status(&mut context), Some(OSLSR_LOCK_IMPLEMENTED));
        assert_eq!(
            context.emulate(DebugRegister::PowerDownStatus, None, DebugHardware::Absent),
            Some(PRSR_POWERED_UP)
        );
        assert!(context.is_clear());
    }

    #[test]
    fn identification_is_limited_to_the_switched_pairs() {
        // A Cortex-A15's DBGDIDR: 4 watchpoints, 6 breakpoints, v7.1.
        assert_eq!(limit_identification(0x3515_f021), 0x3515_f021);
        // A core with 16 of each is offered six and four.
        assert_eq!(limit_identification(0xff15_f021), 0x3515_f021);
    }
}
