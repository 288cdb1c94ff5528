// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trap dispatch: who owns a guest exit, and what happens next.
//!
//! [`dispatch`] takes one decoded [`GuestExit`] and the guest's registers
//! and hands the exit to its owner: an MMIO access to the [`MmioDevice`]
//! whose guest-physical range contains it, a hypercall or SMC to the
//! [`HypercallDriver`] that owns its function id (SMCCC numbering, id in
//! r0, arguments in r1-r7, results in r0-r3), and everything else to the
//! fault path, which answers with an [`Action`] that reflects the fault
//! into the guest (design rule 2, `docs/architecture.md`). Nothing here
//! touches hardware, so it is
//! tested on the host with fake devices and registers.
//!
//! Function ids nobody owns get SMCCC's NOT_SUPPORTED (-1) in r0, never a
//! fault: that is how guests probe for services.

use crate::trap::{AccessSize, FaultKind, GuestExit, SystemRegisterAccess, Trap};

/// SMCCC and PSCI "not supported" (-1).
pub const NOT_SUPPORTED: u32 = -1i32 as u32;

/// The guest's core registers, as the dispatcher needs them.
pub trait GuestRegisters {
    /// Register `n` (0-14) of the guest's current mode.
    fn register(&self, n: u8) -> u32;
    /// Sets register `n` (0-14) of the guest's current mode.
    fn set_register(&mut self, n: u8, value: u32);
    /// r0-r7, which no mode banks: an SMCCC call's function id and
    /// arguments. Implementations may answer faster than eight `register`
    /// calls; hypercalls are the hottest exit.
    fn call_registers(&self) -> [u32; 8] {
        core::array::from_fn(|n| self.register(n as u8))
    }
    /// The guest's PC at the exit.
    fn pc(&self) -> u32;
    /// Sets the PC the guest resumes at.
    fn set_pc(&mut self, pc: u32);
    /// Emulates a trapped system register access (reading into or writing
    /// from the guest's registers). The default emulates nothing: the
    /// guest gets an undefined-instruction exception.
    fn emulate_system_register(&mut self, access: &SystemRegisterAccess) -> SystemRegisterOutcome {
        let _ = access;
        SystemRegisterOutcome::Undefined
    }
}

/// What became of a trapped system register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemRegisterOutcome {
    /// Emulated: the guest resumes after the instruction.
    Emulated,
    /// The hypervisor gave the guest the register (it no longer traps):
    /// the guest runs the instruction again itself.
    Retry,
    /// Not a register the guest may use: an undefined-instruction
    /// exception.
    Undefined,
}

/// Why a virtual device refused an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The device has no register at that offset.
    NoRegister,
    /// The register exists but not with that access size.
    BadSize,
}

/// A virtual device mapped at a guest-physical range (Tock's peripheral
/// capsules; `docs/architecture.md`, layers).
pub trait MmioDevice {
    /// Name for messages.
    fn name(&self) -> &'static str;
    /// First guest-physical address of the device.
    fn base(&self) -> u64;
    /// Size of the device's register window in bytes.
    fn size(&self) -> u64;
    /// Reads `size` bytes at `offset` from the base.
    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError>;
    /// Writes the low `size` bytes of `value` at `offset`.
    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError>;
    /// Whether a successful access at `offset` (a write when `write`) can
    /// have changed the interrupts the VM sees: a line the device raises
    /// or lowers, or the state of its interrupt controller. The kernel
    /// presents the VM's interrupts again before the next entry only after
    /// such an access, so a device that answers false for a register with
    /// side effects on interrupts delays them; the default, true, is
    /// always safe. Status and configuration reads answer false.
    fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
        let _ = (offset, write);
        true
    }
    /// Puts the device back in its reset state, for a restart of its VM
    /// (nothing the guest left in it may survive). A device that cannot
    /// keeps the default, `Err(NotResettable)`, and cannot be given to a
    /// VM with a restart policy.
    fn reset(&self) -> Result<(), NotResettable> {
        Err(NotResettable)
    }
    /// Whether stores that the VM's stage 2 refuses with a permission fault
    /// (a store to read-only memory: a firmware's flash bank) are this
    /// device's: such a store is dropped and the guest resumes after it, as
    /// a ROM ignores writes. The CPU reports no address for a stage-2
    /// permission fault, so the VM's one read-only mapping must belong to
    /// the device that answers yes. The default, no, leaves such a store
    /// an abort in the guest.
    fn drops_read_only_stores(&self) -> bool {
        false
    }
}

/// A device or service that cannot be put back in its reset state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotResettable;

/// What a hypercall asks of the hypervisor after it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallOutcome {
    /// Return to the guest with these values in r0-r3 (`None` leaves the
    /// register as it is).
    Return([Option<u32>; 4]),
    /// The VM asked to stop (PSCI SYSTEM_OFF, CPU_OFF of its only CPU).
    StopVm,
    /// The calling vCPU turns itself off (PSCI CPU_OFF in a VM with
    /// several vCPUs); the VM stops when its last vCPU is off.
    CpuOff,
    /// The VM asked to restart (PSCI SYSTEM_RESET).
    ResetVm,
    /// Return these values (as `Return`), then let other VMs run first.
    Yield([Option<u32>; 4]),
}

impl HypercallOutcome {
    /// Returns one value in r0.
    pub const fn value(r0: u32) -> HypercallOutcome {
        HypercallOutcome::Return([Some(r0), None, None, None])
    }
}

