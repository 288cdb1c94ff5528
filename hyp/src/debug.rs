// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers for the hypervisor's own console messages.
//!
//! Every message the hypervisor prints starts with `capvisor: ` so that it
//! stands apart from guest output on the shared console
//! (`docs/architecture.md`, boot flow). [`LinePrefixer`] adds the prefix
//! to each line of a multi-line
//! message (a fault report, a memory map) as it is written, with no buffer.
//!
//! ```
//! use core::fmt::Write;
//! use hyp::debug::LinePrefixer;
//! let mut out = String::new();
//! let mut w = LinePrefixer::new(&mut out, "capvisor: ");
//! write!(w, "one\ntwo\n").unwrap();
//! assert_eq!(out, "capvisor: one\ncapvisor: two\n");
//! ```

use core::fmt;

/// The prefix of every hypervisor message.
pub const PREFIX: &str = "capvisor: ";

/// A writer that puts `prefix` at the start of every line written through it.
#[derive(Debug)]
pub struct LinePrefixer<'a, W: fmt::Write> {
    inner: W,
    prefix: &'a str,
    at_line_start: bool,
}

impl<'a, W: fmt::Write> LinePrefixer<'a, W> {
    /// Wraps `inner`; the next character written starts a line.
    pub fn new(inner: W, prefix: &'a str) -> Self {
        LinePrefixer {
            inner,
            prefix,
            at_line_start: true,
        }
    }
}

impl<W: fmt::Write> fmt::Write for LinePrefixer<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for piece in text.split_inclusive('\n') {
            if self.at_line_start {
                self.inner.write_str(self.prefix)?;
            }
            self.inner.write_str(piece)?;
            self.at_line_start = piece.ends_with('\n');
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::fmt::Write;
    use std::string::String;

    #[test]
    fn prefixes_lines_split_across_writes() {
        let mut out = String::new();
        let mut w = LinePrefixer::new(&mut out, "> ");
        w.write_str("ab").unwrap();
        w.write_str("c\nde").unwrap();
        w.write_str("\n\nf").unwrap();
        assert_eq!(out, "> abc\n> de\n> \n> f");
    }

    #[test]
    fn empty_writes_change_nothing() {
        let mut out = String::new();
        let mut w = LinePrefixer::new(&mut out, "> ");
        w.write_str("").unwrap();
        assert_eq!(out, "");
    }
}
