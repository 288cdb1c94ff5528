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
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Prints `args` on the console, each line prefixed with `capvisor: `.
pub fn print(args: fmt::Arguments) {
    let console = console();
    let mut writer = LinePrefixer::new(&console, PREFIX);
    // Writing to the UART cannot fail.
    let _ = writer.write_fmt(args);
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

/// Set when the panic handler starts, so that a panic while printing a panic
/// stops at once.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.load(Ordering::Relaxed) {
        armv7a::semihosting::exit(ExitCode::Fatal.status());
    }
    PANICKING.store(true, Ordering::Relaxed);
    // Nothing else runs after a panic; polled writes need no driver state.
    let uart = console();
    // End whatever partial line was on the console, then report.
    uart.write_str_crlf("\n");
    let mut writer = LinePrefixer::new(&uart, PREFIX);
    let _ = writeln!(writer, "FATAL: {}", info.message());
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