/// A hypercall service (Tock's `SyscallDriver`): owns ranges of SMCCC
/// function ids.
pub trait HypercallDriver {
    /// The function ids this service owns, as inclusive ranges. Asked once,
    /// when the VM's dispatch tables are built ([`Routes::new`]), which
    /// refuse an id two services of one VM claim; a call then reaches its
    /// service without any service being asked whether it owns it.
    fn functions(&self) -> &[core::ops::RangeInclusive<u32>];
    /// Whether `function` belongs to this service.
    fn owns(&self, function: u32) -> bool {
        self.functions()
            .iter()
            .any(|range| range.contains(&function))
    }
    /// Handles `function` with the guest's r1-r7.
    fn call(&self, function: u32, arguments: [u32; 7]) -> HypercallOutcome;
    /// Name for messages.
    fn name(&self) -> &'static str {
        "a hypercall service"
    }
    /// Forgets what the VM left in the service, for a restart of the VM
    /// (see [`MmioDevice::reset`]); the default cannot.
    fn reset(&self) -> Result<(), NotResettable> {
        Err(NotResettable)
    }
}

/// What the hypervisor does after an exit was dispatched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resume the guest (registers and PC already updated).
    Resume,
    /// Resume the guest after an emulated device access that can have
    /// changed its interrupts ([`MmioDevice::changes_interrupts`]): the
    /// kernel presents them again before the entry.
    ResumeInterruptsChanged,
    /// The guest waits for an interrupt (it resumes after the WFI).
    Wait,
    /// Stop the VM at its own request.
    StopVm,
    /// Turn the calling vCPU off (PSCI CPU_OFF).
    CpuOff,
    /// Restart the VM at its own request.
    ResetVm,
    /// Resume the guest later: it gives up the rest of its time slice.
    Yield,
    /// Reflect a data abort at `va` into the guest, reported as `cause`.
    InjectDataAbort {
        va: u32,
        write: bool,
        cause: AbortCause,
    },
    /// Reflect a prefetch abort at `va` into the guest.
    InjectPrefetchAbort { va: u32 },
    /// Reflect an undefined-instruction exception into the guest.
    InjectUndefined,
}

/// What a reflected data abort reports to the guest (its DFSR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    /// A synchronous external abort: what real hardware reports for an
    /// address nothing decodes, or an access a device refuses.
    External,
    /// An alignment fault: an unaligned access to a device, which real
    /// Device memory never allows.
    Alignment,
}

impl AbortCause {
    /// The cause of a refused access of `size` at `ipa`.
    const fn of_access(ipa: u64, size: AccessSize) -> AbortCause {
        if ipa.is_multiple_of(size.bytes() as u64) {
            AbortCause::External
        } else {
            AbortCause::Alignment
        }
    }
}

/// Register number of the PC: never a valid MMIO transfer register.
const PC: u8 = 15;

/// Dispatches one exit. `devices` and `services` are the VM's own.
pub fn dispatch(
    exit: &GuestExit,
    registers: &mut impl GuestRegisters,
    routes: &Routes<'_>,
) -> Action {
    let bytes = exit.instruction_bytes;
    match exit.trap {
        // HVC returns to the next instruction already; a trapped SMC
        // returns to the SMC itself, so it is skipped.
        Trap::Hypercall { .. } => call(registers, routes),
        Trap::SecureMonitorCall => {
            skip(registers, bytes);
            call(registers, routes)
        }
        Trap::WaitForInterrupt { .. } | Trap::WaitForEvent { .. } => {
            skip(registers, bytes);
            Action::Wait
        }
        Trap::MmioRead {
            ipa,
            va,
            size,
            sign_extend,
            register,
        } => match routes.device(ipa, size) {
            Some((device, offset)) if register != PC => match device.read(offset, size) {
                Ok(value) => {
                    registers.set_register(register, extend(value, size, sign_extend));
                    skip(registers, bytes);
                    emulated(device, offset, false)
                }
                Err(_) => refused(ipa, va, size, false),
            },
            _ => refused(ipa, va, size, false),
        },
        Trap::MmioWrite {
            ipa,
            va,
            size,
            register,
        } => match routes.device(ipa, size) {
            Some((device, offset)) if register != PC => {
                match device.write(offset, size, registers.register(register)) {
                    Ok(()) => {
                        skip(registers, bytes);
                        emulated(device, offset, true)
                    }
                    Err(_) => refused(ipa, va, size, true),
                }
            }
            _ => refused(ipa, va, size, true),
        },
        // A store to the VM's read-only memory, when a device owns it and
        // the instruction's length is known (`GuestExit::instruction_bytes`
        // is 0 when it is not: a Thumb store without a syndrome).
        Trap::DataAbort {
            write: true,
            kind: FaultKind::Permission { .. },
            stage1_walk: false,
            ..
        } if routes.drops_read_only_stores && bytes != 0 => {
            skip(registers, bytes);
            Action::Resume
        }
        Trap::DataAbort {
            va, write, kind, ..
        } => Action::InjectDataAbort {
            va,
            write,
            cause: match kind {
                FaultKind::Alignment => AbortCause::Alignment,
                _ => AbortCause::External,
            },
        },
        Trap::PrefetchAbort { va, .. } => Action::InjectPrefetchAbort { va },
        Trap::SystemRegister { access, .. } => match registers.emulate_system_register(&access) {
            SystemRegisterOutcome::Emulated => {
                skip(registers, bytes);
                Action::Resume
            }
            SystemRegisterOutcome::Retry => Action::Resume,
            SystemRegisterOutcome::Undefined => Action::InjectUndefined,
        },
        Trap::FloatingPoint | Trap::Undefined { .. } => Action::InjectUndefined,
        Trap::Irq | Trap::Fiq => Action::Resume,
    }
}

