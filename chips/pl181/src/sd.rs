// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the SD card says: command numbers, card status, OCR and CSD fields.
//!
//! Facts from the SD Physical Layer Simplified Specification: the commands
//! a host sends to bring a card from power-on to the transfer state and to
//! move blocks, the R1 card status bits that mean an error, and the two CSD
//! layouts a card reports its capacity in (version 1.0 for standard
//! capacity, SDSC, up to 2 GB, addressed in bytes; version 2.0 for high and
//! extended capacity, SDHC/SDXC, addressed in 512-byte blocks).
//!
//! ```
//! use pl181::sd::{capacity_sectors, Csd};
//! // A version 2.0 CSD with C_SIZE 127: (127 + 1) x 512 KiB = 64 MiB.
//! let csd = Csd([0x400e_0032, 0x5b59_0000, 0x007f_7f80, 0x0a40_0000]);
//! assert_eq!(capacity_sectors(&csd), Some(131072));
//! ```

/// GO_IDLE_STATE: reset to the idle state (no response).
pub const GO_IDLE_STATE: u32 = 0;
/// ALL_SEND_CID: every card in the ready state answers its CID (R2).
pub const ALL_SEND_CID: u32 = 2;
/// SEND_RELATIVE_ADDR: the card picks its address, RCA (R6).
pub const SEND_RELATIVE_ADDR: u32 = 3;
/// SELECT_CARD: to the transfer state (R1b).
pub const SELECT_CARD: u32 = 7;
/// SEND_IF_COND: the host's voltage and a check pattern (R7); a card of
/// version 2.00 or later echoes them, an older one does not answer.
pub const SEND_IF_COND: u32 = 8;
/// SEND_CSD: the card-specific data (R2).
pub const SEND_CSD: u32 = 9;
/// STOP_TRANSMISSION: ends a multiple-block transfer (R1b).
pub const STOP_TRANSMISSION: u32 = 12;
/// SEND_STATUS: the card status (R1).
pub const SEND_STATUS: u32 = 13;
/// SET_BLOCKLEN: the block length of a standard-capacity card (R1).
pub const SET_BLOCKLEN: u32 = 16;
/// READ_SINGLE_BLOCK (R1).
pub const READ_SINGLE_BLOCK: u32 = 17;
/// READ_MULTIPLE_BLOCK, until STOP_TRANSMISSION (R1).
pub const READ_MULTIPLE_BLOCK: u32 = 18;
/// WRITE_BLOCK (R1).
pub const WRITE_BLOCK: u32 = 24;
/// WRITE_MULTIPLE_BLOCK, until STOP_TRANSMISSION (R1).
pub const WRITE_MULTIPLE_BLOCK: u32 = 25;
/// APP_CMD: the next command is an application command (R1).
pub const APP_CMD: u32 = 55;
/// SD_SEND_OP_COND (after APP_CMD): the host's capacity support and
/// voltages; answered with the OCR (R3, no CRC).
pub const SD_SEND_OP_COND: u32 = 41;

/// SEND_IF_COND's argument: 2.7-3.6 V (VHS = 1) and the check pattern 0xaa.
pub const IF_COND_ARGUMENT: u32 = 0x1aa;

/// OCR: the card has finished powering up (the busy bit, active low in
/// name: set when ready).
pub const OCR_POWERED_UP: u32 = 1 << 31;
/// OCR: card capacity status, set for SDHC/SDXC (block addressing). In
/// ACMD41's argument, HCS: the host supports such cards.
pub const OCR_HIGH_CAPACITY: u32 = 1 << 30;
/// OCR: the 2.7-3.6 V window, bits 23:15.
pub const OCR_VOLTAGE_WINDOW: u32 = 0x00ff_8000;

/// R1 card status bits that mean the command or the one before it failed:
/// OUT_OF_RANGE, ADDRESS_ERROR, BLOCK_LEN_ERROR, ERASE_SEQ_ERROR,
/// ERASE_PARAM, WP_VIOLATION, LOCK_UNLOCK_FAILED, COM_CRC_ERROR,
/// ILLEGAL_COMMAND, CARD_ECC_FAILED, CC_ERROR, ERROR, CSD_OVERWRITE,
/// WP_ERASE_SKIP, AKE_SEQ_ERROR.
pub const R1_ERRORS: u32 = 0xfdf9_8008;
/// R1: OUT_OF_RANGE.
pub const R1_OUT_OF_RANGE: u32 = 1 << 31;
/// R1: ADDRESS_ERROR.
pub const R1_ADDRESS_ERROR: u32 = 1 << 30;
/// R1: ILLEGAL_COMMAND (reported in the response after the command).
pub const R1_ILLEGAL_COMMAND: u32 = 1 << 22;
/// R1: READY_FOR_DATA.
pub const R1_READY_FOR_DATA: u32 = 1 << 8;
/// R1: CURRENT_STATE, bits 12:9.
pub const fn r1_state(status: u32) -> u32 {
    (status >> 9) & 0xf
}
/// CURRENT_STATE of a card in the transfer state.
pub const STATE_TRANSFER: u32 = 4;

/// The 128 bits of a CSD as the PL181 holds a long response: word 0 is
/// bits 127:96, word 3 bits 31:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Csd(pub [u32; 4]);

impl Csd {
    /// Bits `high..=low` (at most 32 of them).
    pub fn bits(&self, high: u32, low: u32) -> u32 {
        let mut value: u64 = 0;
        for bit in (low..=high).rev() {
            let word = self.0[3 - (bit / 32) as usize];
            value = (value << 1) | u64::from((word >> (bit % 32)) & 1);
        }
        value as u32
    }
}

/// The card's capacity in 512-byte sectors from its CSD; `None` for a CSD
/// structure this driver does not know.
pub fn capacity_sectors(csd: &Csd) -> Option<u64> {
    match csd.bits(127, 126) {
        // Version 1.0: (C_SIZE + 1) x 2^(C_SIZE_MULT + 2) blocks of
        // 2^READ_BL_LEN bytes.
        0 => {
            let c_size = u64::from(csd.bits(73, 62));
            let c_size_mult = csd.bits(49, 47);
            let read_bl_len = csd.bits(83, 80);
            let bytes = (c_size + 1) << (c_size_mult + 2 + read_bl_len);
            Some(bytes / 512)
        }
        // Version 2.0: (C_SIZE + 1) x 512 KiB.
        1 => Some((u64::from(csd.bits(69, 48)) + 1) * 1024),
        _ => None,
    }
}
