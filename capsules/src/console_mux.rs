// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console multiplexer: one physical console shared by every VM.
//!
//! The VM with the input focus owns the console: its output goes to the
//! physical UART untouched, byte for byte (a Linux shell, its line editing
//! and its escape sequences work as on a console of its own), and the
//! characters typed go to it. The other VMs' output is held per VM until a
//! line is complete and printed as one line with the VM's name in front, so
//! lines of different VMs never mix. The hypervisor's own messages start
//! with `capvisor: ` (`hyp::debug::PREFIX`) on a line of their own.
//!
//! VMs are numbered from 0 in this API (their index in the board's VM
//! table); messages show them counted from 1 with their name, as the board's
//! messages do (`VM 2 'beta'`).
//!
//! # Console modes
//!
//! Each VM has a mode ([`ConsoleMode`], from its system description) that
//! says what becomes of its output while another VM has the focus:
//!
//! - [`ConsoleMode::Held`] (the default): kept, raw, in a buffer of
//!   [`HELD_CAPACITY`] bytes, and written out when the VM gets the focus,
//!   after a line saying how much was held (and how much older output was
//!   dropped when the buffer was full). Nothing is drawn over the focused
//!   VM's screen, so a full-screen program there (an installer's dialogs,
//!   an editor) stays intact.
//! - [`ConsoleMode::Shared`]: printed at once as prefixed whole lines among
//!   the focused VM's output (below); for logs and tests.
//! - [`ConsoleMode::Discard`]: dropped; the focus line says how many bytes.
//!
//! # Output formats
//!
//! - Focused VM: its bytes, unchanged. The mux only remembers whether they
//!   left the cursor in the middle of a line (last byte not `\n`).
//! - Other VMs in shared mode: a line ends at `\n`; `\r` bytes are dropped (so `\n` and
//!   `\r\n` both end a line, and a lone `\r` does not overwrite anything);
//!   other bytes are kept as they are. A complete line is printed as
//!   `[name] text\r\n`. A line longer than [`LINE_CAPACITY`] bytes is printed
//!   in pieces of [`LINE_CAPACITY`] bytes as soon as a piece is full; every
//!   piece after the first is marked with a `+`: `[name]+ more text\r\n`.
//! - Hypervisor messages and status lines: `capvisor: text\r\n`, each line
//!   of a multi-line message prefixed, a missing final line end added.
//! - A prefixed line (of a VM or of the hypervisor) always starts at the
//!   beginning of a line: if the focused VM's output stopped mid-line (a
//!   shell prompt, or a line it was still printing), the mux ends that line
//!   with `\r\n` first. When the focused VM writes again, the mux first
//!   reprints what its broken line showed, so that the line reads whole
//!   below the interruption, as a shell redraws its prompt: the line's
//!   printable bytes and tabs, with backspaces applied, a `\r` starting it
//!   afresh, and escape sequences left out (reprinting a terminal query
//!   such as `ESC [ 6 n` would make the terminal answer twice). A broken
//!   line longer than [`LINE_CAPACITY`] bytes is not reprinted.
//!
//! # Input: Ctrl-] commands
//!
//! Every byte typed goes to the focused VM except the escape byte Ctrl-]
//! (0x1d; clashes neither with QEMU's Ctrl-A monitor prefix nor with a
//! shell, but telnet clients use it too: connect with `nc` or raw mode).
//! The byte after Ctrl-] is a command:
//!
//! | keys | effect | [`Input`] |
//! |---|---|---|
//! | Ctrl-] `n` | focus to the next VM (after the last comes the first) | `FocusChanged` |
//! | Ctrl-] `s` | the board prints a status line per VM ([`ConsoleMux::print_status`]) | `StatusRequested` |
//! | Ctrl-] Ctrl-] | send one Ctrl-] to the focused VM | `ToVm` |
//! | Ctrl-] other | both bytes dropped, a help line printed | `Consumed` |
//!
//! # Focus changes
//!
//! [`ConsoleMux::set_focus`] (and Ctrl-] `n`) prints
//! `capvisor: console focus: VM 2 'beta' (Ctrl-] n: next, Ctrl-] s: status)`.
//! If the VM losing the focus was mid-line, the rest of that line, when it
//! comes, is printed as a continuation (`[alpha]+ rest`). If the VM gaining
//! the focus has an incomplete line held, that partial line is printed with
//! its prefix and without a line end, and the VM's output continues raw
//! after it.
//!
//! ```
//! use capsules::console_mux::{ConsoleMux, Input};
//! use hyp::hil::console::ConsoleOutput;
//! # struct Uart;
//! # impl ConsoleOutput for Uart { fn write(&self, _: &[u8]) {} }
//! let uart = Uart;
//! let mux = ConsoleMux::new(&uart, &["alpha", "beta"]);
//! let beta = mux.port(1);
//! beta.write(b"booting\r\n"); // printed as "[beta] booting\r\n" (shared mode)
//! assert_eq!(mux.receive(b'x'), Input::ToVm { vm: 0, byte: b'x' });
//! ```
//!
//! # Locking
//!
//! The mux is `Sync`, and so are its ports: VMs on different CPUs write
//! through their ports, CPU 0 passes typed bytes to [`ConsoleMux::receive`]
//! and any CPU prints hypervisor messages, all at once. Everything in the
//! mux that changes (the focus, the cursor, the VMs' pending, held and
//! dropped output, a Ctrl-] waiting for its command) is behind one spin
//! lock, which every public method takes once and keeps until it is done,
//! so a VM's write, a prefixed line or a focus change reaches the physical
//! console whole, never mixed with another. The lock order is: a caller may
//! hold its VM's lock when it calls the mux; the mux holds its own lock
//! while it writes to the physical console (which must therefore be `Sync`
//! and may take the board's console lock, but must never call the mux).
//! While holding its lock the mux calls nothing else, except `describe` in
//! [`ConsoleMux::print_status`] and the formatting of the values in
//! [`ConsoleMux::print_hypervisor`]'s message: these must not call the mux,
//! for the lock is not re-entrant and such a call would wait for ever.

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use hyp::debug::{LinePrefixer, PREFIX};
use hyp::hil::console::ConsoleOutput;