/// How the guest resumes after `device` emulated an access at `offset`.
#[inline]
fn emulated(device: &dyn MmioDevice, offset: u64, write: bool) -> Action {
    if device.changes_interrupts(offset, write) {
        Action::ResumeInterruptsChanged
    } else {
        Action::Resume
    }
}

/// The abort for an MMIO access nobody emulates: an alignment fault when
/// it is unaligned (no device window starts unaligned), else external.
fn refused(ipa: u64, va: u32, size: AccessSize, write: bool) -> Action {
    Action::InjectDataAbort {
        va,
        write,
        cause: AbortCause::of_access(ipa, size),
    }
}

/// Moves the PC past the trapping instruction (`bytes` long).
fn skip(registers: &mut impl GuestRegisters, bytes: u32) {
    let pc = registers.pc().wrapping_add(bytes);
    registers.set_pc(pc);
}

/// The most virtual devices, and the most hypercall services, one VM has.
pub const MAX_ROUTES: usize = 8;
/// The most ranges of function ids the services of one VM own together.
pub const MAX_FUNCTION_RANGES: usize = 16;

/// Why a VM's devices and services cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutesError {
    /// More than [`MAX_ROUTES`] devices or services.
    TooMany,
    /// More than [`MAX_FUNCTION_RANGES`] ranges of function ids.
    TooManyFunctionRanges,
    /// Two services claim `function` (the first id they share).
    SharedFunction {
        function: u32,
        first: &'static str,
        second: &'static str,
    },
}

impl core::fmt::Display for RoutesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RoutesError::TooMany => write!(
                f,
                "at most {MAX_ROUTES} devices and {MAX_ROUTES} hypercall services"
            ),
            RoutesError::TooManyFunctionRanges => write!(
                f,
                "the hypercall services own more than {MAX_FUNCTION_RANGES} ranges of function ids"
            ),
            RoutesError::SharedFunction {
                function,
                first,
                second,
            } => write!(
                f,
                "{first} and {second} both claim function id {function:#010x}"
            ),
        }
    }
}

/// A VM's dispatch tables, made once with the VM: each device's window (so
/// that finding the device of an MMIO access calls no trait object) and
/// each range of function ids its services own, indexed by SMCCC owner
/// (function id bits 29:24), so that a call compares its id with the few
/// ranges of its owner and calls only the service it belongs to.
#[derive(Clone)]
pub struct Routes<'a> {
    devices: &'a [&'a dyn MmioDevice],
    /// (base, size) of each device, in `devices` order.
    windows: [(u64, u64); MAX_ROUTES],
    /// (lowest base, highest end - lowest base) of all windows: an access
    /// outside it (an abort to inject, the common miss) is refused with
    /// one compare, whatever the number of devices.
    span: (u64, u64),
    /// The window the last access found: looked at first, since a guest
    /// touches one device many times in a row (a character at a time to
    /// the UART, acknowledge then end of interrupt to the GIC).
    last: core::cell::Cell<u8>,
    services: &'a [&'a dyn HypercallDriver],
    /// (first id, last id - first id, index in `services`) of each range.
    functions: [(u32, u32, u8); MAX_FUNCTION_RANGES],
    /// Bit `i` of entry `owner`: `functions[i]` holds ids of `owner`.
    by_owner: [u16; 64],
    /// Whether a device drops stores to read-only memory
    /// ([`MmioDevice::drops_read_only_stores`]).
    drops_read_only_stores: bool,
}

impl core::fmt::Debug for Routes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Routes")
            .field("windows", &&self.windows[..self.devices.len()])
            .field("services", &self.services.len())
            .finish()
    }
}

/// Whether some id in `first..=last` has SMCCC owner `owner` (bits 29:24;
/// bits 31:30, the call type and convention, take any value).
fn range_has_owner(first: u32, last: u32, owner: u32) -> bool {
    (0..4u32).any(|kind| {
        let start = kind << 30 | owner << 24;
        let end = start | 0x00ff_ffff;
        start <= last && first <= end
    })
}

