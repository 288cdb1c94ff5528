// SPDX-License-Identifier: MIT OR Apache-2.0
//! The blob's header and token stream, checked before `fdt` reads them.
//!
//! `fdt` 0.1.5 trusts its input: a block that runs past the blob, a name
//! without its NUL, a property value longer than the block, a property after
//! a child node or a NOP token in most places make it slice out of bounds or
//! fail an `expect`, that is, panic. The tree is the firmware's, not a
//! guest's, but a corrupted one (or stray bytes that happen to start with the
//! magic) should still be reported as an error, not panic the hypervisor
//! before its console is up. So [`validate`] reads the header and walks the
//! structure block once, token by token; every offset `fdt` later follows is
//! then known to be in bounds, and every name it later `expect`s to be a
//! NUL-terminated UTF-8 string is one.
//!
//! Stricter than the specification in two ways, both harmless for QEMU's
//! trees: NOP tokens are refused (`fdt` skips them only in some places, and
//! QEMU writes none), and so are property names containing `/` (the
//! specification forbids them; refusing them keeps `Fdt::find_node`'s alias
//! fallback from ever matching an absolute path, so it cannot recurse).

use super::{BlobProblem, DeviceTreeError};

/// The first word of every flattened device tree.
pub(super) const MAGIC: u32 = 0xd00d_feed;
/// The header of a version 17 tree: ten big-endian words.
pub(super) const HEADER_LEN: usize = 40;
/// The version whose header and blocks this reader understands.
const VERSION: u32 = 17;
/// How deep nodes may nest (`fdt` keeps the parents of a node in an array of
/// 64 and skips subtrees by recursion; QEMU's trees are 5 deep).
pub(super) const MAX_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Properties whose value `fdt` reads as exactly one cell (and `expect`s).
const CELL_COUNTS: [&str; 4] = [
    "#address-cells",
    "#size-cells",
    "#interrupt-cells",
    "#clock-cells",
];

/// The big-endian word at `offset`, if all four bytes are there.
fn word(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    let word: [u8; 4] = bytes.get(offset..end)?.try_into().ok()?;
    Some(u32::from_be_bytes(word))
}

/// The header word at index `index` (0 = magic, 1 = totalsize, ...).
fn header_word(header: &[u8], index: usize) -> u32 {
    // Only called on at least HEADER_LEN bytes, with index < 10.
    word(header, index * 4).unwrap_or(0)
}

/// Checks the magic of the header at the start of `header` (at least
/// [`HEADER_LEN`] bytes) and returns the size of the whole blob it gives.
pub(super) fn total_size(header: &[u8]) -> Result<usize, DeviceTreeError> {
    if header.len() < HEADER_LEN {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::TooShort {
            length: header.len(),
        }));
    }
    let magic = header_word(header, 0);
    if magic != MAGIC {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::BadMagic {
            magic,
        }));
    }
    let size = header_word(header, 1) as usize;
    if size < HEADER_LEN {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::TooShort {
            length: size,
        }));
    }
    Ok(size)
}

/// Checks the header and the structure block of `blob` and returns the blob
/// cut to the size its header gives.
pub(super) fn validate(blob: &[u8]) -> Result<&[u8], DeviceTreeError> {
    let size = total_size(blob)?;
    let blob = blob.get(..size).ok_or(DeviceTreeError::TooLarge {
        size,
        max: blob.len(),
    })?;
    let version = header_word(blob, 5);
    let last_compatible = header_word(blob, 6);
    if version < VERSION || last_compatible > VERSION {
        return Err(DeviceTreeError::NotADeviceTree(BlobProblem::Version {
            version,
            last_compatible,
        }));
    }
    let block = |name: &'static str, offset: u32, length: u32| {
        let start = offset as usize;
        start
            .checked_add(length as usize)
            .and_then(|end| blob.get(start..end))
            .ok_or(DeviceTreeError::NotADeviceTree(BlobProblem::BlockOutside {
                block: name,
                total_size: size,
            }))
    };
    // The memory reservation block is never read; its start must still be
    // inside the blob for `fdt` (which slices from it).
    block("memory reservation", header_word(blob, 4), 0)?;
    let structure = block("structure", header_word(blob, 2), header_word(blob, 9))?;
    let strings = block("strings", header_word(blob, 3), header_word(blob, 8))?;
    walk(structure, strings)?;
    Ok(blob)
}

/// The NUL-terminated UTF-8 string at `offset` of `bytes`, without its NUL.
fn string_at(bytes: &[u8], offset: usize) -> Option<&str> {
    let rest = bytes.get(offset..)?;
    let length = rest.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(&rest[..length]).ok()
}

/// `offset` rounded up to the next token boundary.
fn align(offset: usize) -> usize {
    offset.saturating_add(3) & !3
}

/// Walks the token stream of the structure block: one root node, nodes
/// properly nested and at most [`MAX_DEPTH`] deep, properties before child
/// nodes, every name and value inside its block, then `FDT_END`.
fn walk(structure: &[u8], strings: &[u8]) -> Result<(), DeviceTreeError> {
    let mut offset = 0;
    let mut depth = 0;
    let mut seen_root = false;
    // Whether the current node may still have properties (no child yet).
    let mut properties_allowed = false;
    loop {
        let broken = move |problem: &'static str| {
            DeviceTreeError::NotADeviceTree(BlobProblem::Structure { offset, problem })
        };
        let token = word(structure, offset).ok_or(broken("it ends before its END token"))?;
        match token {
            FDT_BEGIN_NODE => {
                if depth == 0 && seen_root {
                    return Err(broken("a second root node"));
                }
                seen_root = true;
                let name = offset + 4;
                let length = string_at(structure, name)
                    .ok_or(broken("a node name without its NUL, or not UTF-8"))?
                    .len();
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(broken("nodes nest more than 32 deep"));
                }
                properties_allowed = true;
                offset = align(name + length + 1);
            }
            FDT_PROP => {
                if depth == 0 {
                    return Err(broken("a property outside every node"));
                }
                if !properties_allowed {
                    return Err(broken("a property after a child node"));
                }
                let length = word(structure, offset + 4);
                let name = word(structure, offset + 8);
                let (Some(length), Some(name)) = (length, name) else {
                    return Err(broken("it ends inside a property"));
                };
                let value_end = (offset + 12)
                    .checked_add(length as usize)
                    .filter(|&end| end <= structure.len())
                    .ok_or(broken("a property value runs past the block"))?;
                let name = string_at(strings, name as usize).ok_or(broken(
                    "a property name outside the strings block, without its NUL, or not UTF-8",
                ))?;
                if name.contains('/') {
                    return Err(broken("a property name containing '/'"));
                }
                if CELL_COUNTS.contains(&name) && length != 4 {
                    return Err(broken("a #...-cells property that is not one cell"));
                }
                offset = align(value_end);
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(broken("an END_NODE outside every node"));
                }
                depth -= 1;
                properties_allowed = false;
                offset += 4;
            }
            FDT_END if depth == 0 && seen_root => return Ok(()),
            FDT_END => return Err(broken("END before the root node is closed")),
            FDT_NOP => return Err(broken("a NOP token (not accepted here)")),
            _ => return Err(broken("an unknown token")),
        }
    }
}