/// The most VMs one mux serves: as many as a system may have.
pub use hyp::config::MAX_VMS;
/// Bytes of an unfocused VM's line held before a piece is printed.
pub const LINE_CAPACITY: usize = 128;
/// Bytes of a held VM's output kept while it does not have the focus (the
/// newest are kept).
pub const HELD_CAPACITY: usize = 4096;

/// What becomes of a VM's output while another VM has the focus (see the
/// module's "Console modes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsoleMode {
    /// Printed at once as prefixed lines.
    Shared,
    /// Kept (the newest [`HELD_CAPACITY`] bytes) and shown on focus.
    #[default]
    Held,
    /// Dropped.
    Discard,
}
/// The escape byte, Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// After [`ESCAPE`]: move the focus to the next VM.
pub const NEXT_COMMAND: u8 = b'n';
/// After [`ESCAPE`]: print the status of every VM.
pub const STATUS_COMMAND: u8 = b's';

impl fmt::Display for ConsoleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsoleMode::Shared => "shared",
            ConsoleMode::Held => "held",
            ConsoleMode::Discard => "discard",
        })
    }
}

/// What the caller does with a received byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Deliver `byte` to VM `vm`'s virtual UART.
    ToVm { vm: usize, byte: u8 },
    /// The focus moved to `vm`; the mux has printed the focus line.
    FocusChanged { vm: usize },
    /// The user asked for the status: call [`ConsoleMux::print_status`].
    StatusRequested,
    /// Part of a command, or an unknown command: nothing to do.
    Consumed,
}

/// Where the physical console's cursor is, as far as the mux knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// At the start of a line.
    LineStart,
    /// After raw output of this VM that did not end a line.
    AfterVm(usize),
}

/// An unfocused VM's line, not yet printed.
#[derive(Debug)]
struct PendingLine {
    bytes: heapless::Vec<u8, LINE_CAPACITY>,
    /// Earlier pieces of this line have been printed already.
    continued: bool,
}

/// Where [`ShownLine`] is in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    None,
    /// After ESC.
    Started,
    /// In a control sequence (ESC `[` ... final byte 0x40-0x7e).
    ControlSequence,
}

/// What the focused VM's current line shows on the terminal, as far as a
/// simple model of it tells (see the module's "Output formats").
#[derive(Debug)]
struct ShownLine {
    text: heapless::Vec<u8, LINE_CAPACITY>,
    escape: Escape,
    /// The line outgrew `text`: it is not reprinted.
    overflowed: bool,
}

impl ShownLine {
    const fn new() -> ShownLine {
        ShownLine {
            text: heapless::Vec::new(),
            escape: Escape::None,
            overflowed: false,
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.overflowed = false;
    }

    /// Follows one byte of the VM's output.
    fn feed(&mut self, byte: u8) {
        const ESC: u8 = 0x1b;
        const BACKSPACE: u8 = 0x08;
        match self.escape {
            Escape::Started => {
                self.escape = if byte == b'[' {
                    Escape::ControlSequence
                } else {
                    Escape::None
                };
            }
            Escape::ControlSequence => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
            }
            Escape::None => match byte {
                ESC => self.escape = Escape::Started,
                b'\n' | b'\r' => self.clear(),
                BACKSPACE => {
                    self.text.pop();
                }
                b'\t' | 0x20..=0x7e | 0x80..=0xff => {
                    self.overflowed |= self.text.push(byte).is_err();
                }
                _ => {}
            },
        }
    }
}

/// One VM's side of the mux.
#[derive(Debug)]
struct VmConsole {
    mode: ConsoleMode,
    /// Shared mode: the line not yet printed.
    pending: PendingLine,
    /// Held mode: output kept while unfocused (allocated once, at boot).
    held: VecDeque<u8>,
    /// Held or discard mode: bytes dropped since the VM last had the focus.
    dropped: usize,
}

/// The console multiplexer for 1 to [`MAX_VMS`] VMs.
///
/// It is `Sync`: VMs on different CPUs may write through their ports while
/// another CPU feeds it input or prints a message (see the module's
/// "Locking").
pub struct ConsoleMux<'a> {
    physical: &'a (dyn ConsoleOutput + Sync),
    names: Vec<&'static str>,
    /// Everything that changes, behind the mux's one lock.
    state: spin::Mutex<MuxState>,
}

/// The mux's changing state, locked as a whole.
struct MuxState {
    vms: Vec<VmConsole>,
    /// Ctrl-] came and the command byte has not.
    escape_pending: bool,
    /// The focused VM's current line.
    shown: ShownLine,
    /// The focus and the cursor.
    terminal: Terminal,
}

/// The part of [`MuxState`] that printing a prefixed line reads and
/// changes (kept apart so that it can be borrowed next to a VM's buffers).
struct Terminal {
    /// The VM that has the input focus.
    focus: usize,
    cursor: Cursor,
    /// A prefixed line broke the focused VM's line: reprint it before the
    /// VM's next bytes.
    broken: bool,
}

