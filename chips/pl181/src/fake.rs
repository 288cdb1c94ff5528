// SPDX-License-Identifier: MIT OR Apache-2.0
//! A PL181 with an SD card, modelled for the host tests.
//!
//! The controller part keeps the registers, the status bits and a 16-word
//! FIFO that fills from the card as it is drained (as QEMU's model does);
//! the card part is the SD state machine from idle to transfer, with its
//! RCA, OCR, CSD (version 1.0 for a standard-capacity card, 2.0 for a
//! high-capacity one), byte or block addressing, and a byte array for the
//! flash. Faults can be planted: a command that times out, a data CRC
//! failure, an error in a command's card status, a card that never
//! finishes powering up, an R3 reported with a CRC failure as a real
//! controller does.

use crate::registers::{command, data_control, status, Bus, Register};
use crate::sd;
use std::cell::RefCell;
use std::collections::VecDeque;

/// The card's states (their CURRENT_STATE codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle = 0,
    Ready = 1,
    Identification = 2,
    Standby = 3,
    Transfer = 4,
    Sending = 5,
    Receiving = 6,
}

/// What a test can plant.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// This command index times out.
    pub timeout_on: Option<u32>,
    /// This command's R1 has the ERROR bit.
    pub status_error_on: Option<u32>,
    /// Data transfers end with DATACRCFAIL.
    pub data_crc: bool,
    /// ACMD41 answers "still powering up" forever.
    pub never_ready: bool,
    /// R3 arrives with CMDCRCFAIL (it has no CRC), as on a real PL181.
    pub r3_crc_fail: bool,
    /// CMD12 after a read that ended at the last sector reports
    /// OUT_OF_RANGE (a card that read ahead).
    pub read_ahead_out_of_range: bool,
}

/// The model's whole state.
#[derive(Debug)]
pub struct Model {
    // The controller.
    argument: u32,
    datalength: u32,
    datactrl: u32,
    datacnt: u32,
    status: u32,
    response: [u32; 4],
    fifo: VecDeque<u32>,
    // The card.
    pub state: State,
    high_capacity: bool,
    version2: bool,
    rca: u16,
    app: bool,
    acmd41_calls: u32,
    ready_after: u32,
    ocr: u32,
    /// Byte offset of the next byte to send or take.
    cursor: u64,
    multiple: bool,
    pending_errors: u32,
    pub storage: Vec<u8>,
    /// The CSD's TMP_WRITE_PROTECT bit.
    pub write_protected: bool,
    pub faults: Faults,
    /// Every command sent: (index, argument).
    pub log: Vec<(u32, u32)>,
    /// The first DATACTRL value of each transfer (for direction checks).
    pub data_controls: Vec<u32>,
}

/// The controller and card behind a [`Bus`].
#[derive(Debug)]
pub struct FakeCard {
    pub model: RefCell<Model>,
}

impl FakeCard {
    /// A card of `bytes` (a multiple of 512 KiB); `high_capacity` for an
    /// SDHC card (CSD 2.0, block addresses), `version2` whether it answers
    /// CMD8 (a high-capacity card always does).
    pub fn new(bytes: usize, high_capacity: bool, version2: bool) -> FakeCard {
        FakeCard {
            model: RefCell::new(Model {
                argument: 0,
                datalength: 0,
                datactrl: 0,
                datacnt: 0,
                status: 0,
                response: [0; 4],
                fifo: VecDeque::new(),
                state: State::Idle,
                high_capacity,
                version2: version2 || high_capacity,
                rca: 0x4567,
                app: false,
                acmd41_calls: 0,
                ready_after: 3,
                ocr: 0,
                cursor: 0,
                multiple: false,
                pending_errors: 0,
                write_protected: false,
                storage: (0..bytes).map(|i| (i * 7 + i / 512) as u8).collect(),
                faults: Faults::default(),
                log: Vec::new(),
                data_controls: Vec::new(),
            }),
        }
    }
}