impl<'a> Routes<'a> {
    /// Resets every device and service (a restart of the VM). All are
    /// reset, whatever fails; returns the name of the first that cannot
    /// be.
    pub fn reset_all(&self) -> Result<(), &'static str> {
        let mut first = Ok(());
        for device in self.devices {
            if device.reset().is_err() && first.is_ok() {
                first = Err(device.name());
            }
        }
        for service in self.services {
            if service.reset().is_err() && first.is_ok() {
                first = Err(service.name());
            }
        }
        first
    }

    /// The tables for `devices` and `services` (at most [`MAX_ROUTES`]
    /// each; earlier devices win where windows overlap; no function id may
    /// belong to two services).
    pub fn new(
        devices: &'a [&'a dyn MmioDevice],
        services: &'a [&'a dyn HypercallDriver],
    ) -> Result<Routes<'a>, RoutesError> {
        if devices.len() > MAX_ROUTES || services.len() > MAX_ROUTES {
            return Err(RoutesError::TooMany);
        }
        let mut windows = [(0, 0); MAX_ROUTES];
        let (mut low, mut high) = (u64::MAX, 0);
        for (window, device) in windows.iter_mut().zip(devices) {
            *window = (device.base(), device.size());
            low = low.min(device.base());
            high = high.max(device.base().saturating_add(device.size()));
        }
        let span = (low, high.saturating_sub(low));
        let mut functions = [(0, 0, 0); MAX_FUNCTION_RANGES];
        let mut count = 0;
        for (index, service) in services.iter().enumerate() {
            for range in service.functions().iter().filter(|range| !range.is_empty()) {
                let (first, last) = (*range.start(), *range.end());
                if let Some(&(other_first, _, other)) = functions[..count]
                    .iter()
                    .find(|&&(f, span, _)| f <= last && first <= f + span)
                {
                    return Err(RoutesError::SharedFunction {
                        function: first.max(other_first),
                        first: services[other as usize].name(),
                        second: service.name(),
                    });
                }
                let slot = functions
                    .get_mut(count)
                    .ok_or(RoutesError::TooManyFunctionRanges)?;
                *slot = (first, last - first, index as u8);
                count += 1;
            }
        }
        let mut by_owner = [0u16; 64];
        for (owner, candidates) in by_owner.iter_mut().enumerate() {
            for (index, &(first, span, _)) in functions[..count].iter().enumerate() {
                if range_has_owner(first, first + span, owner as u32) {
                    *candidates |= 1 << index;
                }
            }
        }
        Ok(Routes {
            devices,
            windows,
            span,
            last: core::cell::Cell::new(0),
            services,
            functions,
            by_owner,
            drops_read_only_stores: devices.iter().any(|device| device.drops_read_only_stores()),
        })
    }

    /// The device whose window holds the whole access, and the offset in
    /// it.
    #[inline]
    fn device(&self, ipa: u64, size: AccessSize) -> Option<(&'a dyn MmioDevice, u64)> {
        let bytes = size.bytes() as u64;
        let holds = |(base, window): (u64, u64)| {
            let offset = ipa.wrapping_sub(base);
            (offset < window && window - offset >= bytes).then_some(offset)
        };
        let last = self.last.get() as usize;
        if let (Some(&window), Some(&device)) = (self.windows.get(last), self.devices.get(last)) {
            if let Some(offset) = holds(window) {
                return Some((device, offset));
            }
        }
        let (low, extent) = self.span;
        if ipa.wrapping_sub(low) >= extent {
            return None;
        }
        let (index, offset) = self.windows[..self.devices.len()]
            .iter()
            .enumerate()
            .find_map(|(index, &window)| Some((index, holds(window)?)))?;
        self.last.set(index as u8);
        Some((self.devices[index], offset))
    }

    /// The service that owns `function`: the ranges of its owner compared,
    /// no service asked.
    #[inline]
    fn service(&self, function: u32) -> Option<&'a dyn HypercallDriver> {
        let mut candidates = self.by_owner[((function >> 24) & 0x3f) as usize];
        while candidates != 0 {
            let (first, span, service) = self.functions[candidates.trailing_zeros() as usize];
            if function.wrapping_sub(first) <= span {
                return self.services.get(service as usize).copied();
            }
            candidates &= candidates - 1;
        }
        None
    }
}

/// Writes a hypercall's results into r0-r3 (`None` leaves one as it is).
fn set_results(registers: &mut impl GuestRegisters, values: &[Option<u32>; 4]) {
    for (n, value) in values.iter().enumerate() {
        if let Some(value) = value {
            registers.set_register(n as u8, *value);
        }
    }
}

/// Zero- or sign-extends a loaded value to 32 bits.
fn extend(value: u32, size: AccessSize, sign_extend: bool) -> u32 {
    match (size, sign_extend) {
        (AccessSize::Byte, false) => value & 0xff,
        (AccessSize::Byte, true) => value as u8 as i8 as i32 as u32,
        (AccessSize::Halfword, false) => value & 0xffff,
        (AccessSize::Halfword, true) => value as u16 as i16 as i32 as u32,
        _ => value,
    }
}