impl<'a> ConsoleMux<'a> {
    /// A mux writing to `physical`, VM `i` named `names[i]`, every VM's
    /// output shared. VM 0 has the focus; nothing is printed until someone
    /// writes.
    ///
    /// # Panics
    ///
    /// Unless there are 1 to [`MAX_VMS`] names (a board error).
    pub fn new(physical: &'a (dyn ConsoleOutput + Sync), names: &[&'static str]) -> Self {
        let vms: Vec<(&'static str, ConsoleMode)> = names
            .iter()
            .map(|name| (*name, ConsoleMode::Shared))
            .collect();
        Self::with_modes(physical, &vms)
    }

    /// A mux for VMs given as (name, console mode).
    ///
    /// # Panics
    ///
    /// Unless there are 1 to [`MAX_VMS`] VMs (a board error).
    pub fn with_modes(
        physical: &'a (dyn ConsoleOutput + Sync),
        vms: &[(&'static str, ConsoleMode)],
    ) -> Self {
        assert!(
            (1..=MAX_VMS).contains(&vms.len()),
            "a console mux serves 1 to 8 VMs"
        );
        ConsoleMux {
            physical,
            names: vms.iter().map(|(name, _)| *name).collect(),
            state: spin::Mutex::new(MuxState {
                vms: vms
                    .iter()
                    .map(|&(_, mode)| VmConsole {
                        mode,
                        pending: PendingLine {
                            bytes: heapless::Vec::new(),
                            continued: false,
                        },
                        held: VecDeque::with_capacity(if mode == ConsoleMode::Held {
                            HELD_CAPACITY
                        } else {
                            0
                        }),
                        dropped: 0,
                    })
                    .collect(),
                escape_pending: false,
                shown: ShownLine::new(),
                terminal: Terminal {
                    focus: 0,
                    cursor: Cursor::LineStart,
                    broken: false,
                },
            }),
        }
    }

    /// How many VMs it serves.
    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// VM `vm`'s output port, for its virtual UART and console hypercalls.
    ///
    /// # Panics
    ///
    /// If `vm` is not a VM of the mux (a board wiring error).
    pub fn port(&self, vm: usize) -> ConsolePort<'_, 'a> {
        assert!(
            vm < self.count(),
            "console port for VM index {vm} of {}",
            self.count()
        );
        ConsolePort { mux: self, vm }
    }

    /// The VM that has the input focus.
    pub fn focus(&self) -> usize {
        self.state.lock().terminal.focus
    }

    /// Gives VM `vm` the focus and prints the focus line (also when `vm`
    /// has it already, as an acknowledgement). See the module's "Focus
    /// changes" for what happens to partial lines.
    ///
    /// # Panics
    ///
    /// If `vm` is not a VM of the mux (a board error; typed commands never
    /// ask for a VM that does not exist).
    pub fn set_focus(&self, vm: usize) {
        assert!(
            vm < self.count(),
            "console focus to VM index {vm} of {}",
            self.count()
        );
        self.move_focus(&mut self.state.lock(), vm);
    }

    /// [`ConsoleMux::set_focus`] with the lock held.
    fn move_focus(&self, state: &mut MuxState, vm: usize) {
        let MuxState {
            vms,
            shown,
            terminal,
            ..
        } = state;
        let old = core::mem::replace(&mut terminal.focus, vm);
        if old != vm && terminal.cursor == Cursor::AfterVm(old) {
            vms[old].pending.continued = true;
        }
        let name = self.names[vm];
        self.hypervisor_line(terminal, |out| {
            write!(
                out,
                "console focus: VM {} '{name}' (Ctrl-] n: next, Ctrl-] s: status)",
                vm + 1
            )
        });
        if old == vm {
            return;
        }
        terminal.broken = false;
        shown.clear();
        let console = &mut vms[vm];
        let (held, dropped) = (console.held.len(), core::mem::take(&mut console.dropped));
        match console.mode {
            ConsoleMode::Shared => {
                let line = &mut console.pending;
                line.bytes.iter().for_each(|&byte| shown.feed(byte));
                if line.continued || !line.bytes.is_empty() {
                    self.print_vm_line(terminal, vm, line.continued, &line.bytes, false);
                    line.bytes.clear();
                    line.continued = false;
                }
            }
            ConsoleMode::Held if held > 0 || dropped > 0 => {
                self.hypervisor_line(terminal, |out| {
                    write!(
                        out,
                        "VM {} '{name}': {held} bytes of output held while in the background follow{}",
                        vm + 1,
                        Dropped(dropped, " (older bytes dropped: ")
                    )
                });
                let (first, second) = console.held.as_slices();
                for bytes in [first, second] {
                    bytes.iter().for_each(|&byte| shown.feed(byte));
                    self.physical.write(bytes);
                }
                if let Some(&last) = second.last().or(first.last()) {
                    if last != b'\n' {
                        terminal.cursor = Cursor::AfterVm(vm);
                    }
                }
                console.held.clear();
            }
            ConsoleMode::Discard if dropped > 0 => self.hypervisor_line(terminal, |out| {
                write!(
                    out,
                    "VM {} '{name}': {dropped} bytes of output discarded while in the background",
                    vm + 1
                )
            }),
            ConsoleMode::Held | ConsoleMode::Discard => {}
        }
    }

    /// Interprets one byte typed on the physical console (see the module's
    /// "Input" table).
    pub fn receive(&self, byte: u8) -> Input {
        let mut state = self.state.lock();
        let focus = state.terminal.focus;
        if !core::mem::replace(&mut state.escape_pending, false) {
            if byte == ESCAPE {
                state.escape_pending = true;
                return Input::Consumed;
            }
            return Input::ToVm { vm: focus, byte };
        }
        match byte {
            ESCAPE => Input::ToVm { vm: focus, byte },
            NEXT_COMMAND => {
                let vm = (focus + 1) % self.count();
                self.move_focus(&mut state, vm);
                Input::FocusChanged { vm }
            }
            STATUS_COMMAND => Input::StatusRequested,
            _ => {
                self.hypervisor_line(&mut state.terminal, |out| {
                    write!(
                        out,
                        "console: unknown command {byte:#04x} after Ctrl-] (n: next VM, \
                         s: status, Ctrl-]: send Ctrl-])"
                    )
                });
                Input::Consumed
            }
        }
    }

    /// Prints a hypervisor message: each line prefixed with `capvisor: `,
    /// starting on a fresh line and ending with a line end (`\n` in
    /// `message` becomes `\r\n`).
    ///
    /// `message` is formatted while the mux's lock is held, so that its
    /// lines come out together: the values it shows must not call the mux
    /// when they are formatted (the lock is not re-entrant: such a call
    /// would wait for ever).
    pub fn print_hypervisor(&self, message: fmt::Arguments) {
        self.hypervisor_line(&mut self.state.lock().terminal, |out| {
            out.write_fmt(message)
        });
    }

    /// Prints one status line per VM: `capvisor: * VM 1 'alpha': ` for the
    /// focused VM, `capvisor:   VM 2 'beta': ` for the others, followed by
    /// what `describe(vm, out)` writes (the mux cannot see VM state: the
    /// board says what to show, e.g. state, exits and faults).
    ///
    /// `describe` is called while the mux's lock is held (the status lines
    /// come out as one block): it must not call the mux, not even to read
    /// the focus or to print (the lock is not re-entrant: such a call would
    /// wait for ever).
    pub fn print_status(&self, mut describe: impl FnMut(usize, &mut dyn Write) -> fmt::Result) {
        let mut state = self.state.lock();
        let terminal = &mut state.terminal;
        let focus = terminal.focus;
        for (vm, name) in self.names.iter().enumerate() {
            let marker = if vm == focus { '*' } else { ' ' };
            self.hypervisor_line(terminal, |out| {
                write!(out, "{marker} VM {} '{name}': ", vm + 1)?;
                describe(vm, out)
            });
        }
    }

    /// Bytes written by VM `vm` (through its [`ConsolePort`]).
    fn write_from(&self, vm: usize, bytes: &[u8]) {
        let Some(&last) = bytes.last() else {
            return;
        };
        let mut state = self.state.lock();
        let MuxState {
            vms,
            shown,
            terminal,
            ..
        } = &mut *state;
        if vm == terminal.focus {
            if let Cursor::AfterVm(other) = terminal.cursor {
                if other != vm {
                    self.physical.write(b"\r\n");
                }
            }
            if core::mem::replace(&mut terminal.broken, false) && !shown.overflowed {
                self.physical.write(&shown.text);
            }
            bytes.iter().for_each(|&byte| shown.feed(byte));
            self.physical.write(bytes);
            terminal.cursor = if last == b'\n' {
                Cursor::LineStart
            } else {
                Cursor::AfterVm(vm)
            };
            return;
        }
        let console = &mut vms[vm];
        match console.mode {
            ConsoleMode::Shared => {}
            ConsoleMode::Held => {
                for &byte in bytes {
                    if console.held.len() == HELD_CAPACITY {
                        console.held.pop_front();
                        console.dropped += 1;
                    }
                    console.held.push_back(byte);
                }
                return;
            }
            ConsoleMode::Discard => {
                console.dropped += bytes.len();
                return;
            }
        }
        let line = &mut console.pending;
        for &byte in bytes {
            match byte {
                b'\n' => {
                    self.print_vm_line(terminal, vm, line.continued, &line.bytes, true);
                    line.bytes.clear();
                    line.continued = false;
                }
                b'\r' => {}
                _ => {
                    if line.bytes.push(byte).is_err() {
                        self.print_vm_line(terminal, vm, line.continued, &line.bytes, true);
                        line.bytes.clear();
                        line.continued = true;
                        // Cannot fail: the buffer was just emptied.
                        let _ = line.bytes.push(byte);
                    }
                }
            }
        }
    }

    /// Prints `[name] text` (`[name]+ text` if `continued`) on a fresh line,
    /// then a line end if `end_line`.
    fn print_vm_line(
        &self,
        terminal: &mut Terminal,
        vm: usize,
        continued: bool,
        text: &[u8],
        end_line: bool,
    ) {
        self.start_fresh_line(terminal);
        let out = self.physical;
        out.write(b"[");
        out.write(self.names[vm].as_bytes());
        out.write(if continued { b"]+ " } else { b"] " });
        out.write(text);
        if end_line {
            out.write(b"\r\n");
        } else {
            terminal.cursor = Cursor::AfterVm(vm);
        }
    }

    /// Prints one hypervisor message, whatever `write` writes, as whole
    /// prefixed lines.
    fn hypervisor_line(
        &self,
        terminal: &mut Terminal,
        write: impl FnOnce(&mut dyn Write) -> fmt::Result,
    ) {
        self.start_fresh_line(terminal);
        let mut text = CrLfText {
            out: self.physical,
            at_line_start: true,
        };
        {
            let mut prefixed = LinePrefixer::new(&mut text, PREFIX);
            // Console writes cannot fail; a formatting error of the caller
            // only cuts its message short.
            let _ = write(&mut prefixed);
        }
        if !text.at_line_start {
            self.physical.write(b"\r\n");
        }
        terminal.cursor = Cursor::LineStart;
    }

    /// Ends the line the cursor is in, if it is not at the start of one.
    fn start_fresh_line(&self, terminal: &mut Terminal) {
        match core::mem::replace(&mut terminal.cursor, Cursor::LineStart) {
            Cursor::LineStart => return,
            Cursor::AfterVm(vm) if vm == terminal.focus => terminal.broken = true,
            Cursor::AfterVm(_) => {}
        }
        self.physical.write(b"\r\n");
    }
}

impl fmt::Debug for ConsoleMux<'_> {
    /// Shows the names, and the focus, a pending Ctrl-] and the cursor
    /// unless the lock is taken at that moment (`state: "locked"`):
    /// formatting the mux inside one of its own messages must not wait for
    /// ever.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ConsoleMux");
        debug.field("names", &self.names);
        match self.state.try_lock() {
            Some(state) => debug
                .field("focus", &state.terminal.focus)
                .field("escape_pending", &state.escape_pending)
                .field("cursor", &state.terminal.cursor),
            None => debug.field("state", &"locked"),
        };
        debug.finish_non_exhaustive()
    }
}