fn set_bits(words: &mut [u32; 4], high: u32, low: u32, value: u32) {
    for bit in low..=high {
        let word = &mut words[3 - (bit / 32) as usize];
        let mask = 1 << (bit % 32);
        if (value >> (bit - low)) & 1 != 0 {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }
}

/// The CSD of a card of `bytes`: version 2.0 for a high-capacity card,
/// else version 1.0 with QEMU's C_SIZE_MULT 7 and READ_BL_LEN 9.
pub fn csd_of(bytes: u64, high_capacity: bool) -> [u32; 4] {
    let mut words = [0; 4];
    set_bits(&mut words, 83, 80, 9);
    if high_capacity {
        set_bits(&mut words, 127, 126, 1);
        set_bits(&mut words, 69, 48, (bytes / (512 * 1024) - 1) as u32);
    } else {
        set_bits(&mut words, 49, 47, 7);
        set_bits(&mut words, 73, 62, ((bytes >> 18) - 1) as u32);
    }
    words
}

impl Model {
    fn r1(&mut self) -> u32 {
        let ready = if self.state == State::Transfer {
            sd::R1_READY_FOR_DATA
        } else {
            0
        };
        let app = if self.app { 1 << 5 } else { 0 };
        let errors = core::mem::take(&mut self.pending_errors);
        errors | ((self.state as u32) << 9) | ready | app
    }

    fn csd(&self) -> [u32; 4] {
        let mut words = csd_of(self.storage.len() as u64, self.high_capacity);
        set_bits(&mut words, 12, 12, u32::from(self.write_protected));
        words
    }

    /// Runs the command in COMMAND `value`; the status bits it leaves.
    fn command(&mut self, value: u32) {
        let index = value & command::INDEX;
        let argument = self.argument;
        self.log.push((index, argument));
        let app = core::mem::take(&mut self.app);
        if self.faults.timeout_on == Some(index) {
            self.status |= status::CMD_TIMEOUT;
            return;
        }
        if self.faults.status_error_on == Some(index) {
            self.pending_errors |= 1 << 19;
        }
        // The response (or None for no response / a timeout).
        let response: Option<[u32; 4]> = match (index, app) {
            (sd::GO_IDLE_STATE, _) => {
                self.state = State::Idle;
                self.ocr = 0;
                self.acmd41_calls = 0;
                None
            }
            (sd::SEND_IF_COND, _) if self.version2 && self.state == State::Idle => {
                Some([argument & 0xfff, 0, 0, 0])
            }
            (sd::APP_CMD, _) => {
                self.app = true;
                Some([self.r1(), 0, 0, 0])
            }
            (sd::SD_SEND_OP_COND, true) if self.state == State::Idle => {
                self.acmd41_calls += 1;
                if !self.faults.never_ready && self.acmd41_calls >= self.ready_after {
                    let capacity = if self.high_capacity && argument & sd::OCR_HIGH_CAPACITY != 0 {
                        sd::OCR_HIGH_CAPACITY
                    } else {
                        0
                    };
                    // A high-capacity card stays busy for a host without HCS.
                    if !self.high_capacity || capacity != 0 {
                        self.ocr = sd::OCR_POWERED_UP | capacity | sd::OCR_VOLTAGE_WINDOW;
                        self.state = State::Ready;
                    }
                }
                if self.faults.r3_crc_fail {
                    self.status |= status::CMD_CRC_FAIL;
                    self.response = [self.ocr | sd::OCR_VOLTAGE_WINDOW, 0, 0, 0];
                    return;
                }
                Some([self.ocr | sd::OCR_VOLTAGE_WINDOW, 0, 0, 0])
            }
            (sd::ALL_SEND_CID, _) if self.state == State::Ready => {
                self.state = State::Identification;
                Some([0x0353_4453, 0x4331_3230, 0x8001_2345, 0x6700_c000])
            }
            (sd::SEND_RELATIVE_ADDR, _) if self.state == State::Identification => {
                self.state = State::Standby;
                Some([(u32::from(self.rca) << 16) | 0x0500, 0, 0, 0])
            }
            (sd::SEND_CSD, _)
                if self.state == State::Standby && argument >> 16 == u32::from(self.rca) =>
            {
                Some(self.csd())
            }
            (sd::SELECT_CARD, _) if argument >> 16 == u32::from(self.rca) => {
                let r1 = self.r1();
                self.state = State::Transfer;
                Some([r1, 0, 0, 0])
            }
            (sd::SET_BLOCKLEN, _) if self.state == State::Transfer => {
                if argument != 512 {
                    self.pending_errors |= 1 << 29;
                }
                Some([self.r1(), 0, 0, 0])
            }
            (sd::SEND_STATUS, _) if argument >> 16 == u32::from(self.rca) => {
                Some([self.r1(), 0, 0, 0])
            }
            (
                sd::READ_SINGLE_BLOCK
                | sd::READ_MULTIPLE_BLOCK
                | sd::WRITE_BLOCK
                | sd::WRITE_MULTIPLE_BLOCK,
                _,
            ) if self.state == State::Transfer => {
                let offset = if self.high_capacity {
                    u64::from(argument) * 512
                } else {
                    u64::from(argument)
                };
                if offset + 512 > self.storage.len() as u64 || offset % 512 != 0 {
                    self.pending_errors |= sd::R1_ADDRESS_ERROR;
                    let r1 = self.r1();
                    return self.respond(value, [r1, 0, 0, 0]);
                }
                let r1 = self.r1();
                self.cursor = offset;
                self.multiple =
                    index == sd::READ_MULTIPLE_BLOCK || index == sd::WRITE_MULTIPLE_BLOCK;
                self.state = if index == sd::READ_SINGLE_BLOCK || index == sd::READ_MULTIPLE_BLOCK {
                    State::Sending
                } else {
                    State::Receiving
                };
                Some([r1, 0, 0, 0])
            }
            (sd::STOP_TRANSMISSION, _)
                if matches!(self.state, State::Sending | State::Receiving) =>
            {
                if self.faults.read_ahead_out_of_range
                    && self.state == State::Sending
                    && self.cursor >= self.storage.len() as u64
                {
                    self.pending_errors |= sd::R1_OUT_OF_RANGE;
                }
                let r1 = self.r1();
                self.state = State::Transfer;
                Some([r1, 0, 0, 0])
            }
            // Illegal in this state, or unknown: no answer, and the next
            // response says so.
            _ => {
                self.pending_errors |= sd::R1_ILLEGAL_COMMAND;
                None
            }
        };
        match response {
            Some(words) => self.respond(value, words),
            None if value & command::RESPONSE == 0 => self.status |= status::CMD_SENT,
            None => self.status |= status::CMD_TIMEOUT,
        }
    }

    fn respond(&mut self, value: u32, words: [u32; 4]) {
        if value & command::RESPONSE == 0 {
            self.status |= status::CMD_SENT;
            return;
        }
        self.response = if value & command::LONG_RESPONSE != 0 {
            words
        } else {
            [words[0], 0, 0, 0]
        };
        self.status |= status::CMD_RESPONSE_END;
    }

    /// Moves bytes between the card and the FIFO, then sets the FIFO bits.
    fn run_fifo(&mut self) {
        let read = self.datactrl & data_control::FROM_CARD != 0;
        let enabled = self.datactrl & data_control::ENABLE != 0;
        if enabled && self.datacnt > 0 {
            if read && self.state == State::Sending {
                while self.datacnt > 0 && self.fifo.len() < 16 {
                    let at = self.cursor as usize;
                    let word = u32::from_le_bytes([0, 1, 2, 3].map(|i| self.storage[at + i]));
                    self.fifo.push_back(word);
                    self.cursor += 4;
                    self.datacnt -= 4;
                    if self.cursor.is_multiple_of(512) && !self.multiple {
                        self.state = State::Transfer;
                        break;
                    }
                }
            } else if !read && self.state == State::Receiving {
                while let Some(word) = self.fifo.pop_front() {
                    let at = self.cursor as usize;
                    self.storage[at..at + 4].copy_from_slice(&word.to_le_bytes());
                    self.cursor += 4;
                    self.datacnt -= 4;
                    if self.cursor.is_multiple_of(512) && !self.multiple {
                        self.state = State::Transfer;
                    }
                }
            }
        }
        self.status &= !(status::RX_DATA_AVAILABLE | status::TX_FIFO_FULL);
        if enabled && self.datacnt == 0 {
            self.status |= status::DATA_END | status::DATA_BLOCK_END;
            if self.faults.data_crc {
                self.status |= status::DATA_CRC_FAIL;
            }
        }
        if read && !self.fifo.is_empty() {
            self.status |= status::RX_DATA_AVAILABLE;
        }
    }
}

impl Bus for FakeCard {
    fn read(&self, register: Register) -> u32 {
        let mut model = self.model.borrow_mut();
        match register {
            Register::Status => {
                model.run_fifo();
                model.status
            }
            Register::Response(index) => model.response[index],
            Register::DataLength => model.datalength,
            Register::DataCtrl => model.datactrl,
            Register::Argument => model.argument,
            Register::FifoCnt => model.datacnt.div_ceil(4),
            Register::Fifo => {
                let word = model
                    .fifo
                    .pop_front()
                    .expect("a FIFO read with the FIFO empty");
                model.run_fifo();
                word
            }
            _ => 0,
        }
    }

    fn write(&self, register: Register, value: u32) {
        let mut model = self.model.borrow_mut();
        match register {
            Register::Argument => model.argument = value,
            Register::Command if value & command::ENABLE != 0 => {
                model.command(value);
                model.run_fifo();
            }
            Register::DataLength => model.datalength = value & 0xffff,
            Register::DataCtrl => {
                model.datactrl = value & 0xff;
                if value & data_control::ENABLE != 0 {
                    model.datacnt = model.datalength;
                    model.fifo.clear();
                    model.data_controls.push(value);
                    model.run_fifo();
                }
            }
            Register::Clear => model.status &= !(value & status::STATIC),
            Register::Fifo => {
                assert!(model.datacnt > 0, "a FIFO write with no data to send");
                model.fifo.push_back(value);
                model.run_fifo();
            }
            _ => {}
        }
    }
}