/// Runs the hypercall in r0 with r1-r7, or answers NOT_SUPPORTED. Inlined:
/// hypercalls are the hottest exit, and the call costs a tenth of one.
#[inline(always)]
fn call(registers: &mut impl GuestRegisters, routes: &Routes<'_>) -> Action {
    let function = registers.register(0);
    let Some(service) = routes.service(function) else {
        registers.set_register(0, NOT_SUPPORTED);
        return Action::Resume;
    };
    let [_, r1, r2, r3, r4, r5, r6, r7] = registers.call_registers();
    let arguments = [r1, r2, r3, r4, r5, r6, r7];
    match service.call(function, arguments) {
        HypercallOutcome::Return(values) => {
            set_results(registers, &values);
            Action::Resume
        }
        HypercallOutcome::StopVm => Action::StopVm,
        HypercallOutcome::CpuOff => Action::CpuOff,
        HypercallOutcome::ResetVm => Action::ResetVm,
        HypercallOutcome::Yield(values) => {
            set_results(registers, &values);
            Action::Yield
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[derive(Default)]
    struct FakeRegisters {
        r: [u32; 15],
        pc: u32,
    }

    impl GuestRegisters for FakeRegisters {
        fn register(&self, n: u8) -> u32 {
            self.r[n as usize]
        }
        fn set_register(&mut self, n: u8, value: u32) {
            self.r[n as usize] = value;
        }
        fn pc(&self) -> u32 {
            self.pc
        }
        fn set_pc(&mut self, pc: u32) {
            self.pc = pc;
        }
    }

    /// A device with one 32-bit register at offset 0 and a byte register at
    /// 4; reading the byte register has no effect on interrupts.
    struct FakeDevice {
        word: Cell<u32>,
    }

    impl MmioDevice for FakeDevice {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn base(&self) -> u64 {
            0x0900_0000
        }
        fn size(&self) -> u64 {
            0x1000
        }
        fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
            match (offset, size) {
                (0, AccessSize::Word) => Ok(self.word.get()),
                (4, AccessSize::Byte) => Ok(0xf0),
                (0 | 4, _) => Err(MmioError::BadSize),
                _ => Err(MmioError::NoRegister),
            }
        }
        fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
            match (offset, size) {
                (0, AccessSize::Word) => {
                    self.word.set(value);
                    Ok(())
                }
                _ => Err(MmioError::NoRegister),
            }
        }
        fn changes_interrupts(&self, offset: u64, write: bool) -> bool {
            write || offset != 4
        }
    }

    /// A 4 KiB window at `.0` named `.1` with nothing in it.
    struct Window(u64, &'static str);

    impl MmioDevice for Window {
        fn name(&self) -> &'static str {
            self.1
        }
        fn base(&self) -> u64 {
            self.0
        }
        fn size(&self) -> u64 {
            0x1000
        }
        fn read(&self, _offset: u64, _size: AccessSize) -> Result<u32, MmioError> {
            Ok(0)
        }
        fn write(&self, _offset: u64, _size: AccessSize, _value: u32) -> Result<(), MmioError> {
            Ok(())
        }
    }

    #[test]
    fn the_last_window_found_is_looked_at_first_and_never_wrongly() {
        let (a, b, c) = (
            Window(0x0801_0000, "a"),
            Window(0x0900_0000, "b"),
            Window(0x0a00_0000, "c"),
        );
        let devices: [&dyn MmioDevice; 3] = [&a, &b, &c];
        let routes = Routes::new(&devices, &[]).unwrap();
        let found = |ipa| {
            routes
                .device(ipa, AccessSize::Word)
                .map(|(device, offset)| (device.name(), offset))
        };
        assert_eq!(found(0x0900_0010), Some(("b", 0x10)));
        assert_eq!(routes.last.get(), 1);
        assert_eq!(found(0x0900_0ffc), Some(("b", 0xffc)));
        // Past the end of the last window found: not its, and not anyone's.
        assert_eq!(found(0x0900_0ffe), None);
        assert_eq!(found(0x0900_1000), None);
        assert_eq!(found(0x0a00_0004), Some(("c", 4)));
        assert_eq!(found(0x0801_0000), Some(("a", 0)));
        assert_eq!(routes.last.get(), 0);
        // Below and above every window, with the cache on either side.
        assert_eq!(found(0x0800_fffc), None);
        assert_eq!(found(0x0a00_1000), None);
        assert_eq!(found(0x0900_0000), Some(("b", 0)));
    }

    struct Psci;

    impl HypercallDriver for Psci {
        fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
            &[0x8400_0000..=0x84ff_ffff]
        }
        fn call(&self, function: u32, arguments: [u32; 7]) -> HypercallOutcome {
            match function {
                0x8400_0000 => HypercallOutcome::value(2),
                0x8400_0008 => HypercallOutcome::StopVm,
                0x8400_0009 => HypercallOutcome::ResetVm,
                _ => HypercallOutcome::Return([Some(arguments[0]), Some(arguments[6]), None, None]),
            }
        }
    }

    fn exit(trap: Trap) -> GuestExit {
        GuestExit {
            trap,
            instruction_bytes: 4,
        }
    }

    /// Dispatches `trap` to `device` and the fake PSCI.
    fn run_with(trap: Trap, registers: &mut impl GuestRegisters, device: &FakeDevice) -> Action {
        let devices: [&dyn MmioDevice; 1] = [device];
        let services: [&dyn HypercallDriver; 1] = [&Psci];
        let routes = Routes::new(&devices, &services).unwrap();
        dispatch(&exit(trap), registers, &routes)
    }

    fn run(trap: Trap, registers: &mut FakeRegisters, device: &FakeDevice) -> Action {
        run_with(trap, registers, device)
    }

    /// A device that can reset (its word back to 0).
    struct ResettableDevice(FakeDevice);

    impl MmioDevice for ResettableDevice {
        fn name(&self) -> &'static str {
            "resettable"
        }
        fn base(&self) -> u64 {
            0x0a00_0000
        }
        fn size(&self) -> u64 {
            0x1000
        }
        fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
            self.0.read(offset, size)
        }
        fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
            self.0.write(offset, size, value)
        }
        fn reset(&self) -> Result<(), NotResettable> {
            self.0.word.set(0);
            Ok(())
        }
    }

    #[test]
    fn reset_all_resets_every_device_and_names_the_first_that_cannot() {
        let good = ResettableDevice(FakeDevice { word: Cell::new(7) });
        let stuck = FakeDevice { word: Cell::new(9) };
        let both: [&dyn MmioDevice; 2] = [&stuck, &good];
        let services: [&dyn HypercallDriver; 1] = [&Psci];
        let routes = Routes::new(&both, &services).unwrap();
        // The fake PSCI keeps the default (cannot reset) too; the device
        // comes first.
        assert_eq!(routes.reset_all(), Err("fake"));
        assert_eq!(good.0.word.get(), 0, "reset even after a failure");
        assert_eq!(stuck.word.get(), 9);
        let only_good: [&dyn MmioDevice; 1] = [&good];
        let routes = Routes::new(&only_good, &[]).unwrap();
        good.0.word.set(5);
        assert_eq!(routes.reset_all(), Ok(()));
        assert_eq!(good.0.word.get(), 0);
        let routes = Routes::new(&[], &services).unwrap();
        assert_eq!(routes.reset_all(), Err("a hypercall service"));
    }

    #[test]
    fn hypercalls_reach_their_owner_and_return_values() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters {
            pc: 0x4000_0004,
            ..Default::default()
        };
        regs.r[0] = 0x8400_0000;
        assert_eq!(
            run(Trap::Hypercall { immediate: 0 }, &mut regs, &device),
            Action::Resume
        );
        assert_eq!(
            (regs.r[0], regs.pc),
            (2, 0x4000_0004),
            "HVC: PC already past it"
        );
        regs.r[0] = 0x8400_0042;
        regs.r[1] = 11;
        regs.r[7] = 77;
        run(Trap::Hypercall { immediate: 0 }, &mut regs, &device);
        assert_eq!(
            (regs.r[0], regs.r[1]),
            (11, 77),
            "arguments r1..r7 in order"
        );
    }

    #[test]
    fn unknown_functions_get_not_supported() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters::default();
        for function in [0, 0xffff_ffff, 0x8600_0000, 0xc400_0000] {
            regs.r[0] = function;
            assert_eq!(
                run(Trap::Hypercall { immediate: 0 }, &mut regs, &device),
                Action::Resume
            );
            assert_eq!(regs.r[0], NOT_SUPPORTED, "{function:#x}");
        }
    }

    #[test]
    fn smc_is_skipped_and_stop_and_reset_pass_through() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters {
            pc: 0x100,
            ..Default::default()
        };
        regs.r[0] = 0x8400_0008;
        assert_eq!(
            run(Trap::SecureMonitorCall, &mut regs, &device),
            Action::StopVm
        );
        assert_eq!(regs.pc, 0x104);
        regs.r[0] = 0x8400_0009;
        assert_eq!(
            run(Trap::Hypercall { immediate: 0 }, &mut regs, &device),
            Action::ResetVm
        );
    }

    #[test]
    fn mmio_read_and_write_reach_the_device() {
        let device = FakeDevice {
            word: Cell::new(0x1234_5678),
        };
        let mut regs = FakeRegisters {
            pc: 0x200,
            ..Default::default()
        };
        let read = Trap::MmioRead {
            ipa: 0x0900_0000,
            va: 0x0900_0000,
            size: AccessSize::Word,
            sign_extend: false,
            register: 3,
        };
        assert_eq!(
            run(read, &mut regs, &device),
            Action::ResumeInterruptsChanged
        );
        assert_eq!((regs.r[3], regs.pc), (0x1234_5678, 0x204));
        regs.r[5] = 0xcafe;
        let write = Trap::MmioWrite {
            ipa: 0x0900_0000,
            va: 0x0900_0000,
            size: AccessSize::Word,
            register: 5,
        };
        assert_eq!(
            run(write, &mut regs, &device),
            Action::ResumeInterruptsChanged
        );
        assert_eq!(device.word.get(), 0xcafe);
    }

    #[test]
    fn an_access_the_device_calls_quiet_resumes_without_an_interrupt_change() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters::default();
        let status = Trap::MmioRead {
            ipa: 0x0900_0004,
            va: 0x0900_0004,
            size: AccessSize::Byte,
            sign_extend: false,
            register: 1,
        };
        assert_eq!(run(status, &mut regs, &device), Action::Resume);
        assert_eq!((regs.r[1], regs.pc), (0xf0, 4));
    }

    #[test]
    fn sign_extending_byte_load() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters::default();
        let load = |sign_extend| Trap::MmioRead {
            ipa: 0x0900_0004,
            va: 0xc000_0004,
            size: AccessSize::Byte,
            sign_extend,
            register: 2,
        };
        run(load(true), &mut regs, &device);
        assert_eq!(regs.r[2], 0xffff_fff0);
        run(load(false), &mut regs, &device);
        assert_eq!(regs.r[2], 0xf0);
    }

    #[test]
    fn unclaimed_or_refused_accesses_become_data_aborts() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters {
            pc: 0x300,
            ..Default::default()
        };
        let at = |ipa, size, register| Trap::MmioRead {
            ipa,
            va: 0xc000_1000,
            size,
            sign_extend: false,
            register,
        };
        let abort = Action::InjectDataAbort {
            va: 0xc000_1000,
            write: false,
            cause: AbortCause::External,
        };
        let misaligned = Action::InjectDataAbort {
            va: 0xc000_1000,
            write: false,
            cause: AbortCause::Alignment,
        };
        // Nobody there; a register that does not exist; the wrong size; a
        // load into the PC; an access straddling the end of the window
        // (unaligned, so an alignment fault); unaligned inside the window,
        // and unaligned where nobody is.
        assert_eq!(
            run(at(0x0a00_0000, AccessSize::Word, 1), &mut regs, &device),
            abort
        );
        assert_eq!(
            run(at(0x0900_0010, AccessSize::Word, 1), &mut regs, &device),
            abort
        );
        assert_eq!(
            run(at(0x0900_0000, AccessSize::Halfword, 1), &mut regs, &device),
            abort
        );
        assert_eq!(
            run(at(0x0900_0000, AccessSize::Word, 15), &mut regs, &device),
            abort
        );
        assert_eq!(
            run(at(0x0900_0ffe, AccessSize::Word, 1), &mut regs, &device),
            misaligned
        );
        assert_eq!(
            run(at(0x0900_0001, AccessSize::Halfword, 1), &mut regs, &device),
            misaligned
        );
        assert_eq!(
            run(at(0x0a00_0002, AccessSize::Word, 1), &mut regs, &device),
            misaligned
        );
        assert_eq!(regs.pc, 0x300, "a faulting access is not skipped");
    }

    /// A ROM's device: it owns the VM's read-only memory.
    struct Rom;

    impl MmioDevice for Rom {
        fn name(&self) -> &'static str {
            "rom"
        }
        fn base(&self) -> u64 {
            0x0400_0000
        }
        fn size(&self) -> u64 {
            0x1000
        }
        fn read(&self, _: u64, _: AccessSize) -> Result<u32, MmioError> {
            Ok(0)
        }
        fn write(&self, _: u64, _: AccessSize, _: u32) -> Result<(), MmioError> {
            Ok(())
        }
        fn drops_read_only_stores(&self) -> bool {
            true
        }
    }

    #[test]
    fn stores_to_read_only_memory_are_dropped_only_when_a_device_owns_it() {
        let store = |kind, write, stage1_walk| Trap::DataAbort {
            va: 0x40,
            ipa: None,
            write,
            kind,
            stage1_walk,
        };
        let permission = crate::trap::FaultKind::Permission { level: 2 };
        let rom: [&dyn MmioDevice; 1] = [&Rom];
        let routes = Routes::new(&rom, &[]).unwrap();
        let mut regs = FakeRegisters {
            pc: 0x100,
            ..Default::default()
        };
        assert_eq!(
            dispatch(&exit(store(permission, true, false)), &mut regs, &routes),
            Action::Resume
        );
        assert_eq!(regs.pc, 0x104, "the dropped store is skipped");
        // A load, a walk's fault and another kind of fault still abort.
        for trap in [
            store(permission, false, false),
            store(permission, true, true),
            store(crate::trap::FaultKind::External, true, false),
        ] {
            assert!(matches!(
                dispatch(&exit(trap), &mut regs, &routes),
                Action::InjectDataAbort { .. }
            ));
        }
        assert_eq!(regs.pc, 0x104);
        // A store of unknown length (Thumb, no syndrome) cannot be skipped:
        // it aborts.
        let unknown = GuestExit {
            trap: store(permission, true, false),
            instruction_bytes: 0,
        };
        assert!(matches!(
            dispatch(&unknown, &mut regs, &routes),
            Action::InjectDataAbort { write: true, .. }
        ));
        assert_eq!(regs.pc, 0x104);
        // Without a device that owns read-only memory, the store aborts.
        let device = FakeDevice { word: Cell::new(0) };
        assert_eq!(
            run(store(permission, true, false), &mut regs, &device),
            Action::InjectDataAbort {
                va: 0x40,
                write: true,
                cause: AbortCause::External,
            }
        );
    }

    #[test]
    fn faults_and_unemulated_instructions_go_to_the_guest() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters::default();
        let data = Trap::DataAbort {
            va: 0x10,
            ipa: None,
            write: true,
            kind: crate::trap::FaultKind::External,
            stage1_walk: false,
        };
        assert_eq!(
            run(data, &mut regs, &device),
            Action::InjectDataAbort {
                va: 0x10,
                write: true,
                cause: AbortCause::External,
            }
        );
        let unaligned = Trap::DataAbort {
            va: 0x10,
            ipa: None,
            write: true,
            kind: crate::trap::FaultKind::Alignment,
            stage1_walk: false,
        };
        assert_eq!(
            run(unaligned, &mut regs, &device),
            Action::InjectDataAbort {
                va: 0x10,
                write: true,
                cause: AbortCause::Alignment,
            }
        );
        let fetch = Trap::PrefetchAbort {
            va: 0x20,
            ipa: Some(0x20),
            kind: crate::trap::FaultKind::Translation { level: 1 },
            stage1_walk: false,
        };
        assert_eq!(
            run(fetch, &mut regs, &device),
            Action::InjectPrefetchAbort { va: 0x20 }
        );
        assert_eq!(
            run(Trap::Undefined { syndrome: 0 }, &mut regs, &device),
            Action::InjectUndefined
        );
        assert_eq!(
            run(Trap::FloatingPoint, &mut regs, &device),
            Action::InjectUndefined
        );
    }

    #[test]
    fn system_registers_are_emulated_or_undefined() {
        struct WithActlr(FakeRegisters);
        impl GuestRegisters for WithActlr {
            fn register(&self, n: u8) -> u32 {
                self.0.register(n)
            }
            fn set_register(&mut self, n: u8, value: u32) {
                self.0.set_register(n, value)
            }
            fn pc(&self) -> u32 {
                self.0.pc
            }
            fn set_pc(&mut self, pc: u32) {
                self.0.pc = pc
            }
            fn emulate_system_register(
                &mut self,
                access: &SystemRegisterAccess,
            ) -> SystemRegisterOutcome {
                match (access.crn, access.opc2, access.read) {
                    (1, 1, true) => {
                        self.0.r[access.register as usize] = 0x40;
                        SystemRegisterOutcome::Emulated
                    }
                    (9, _, _) => SystemRegisterOutcome::Retry,
                    _ => SystemRegisterOutcome::Undefined,
                }
            }
        }
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = WithActlr(FakeRegisters {
            pc: 0x500,
            ..Default::default()
        });
        let access = |crn, opc2| SystemRegisterAccess {
            coprocessor: 15,
            read: true,
            opc1: 0,
            crn,
            crm: 0,
            opc2,
            register: 3,
            register2: None,
        };
        let trap = |crn, opc2| Trap::SystemRegister {
            access: access(crn, opc2),
            condition: None,
        };
        let action = run_with(trap(1, 1), &mut regs, &device);
        assert_eq!(
            (action, regs.0.r[3], regs.0.pc),
            (Action::Resume, 0x40, 0x504)
        );
        let action = run_with(trap(15, 0), &mut regs, &device);
        assert_eq!((action, regs.0.pc), (Action::InjectUndefined, 0x504));
        // A register handed to the guest: the same instruction again.
        let action = run_with(trap(9, 0), &mut regs, &device);
        assert_eq!((action, regs.0.pc), (Action::Resume, 0x504));
    }

    #[test]
    fn wfi_is_skipped_and_waits() {
        let device = FakeDevice { word: Cell::new(0) };
        let mut regs = FakeRegisters {
            pc: 0x400,
            ..Default::default()
        };
        assert_eq!(
            run(
                Trap::WaitForInterrupt {
                    condition: Some(0xe)
                },
                &mut regs,
                &device
            ),
            Action::Wait
        );
        assert_eq!(regs.pc, 0x404);
    }

    #[test]
    fn calls_reach_the_service_whose_range_holds_them_and_no_other() {
        /// Owns `functions`; counts its calls.
        struct Counting {
            calls: Cell<u32>,
            functions: [core::ops::RangeInclusive<u32>; 2],
        }
        impl HypercallDriver for Counting {
            fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
                &self.functions
            }
            fn call(&self, function: u32, _: [u32; 7]) -> HypercallOutcome {
                self.calls.set(self.calls.get() + 1);
                HypercallOutcome::value(function & 0xff)
            }
        }
        // Owner 6's 0x00-0x0f and 0x20 for one; 0x10-0x1f and all of
        // owner 5's SMC64 ids for the other.
        let low = Counting {
            calls: Cell::new(0),
            functions: [0x8600_0000..=0x8600_000f, 0x8600_0020..=0x8600_0020],
        };
        let high = Counting {
            calls: Cell::new(0),
            functions: [0x8600_0010..=0x8600_001f, 0xc500_0000..=0xc5ff_ffff],
        };
        let services: [&dyn HypercallDriver; 2] = [&low, &high];
        let routes = Routes::new(&[], &services).unwrap();
        let mut regs = FakeRegisters::default();
        let mut call = |function| {
            regs.r[0] = function;
            dispatch(&exit(Trap::Hypercall { immediate: 0 }), &mut regs, &routes);
            regs.r[0]
        };
        assert_eq!(call(0x8600_0003), 3);
        assert_eq!(call(0x8600_0020), 0x20);
        assert_eq!((low.calls.get(), high.calls.get()), (2, 0));
        assert_eq!(call(0x8600_001f), 0x1f);
        assert_eq!(call(0xc500_0042), 0x42, "owner 5, SMC64 form");
        assert_eq!(call(0xc5ab_cd01), 1, "inside the wide range");
        assert_eq!((low.calls.get(), high.calls.get()), (2, 3));
        for nobody in [
            0x8600_0021,
            0x8600_0fff,
            0x8400_0000,
            0xc600_0003,
            0,
            u32::MAX,
        ] {
            assert_eq!(call(nobody), NOT_SUPPORTED, "{nobody:#x}");
        }
        assert_eq!((low.calls.get(), high.calls.get()), (2, 3));
    }

    #[test]
    fn an_id_claimed_twice_or_too_many_ranges_are_refused() {
        struct Claims(&'static str, [core::ops::RangeInclusive<u32>; 1]);
        impl HypercallDriver for Claims {
            fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
                &self.1
            }
            fn call(&self, _: u32, _: [u32; 7]) -> HypercallOutcome {
                unreachable!()
            }
            fn name(&self) -> &'static str {
                self.0
            }
        }
        let a = Claims("a", [0x8600_0000..=0x8600_00ff]);
        let b = Claims("b", [0x8600_0080..=0x8600_0180]);
        let services: [&dyn HypercallDriver; 2] = [&a, &b];
        assert_eq!(
            Routes::new(&[], &services).err(),
            Some(RoutesError::SharedFunction {
                function: 0x8600_0080,
                first: "a",
                second: "b"
            })
        );
        let c = Claims("c", [0x8600_0100..=0x8600_01ff]);
        let services: [&dyn HypercallDriver; 2] = [&a, &c];
        assert!(Routes::new(&[], &services).is_ok(), "adjacent, not shared");
        let many: [&dyn HypercallDriver; MAX_ROUTES + 1] = [&a; MAX_ROUTES + 1];
        assert_eq!(Routes::new(&[], &many).err(), Some(RoutesError::TooMany));
        struct Ranges([core::ops::RangeInclusive<u32>; 9]);
        impl HypercallDriver for Ranges {
            fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
                &self.0
            }
            fn call(&self, _: u32, _: [u32; 7]) -> HypercallOutcome {
                unreachable!()
            }
        }
        let first = Ranges(core::array::from_fn(|n| n as u32 * 2..=n as u32 * 2));
        let second = Ranges(core::array::from_fn(|n| 100 + n as u32..=100 + n as u32));
        let services: [&dyn HypercallDriver; 2] = [&first, &second];
        assert_eq!(
            Routes::new(&[], &services).err(),
            Some(RoutesError::TooManyFunctionRanges)
        );
    }
}