/// One VM's output through the mux: what the VM's virtual UART writes to.
///
/// It is `Send` and `Sync`, like the mux: each VM's port may be used on the
/// CPU that runs the VM.
#[derive(Debug, Clone, Copy)]
pub struct ConsolePort<'m, 'a> {
    mux: &'m ConsoleMux<'a>,
    vm: usize,
}

impl ConsoleOutput for ConsolePort<'_, '_> {
    fn write(&self, bytes: &[u8]) {
        self.mux.write_from(self.vm, bytes);
    }
}

/// Checked when the crate compiles: the mux and its ports can be shared
/// between CPUs.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ConsoleMux<'static>>();
    assert_send_sync::<ConsolePort<'static, 'static>>();
};

/// `suffix` and a count of dropped bytes, and `)`, if there were any.
struct Dropped(usize, &'static str);

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            dropped => write!(f, "{}{dropped})", self.1),
        }
    }
}

/// Text to the physical console with `\n` sent as `\r\n`.
struct CrLfText<'o> {
    out: &'o dyn ConsoleOutput,
    at_line_start: bool,
}

impl Write for CrLfText<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for piece in text.split_inclusive('\n') {
            match piece.strip_suffix('\n') {
                Some(line) => {
                    self.out.write(line.as_bytes());
                    self.out.write(b"\r\n");
                    self.at_line_start = true;
                }
                None => {
                    self.out.write(piece.as_bytes());
                    self.at_line_start = false;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::test_support::Recorder as CellRecorder;
    use std::boxed::Box;
    use std::string::String;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::vec::Vec;

    /// The shared test console, behind a lock: the mux wants a `Sync` one.
    #[derive(Default)]
    struct Recorder(Mutex<CellRecorder>);

    impl ConsoleOutput for Recorder {
        fn write(&self, bytes: &[u8]) {
            self.0.lock().unwrap().write(bytes);
        }
    }

    impl Recorder {
        /// What was written since the last call, as text.
        fn take(&self) -> String {
            self.0.lock().unwrap().take()
        }
    }

    const FOCUS_BETA: &str =
        "capvisor: console focus: VM 2 'beta' (Ctrl-] n: next, Ctrl-] s: status)\r\n";

    #[test]
    fn focused_output_is_byte_exact() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let alpha = mux.port(0);
        let bytes: &[u8] = b"\x1b[1;32m$ \x1b[0mls\r\nfile\n\rtab\there\x08 \xff";
        alpha.write(&bytes[..7]);
        alpha.write(&bytes[7..]);
        alpha.write(b"");
        assert_eq!(&*out.0.lock().unwrap().0.borrow(), bytes);
    }

    #[test]
    fn unfocused_output_is_line_buffered_and_prefixed() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let beta = mux.port(1);
        beta.write(b"hel");
        beta.write(b"lo");
        assert_eq!(out.take(), "", "nothing before the line is complete");
        beta.write(b"\r\nsecond\nthi");
        assert_eq!(out.take(), "[beta] hello\r\n[beta] second\r\n");
        beta.write(b"\n\r\n");
        assert_eq!(out.take(), "[beta] thi\r\n[beta] \r\n");
        beta.write(b"10%\r20%\r\n");
        assert_eq!(out.take(), "[beta] 10%20%\r\n", "lone CRs are dropped");
    }

