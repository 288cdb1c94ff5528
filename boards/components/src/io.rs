// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console output for every board, and the panic handler.
//!
//! The hypervisor's messages go to the board's console PL011 by polling,
//! each line prefixed with `capvisor: `. The board names the UART once, at
//! the start of boot ([`set_console`]); the panic handler builds its own
//! driver at that address instead of borrowing the board's, so it works whatever state the
//! rest of the system is in, prints the message and where it came from
//! (for a Hyp-mode exception, the decoded fault report), and stops QEMU with
//! [`ExitCode::Fatal`].

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use hyp::debug::{LinePrefixer, PREFIX};
use hyp::exit::ExitCode;
use pl011::Pl011;

/// The console UART's address (0 until the board names it).
static CONSOLE_BASE: AtomicUsize = AtomicUsize::new(0);

/// Names the console UART (a PL011 at `base`), initialises it and starts
/// a fresh line. Called once, first thing at boot.
///
/// # Safety
/// `base` must be a PL011 that is identity mapped as Device memory before
/// and after the Hyp MMU is enabled (in the board's memory map), used by
/// nothing but the console functions of this module and the board's
/// console input.
pub unsafe fn set_console(base: usize, clock_hz: u32, baud: u32) {
    CONSOLE_BASE.store(base, Ordering::Relaxed);
    let console = console();
    console.init(clock_hz, baud);
    console.write_str_crlf("\n");
}

/// The console UART. The driver is only a typed pointer, so each user makes
/// its own (the pattern of Tock boards' `io.rs`); polled output needs no
/// shared driver state.
pub fn console() -> Pl011 {
    let base = CONSOLE_BASE.load(Ordering::Relaxed);
    if base == 0 {
        // No console yet: nothing can be said; stop with the fatal status.
        armv7a::semihosting::exit(ExitCode::Fatal.status());
    }
    // SAFETY: the board named this UART with `set_console`, whose contract
    // makes it mapped Device memory used only by the console.
    unsafe { Pl011::new(base) }
}

/// Held while a CPU writes to the console, so that the lines of two CPUs
/// do not interleave. Taken only once the writer's MMU is on (exclusive
/// accesses need cacheable memory on hardware; before that only the boot
/// CPU runs).
static CONSOLE_LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Runs `write` while holding the console (see [`CONSOLE_LOCK`]).
pub fn with_console<R>(write: impl FnOnce(&Pl011) -> R) -> R {
    let console = console();
    if !armv7a::mmu::hyp_mmu_enabled() {
        return write(&console);
    }
    let _guard = CONSOLE_LOCK.lock();
    write(&console)
}

/// The console as the multiplexer writes to it: each write under the
/// console lock, so VMs' output and the hypervisor's lines from several
/// CPUs never interleave within a write.
#[derive(Clone, Copy, Debug)]
pub struct SharedConsole;

impl hyp::hil::console::ConsoleOutput for SharedConsole {
    fn write(&self, bytes: &[u8]) {
        with_console(|console| hyp::hil::console::ConsoleOutput::write(console, bytes));
    }
}

/// Prints `args` on the console, each line prefixed with `capvisor: `.
pub fn print(args: fmt::Arguments) {
    with_console(|console| {
        let mut writer = LinePrefixer::new(console, PREFIX);
        // Writing to the UART cannot fail.
        let _ = writer.write_fmt(args);
    });
}

/// `println!` for the hypervisor's own messages.
#[macro_export]
macro_rules! log {
    () => { $crate::io::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints why boot cannot go on and stops with [`ExitCode::BootRefused`].
pub fn refuse_boot(reason: fmt::Arguments) -> ! {
    print(format_args!("boot refused: {}\n", reason));
    console().flush();
    armv7a::semihosting::exit(ExitCode::BootRefused.status())
}

/// Waits for the console to drain and stops QEMU with `code`.
pub fn stop(code: ExitCode) -> ! {
    console().flush();
    armv7a::semihosting::exit(code.status())
}

/// Which CPU is in the panic handler, plus one (0: none), so that a panic
/// while printing a panic stops at once and a second CPU's panic waits for
/// the first one's report to stop the machine.
static PANICKING: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let me = armv7a::cpu::current() + 1;
    let first = if armv7a::mmu::hyp_mmu_enabled() {
        PANICKING.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
    } else {
        // MMU off: only the boot CPU runs, and exclusive accesses may not
        // work on this memory.
        match PANICKING.load(Ordering::Relaxed) {
            0 => {
                PANICKING.store(me, Ordering::Relaxed);
                Ok(0)
            }
            other => Err(other),
        }
    };
    match first {
        Ok(_) => {}
        // This CPU panicked while reporting: stop now.
        Err(cpu) if cpu == me => armv7a::semihosting::exit(ExitCode::Fatal.status()),
        // Another CPU is reporting and will stop the machine.
        Err(_) => loop {
            armv7a::cpu::wait_for_interrupt();
        },
    }
    // The other CPUs may be printing: wait a little for the console, and
    // print anyway (its holder may be the one that faulted). Polled writes
    // need no driver state.
    let mut attempts = 0u32;
    let _guard = loop {
        if let Some(guard) = CONSOLE_LOCK.try_lock() {
            break Some(guard);
        }
        attempts += 1;
        if attempts > 1_000_000 || !armv7a::mmu::hyp_mmu_enabled() {
            break None;
        }
        core::hint::spin_loop();
    };
    let uart = console();
    // End whatever partial line was on the console, then report.
    uart.write_str_crlf("\n");
    let mut writer = LinePrefixer::new(&uart, PREFIX);
    let _ = writeln!(
        writer,
        "FATAL on CPU {}: {}",
        armv7a::cpu::current(),
        info.message()
    );
    if let Some(location) = info.location() {
        let _ = writeln!(
            writer,
            "panicked at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(
        writer,
        "stopping with exit status {}",
        ExitCode::Fatal.status()
    );
    uart.flush();
    armv7a::semihosting::exit(ExitCode::Fatal.status())
}