    #[test]
    fn interleaved_partial_lines_come_out_whole() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta", "gamma"]);
        let (beta, gamma) = (mux.port(1), mux.port(2));
        beta.write(b"one ");
        gamma.write(b"uno ");
        beta.write(b"two\n");
        gamma.write(b"dos\ntres");
        beta.write(b"three\n");
        gamma.write(b"\n");
        assert_eq!(
            out.take(),
            "[beta] one two\r\n[gamma] uno dos\r\n[beta] three\r\n[gamma] tres\r\n"
        );
    }

    #[test]
    fn long_line_is_printed_in_marked_pieces() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let long: Vec<u8> = (0..2 * LINE_CAPACITY + 5)
            .map(|i| b'a' + (i / LINE_CAPACITY) as u8)
            .collect();
        mux.port(1).write(&long);
        let a = "a".repeat(LINE_CAPACITY);
        let b = "b".repeat(LINE_CAPACITY);
        assert_eq!(out.take(), std::format!("[beta] {a}\r\n[beta]+ {b}\r\n"));
        mux.port(1).write(b"\nnext\n");
        assert_eq!(out.take(), "[beta]+ ccccc\r\n[beta] next\r\n");
    }

    #[test]
    fn line_of_exactly_capacity_is_one_piece() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let line = "x".repeat(LINE_CAPACITY);
        mux.port(1).write(line.as_bytes());
        assert_eq!(out.take(), "");
        mux.port(1).write(b"\r\n");
        assert_eq!(out.take(), std::format!("[beta] {line}\r\n"));
    }

    #[test]
    fn prefixed_line_after_focused_partial_starts_fresh_line() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(0).write(b"$ ");
        mux.port(1).write(b"tick\n");
        mux.port(0).write(b"ls\r\n");
        mux.port(1).write(b"tock\n");
        // The broken prompt is reprinted before alpha's next bytes.
        assert_eq!(out.take(), "$ \r\n[beta] tick\r\n$ ls\r\n[beta] tock\r\n");
    }

    #[test]
    fn a_broken_line_is_reprinted_as_the_terminal_showed_it() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let (alpha, beta) = (mux.port(0), mux.port(1));
        // Colours and a cursor-position query are left out, backspaces
        // applied (busybox erases with "\b \b"), tabs kept.
        alpha.write(b"\x1b[1;32m~ #\x1b[0m \x1b[6nls -x\x08 \x08l\t");
        out.take();
        beta.write(b"tick\n");
        alpha.write(b"a");
        assert_eq!(out.take(), "\r\n[beta] tick\r\n~ # ls -l\ta");
        // Broken again: reprinted again, with what came since.
        mux.print_hypervisor(format_args!("status"));
        alpha.write(b"\r\n");
        assert_eq!(out.take(), "\r\ncapvisor: status\r\n~ # ls -l\ta\r\n");
        // A finished line is not reprinted; a lone CR starts a line afresh.
        beta.write(b"tock\n");
        alpha.write(b"10%\r20%");
        beta.write(b"tick\n");
        alpha.write(b"!");
        assert_eq!(out.take(), "[beta] tock\r\n10%\r20%\r\n[beta] tick\r\n20%!");
    }

    #[test]
    fn an_overlong_broken_line_is_not_reprinted() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let long = "z".repeat(LINE_CAPACITY + 1);
        mux.port(0).write(long.as_bytes());
        mux.port(1).write(b"tick\n");
        mux.port(0).write(b"end\n");
        assert_eq!(out.take(), std::format!("{long}\r\n[beta] tick\r\nend\n"));
    }

    #[test]
    fn the_reprint_follows_the_focus() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(0).write(b"alpha> ");
        mux.port(1).write(b"login: ");
        mux.set_focus(1);
        out.take();
        // Alpha's line is beta's business no more; beta's held partial line
        // is what a break reprints now.
        mux.print_hypervisor(format_args!("note"));
        mux.port(1).write(b"root");
        assert_eq!(out.take(), "\r\ncapvisor: note\r\nlogin: root");
    }

    #[test]
    fn input_goes_to_the_focused_vm() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        assert_eq!(mux.receive(b'a'), Input::ToVm { vm: 0, byte: b'a' });
        assert_eq!(mux.receive(0x01), Input::ToVm { vm: 0, byte: 0x01 });
        mux.set_focus(1);
        assert_eq!(mux.receive(b'\r'), Input::ToVm { vm: 1, byte: b'\r' });
        assert_eq!(mux.receive(b'n'), Input::ToVm { vm: 1, byte: b'n' });
    }

    #[test]
    fn next_command_cycles_and_wraps() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta", "gamma"]);
        for expected in [1, 2, 0, 1] {
            assert_eq!(mux.receive(ESCAPE), Input::Consumed);
            assert_eq!(mux.receive(b'n'), Input::FocusChanged { vm: expected });
            assert_eq!(mux.focus(), expected);
        }
        let printed = out.take();
        assert!(printed.starts_with(FOCUS_BETA), "{printed}");
        assert!(printed.contains("focus: VM 3 'gamma'"));
        assert!(printed.contains("focus: VM 1 'alpha'"));
        assert_eq!(printed.lines().count(), 4);
    }

    #[test]
    fn double_escape_sends_one_literal_escape() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        assert_eq!(mux.receive(ESCAPE), Input::Consumed);
        assert_eq!(
            mux.receive(ESCAPE),
            Input::ToVm {
                vm: 0,
                byte: ESCAPE
            }
        );
        assert_eq!(mux.receive(b'n'), Input::ToVm { vm: 0, byte: b'n' });
        assert_eq!(out.take(), "");
    }

    #[test]
    fn unknown_command_drops_both_bytes_and_prints_help() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(0).write(b"$ ");
        assert_eq!(mux.receive(ESCAPE), Input::Consumed);
        assert_eq!(mux.receive(b'x'), Input::Consumed);
        assert_eq!(
            out.take(),
            "$ \r\ncapvisor: console: unknown command 0x78 after Ctrl-] \
             (n: next VM, s: status, Ctrl-]: send Ctrl-])\r\n"
        );
        assert_eq!(mux.receive(b'x'), Input::ToVm { vm: 0, byte: b'x' });
        assert_eq!(mux.focus(), 0);
    }

    #[test]
    fn status_command_asks_the_board() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        assert_eq!(mux.receive(ESCAPE), Input::Consumed);
        assert_eq!(mux.receive(b's'), Input::StatusRequested);
        assert_eq!(out.take(), "", "the board prints the status");
    }

    #[test]
    fn status_lines_start_on_a_fresh_line() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(0).write(b"$ ");
        let exits = [12, 345];
        mux.print_status(|vm, line| write!(line, "running, exits {}", exits[vm]));
        assert_eq!(
            out.take(),
            "$ \r\ncapvisor: * VM 1 'alpha': running, exits 12\r\n\
             capvisor:   VM 2 'beta': running, exits 345\r\n"
        );
        mux.print_status(|_, _| Ok(()));
        assert!(out.take().starts_with("capvisor: * VM 1 'alpha': \r\n"));
    }

    #[test]
    fn hypervisor_messages_are_prefixed_whole_lines() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.print_hypervisor(format_args!("one\ntwo {}\n", 2));
        mux.port(0).write(b"abc");
        mux.print_hypervisor(format_args!("three"));
        mux.port(0).write(b"def");
        assert_eq!(
            out.take(),
            "capvisor: one\r\ncapvisor: two 2\r\nabc\r\ncapvisor: three\r\nabcdef"
        );
    }

    #[test]
    fn focus_gain_prints_held_partial_then_output_flows_raw() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(1).write(b"login: ");
        assert_eq!(out.take(), "");
        mux.set_focus(1);
        assert_eq!(out.take(), std::format!("{FOCUS_BETA}[beta] login: "));
        mux.port(1).write(b"\x1b[K");
        assert_eq!(out.take(), "\x1b[K");
        // Alpha's line now is held; its printed line does not break beta's.
        mux.port(0).write(b"tick");
        assert_eq!(out.take(), "");
    }

    #[test]
    fn focus_loss_mid_line_marks_the_rest_as_continued() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(0).write(b"counting: 1 2");
        mux.set_focus(1);
        mux.port(0).write(b" 3\n4\n");
        assert_eq!(
            out.take(),
            std::format!("counting: 1 2\r\n{FOCUS_BETA}[alpha]+  3\r\n[alpha] 4\r\n")
        );
    }

    #[test]
    fn focus_gain_after_a_full_piece_shows_the_continuation_mark() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        let piece = "y".repeat(LINE_CAPACITY + 1);
        mux.port(1).write(piece.as_bytes());
        out.take();
        mux.set_focus(1);
        assert_eq!(out.take(), std::format!("{FOCUS_BETA}[beta]+ y"));
    }

    #[test]
    fn focus_to_the_same_vm_only_acknowledges() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        mux.port(1).write(b"held");
        mux.set_focus(0);
        assert_eq!(
            out.take(),
            "capvisor: console focus: VM 1 'alpha' (Ctrl-] n: next, Ctrl-] s: status)\r\n"
        );
        mux.port(1).write(b"\n");
        assert_eq!(out.take(), "[beta] held\r\n");
    }

    #[test]
    fn held_output_waits_for_the_focus_and_comes_out_raw() {
        let out = Recorder::default();
        let mux = ConsoleMux::with_modes(
            &out,
            &[("alpha", ConsoleMode::Held), ("beta", ConsoleMode::Held)],
        );
        mux.port(0).write(b"\x1b[2J dialog");
        mux.port(1).write(b"[ 0.1] booting\r\n[ 0.2] more\r\n$ ");
        assert_eq!(
            out.take(),
            "\x1b[2J dialog",
            "nothing of beta drawn over alpha's screen"
        );
        mux.set_focus(1);
        assert_eq!(
            out.take(),
            "\r\ncapvisor: console focus: VM 2 'beta' (Ctrl-] n: next, Ctrl-] s: status)\r\n\
             capvisor: VM 2 'beta': 31 bytes of output held while in the background follow\r\n\
             [ 0.1] booting\r\n[ 0.2] more\r\n$ "
        );
        mux.port(1).write(b"ls\r\n");
        assert_eq!(out.take(), "ls\r\n", "the held prompt continues raw");
        // Back to alpha: beta's new output is held again, alpha's is raw.
        mux.set_focus(0);
        out.take();
        mux.port(1).write(b"x");
        mux.port(0).write(b"y");
        assert_eq!(out.take(), "y");
    }

    #[test]
    fn held_output_keeps_the_newest_bytes_and_counts_the_rest() {
        let out = Recorder::default();
        let mux = ConsoleMux::with_modes(
            &out,
            &[("alpha", ConsoleMode::Shared), ("beta", ConsoleMode::Held)],
        );
        let mut bytes = Vec::new();
        for n in 0..HELD_CAPACITY + 10 {
            bytes.push(b'a' + (n % 26) as u8);
        }
        mux.port(1).write(&bytes);
        assert_eq!(out.take(), "");
        mux.set_focus(1);
        let shown = out.take();
        assert!(
            shown.contains("4096 bytes of output held while in the background follow (older bytes dropped: 10)\r\n"),
            "{shown}"
        );
        assert!(shown.ends_with(core::str::from_utf8(&bytes[10..]).unwrap()));
    }

    #[test]
    fn discarded_output_is_counted_not_shown() {
        let out = Recorder::default();
        let mux = ConsoleMux::with_modes(
            &out,
            &[
                ("alpha", ConsoleMode::Shared),
                ("beta", ConsoleMode::Discard),
            ],
        );
        mux.port(1).write(b"noise\r\n");
        assert_eq!(out.take(), "");
        mux.set_focus(1);
        assert!(out.take().ends_with(
            "capvisor: VM 2 'beta': 7 bytes of output discarded while in the background\r\n"
        ));
        mux.port(1).write(b"now shown");
        assert_eq!(out.take(), "now shown");
    }

    #[test]
    fn single_vm_next_keeps_the_focus() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["solo"]);
        mux.receive(ESCAPE);
        assert_eq!(mux.receive(b'n'), Input::FocusChanged { vm: 0 });
        mux.port(0).write(b"raw");
        assert!(out.take().ends_with("status)\r\nraw"));
    }

    /// Lines each of the two threads writes.
    const THREAD_LINES: usize = 20_000;

    /// Alpha (focused, one write per line) and beta (in `beta_mode`, each
    /// line in two writes) write [`THREAD_LINES`] numbered lines each, from
    /// two threads at once, through a mux that lives for ever as a board's
    /// does. Neither thread gets more than two lines ahead of the other, so
    /// their writes interleave however the threads are scheduled. Returns
    /// the mux, its output, and what beta wrote.
    fn write_from_two_threads(
        beta_mode: ConsoleMode,
    ) -> (&'static ConsoleMux<'static>, &'static Recorder, String) {
        let out: &'static Recorder = Box::leak(Box::default());
        let mux: &'static ConsoleMux<'static> = Box::leak(Box::new(ConsoleMux::with_modes(
            out,
            &[("alpha", ConsoleMode::Shared), ("beta", beta_mode)],
        )));
        // Lines written so far by alpha and by beta.
        let done: &'static [AtomicUsize; 2] = Box::leak(Box::default());
        let writer = |vm: usize, write_line: fn(ConsolePort<'static, 'static>, usize)| {
            let port = mux.port(vm);
            std::thread::spawn(move || {
                for n in 0..THREAD_LINES {
                    while done[1 - vm].load(Ordering::Acquire) + 2 < n {
                        std::thread::yield_now();
                    }
                    write_line(port, n);
                    done[vm].store(n + 1, Ordering::Release);
                }
            })
        };
        let alpha = writer(0, |port, n| {
            port.write(std::format!("alpha line {n}\n").as_bytes());
        });
        let beta = writer(1, |port, n| {
            port.write(std::format!("beta line {n}").as_bytes());
            port.write(b"\r\n");
        });
        alpha.join().unwrap();
        beta.join().unwrap();
        let beta_wrote = (0..THREAD_LINES)
            .map(|n| std::format!("beta line {n}\r\n"))
            .collect();
        (mux, out, beta_wrote)
    }

    /// Alpha's lines, all of them, in order.
    fn alpha_lines() -> String {
        (0..THREAD_LINES)
            .map(|n| std::format!("alpha line {n}\n"))
            .collect()
    }

    #[test]
    fn two_threads_writing_shared_lines_never_tear_them() {
        let (_, out, _) = write_from_two_threads(ConsoleMode::Shared);
        let printed = out.take();
        let (mut alpha, mut beta) = (0, 0);
        for line in printed.split_inclusive('\n') {
            if line == std::format!("alpha line {alpha}\n") {
                alpha += 1;
            } else if line == std::format!("[beta] beta line {beta}\r\n") {
                beta += 1;
            } else {
                panic!("torn or out-of-order line {line:?} (after alpha {alpha}, beta {beta})");
            }
        }
        assert_eq!((alpha, beta), (THREAD_LINES, THREAD_LINES));
    }

    #[test]
    fn two_threads_with_the_other_vm_held() {
        let (mux, out, beta_wrote) = write_from_two_threads(ConsoleMode::Held);
        assert!(
            out.take() == alpha_lines(),
            "alpha's lines, whole and alone"
        );
        mux.set_focus(1);
        let dropped = beta_wrote.len() - HELD_CAPACITY;
        assert_eq!(
            out.take(),
            std::format!(
                "{FOCUS_BETA}capvisor: VM 2 'beta': {HELD_CAPACITY} bytes of output held \
                 while in the background follow (older bytes dropped: {dropped})\r\n{}",
                &beta_wrote[dropped..]
            )
        );
    }

    #[test]
    fn two_threads_with_the_other_vm_discarded() {
        let (mux, out, beta_wrote) = write_from_two_threads(ConsoleMode::Discard);
        assert!(
            out.take() == alpha_lines(),
            "alpha's lines, whole and alone"
        );
        mux.set_focus(1);
        assert_eq!(
            out.take(),
            std::format!(
                "{FOCUS_BETA}capvisor: VM 2 'beta': {} bytes of output discarded \
                 while in the background\r\n",
                beta_wrote.len()
            )
        );
    }

    #[test]
    fn debug_does_not_wait_for_the_lock() {
        let out = Recorder::default();
        let mux = ConsoleMux::new(&out, &["alpha", "beta"]);
        assert_eq!(
            std::format!("{mux:?}"),
            "ConsoleMux { names: [\"alpha\", \"beta\"], focus: 0, \
             escape_pending: false, cursor: LineStart, .. }"
        );
        let mut during = String::new();
        mux.print_status(|_, _| {
            during = std::format!("{mux:?}");
            Ok(())
        });
        assert_eq!(
            during,
            "ConsoleMux { names: [\"alpha\", \"beta\"], state: \"locked\", .. }"
        );
    }
}
