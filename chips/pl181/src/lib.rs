// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Arm PL181 MMC interface and its SD card, as a `BlockDevice`.
//!
//! Integrator/CP's board disk: QEMU's `integratorcp` has a PL181 at
//! 0x1c00_0000 with an `sd-card` behind it (`-drive if=sd,file=F,format=raw`,
//! the image a power of two in size). [`Pl181::init`] brings the card from
//! power-on to the transfer state as the card expects (CMD0; CMD8 to learn
//! whether it is a version 2.00 card; ACMD41 with HCS until it is powered
//! up, its OCR's CCS bit saying whether it is addressed in blocks (SDHC,
//! SDXC) or bytes (SDSC); CMD2, CMD3 for its RCA, CMD9 for the CSD and so
//! its capacity, CMD7 to select it and, for SDSC, CMD16 for 512-byte
//! blocks). Then [`BlockDevice`] requests move whole sectors with CMD17/18
//! (read) and CMD24/25 (write), CMD12 ending a multiple-block transfer,
//! through the controller's data path (DATATIMER, DATALENGTH, DATACTRL)
//! and its 16-word FIFO, checking the card status of every R1 response and
//! the controller's timeout, CRC and FIFO error bits: any failure is
//! [`BlockError::Device`].
//!
//! # Who moves the data
//!
//! The PL181 has no DMA here and interrupts on Integrator/CP's PIC lines
//! 23 (MCIINTR0) and 24 (MCIINTR1), but the data still goes through the
//! FIFO a word at a time by the CPU; QEMU's model fills the FIFO from the
//! card as the CPU drains it, so data is always there when the FIFO is
//! read and an interrupt would only say "read again". The driver
//! therefore leaves both masks at 0 and moves a request on from
//! [`BlockDevice::poll`], at most [`POLL_BYTES`] per call, so that one
//! request never holds the CPU for longer than that much copying: a 64
//! KiB read takes 16 calls. A card that keeps the controller waiting (a
//! real card writing) costs a poll a few status reads and then returns;
//! after [`IDLE_POLL_LIMIT`] polls without progress the request fails.
//!
//! ```no_run
//! use hyp::hil::block::BlockDevice;
//! use pl181::{registers::Mmio, Pl181, BASE};
//! // SAFETY (of the example): BASE is mapped and nothing else drives it.
//! let disk = Pl181::new(unsafe { Mmio::new(BASE) });
//! let card = disk.init().expect("an SD card");
//! assert_eq!(disk.sectors(), card.sectors);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod registers;
pub mod sd;

use core::cell::Cell;
use core::fmt;
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError, SECTOR_BYTES};
use registers::{clock, command, data_control, power, status, Bus, Register};
use sd::Csd;

/// Integrator/CP's PL181.
pub const BASE: usize = 0x1c00_0000;
/// Its register block's size.
pub const SIZE: usize = 0x1000;
/// Its interrupt lines on the Integrator/CP PIC (MCIINTR0, MCIINTR1); the
/// driver masks both (see the crate documentation).
pub const INTERRUPT_LINES: [u32; 2] = [23, 24];

/// The most bytes one [`BlockDevice::poll`] moves through the FIFO.
pub const POLL_BYTES: usize = 4096;
/// The most sectors one read or write command moves: DATALENGTH has 16
/// bits, so 127 sectors would fit; 64 keeps the numbers round.
pub const SECTORS_PER_COMMAND: usize = 64;
/// Polls in a row without progress after which a request fails.
pub const IDLE_POLL_LIMIT: u32 = 100_000;
/// Status reads without progress inside one poll before it returns.
const SPINS_PER_POLL: u32 = 64;
/// Status reads a command may take to complete.
const COMMAND_SPINS: u32 = 100_000;
/// ACMD41 attempts while the card powers up.
const POWER_UP_ATTEMPTS: u32 = 10_000;
/// DATATIMER: card bus clocks the card may take before data (the largest
/// value; QEMU's card never waits).
const DATA_TIMEOUT_CLOCKS: u32 = 0xffff_ffff;

/// Why the card could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// No card answered (a command timed out): no disk attached.
    NoCard,
    /// Command `command` failed: a CRC error or an error in the card status.
    Command { command: u32, status: u32 },
    /// SEND_IF_COND came back with another voltage or check pattern.
    BadInterfaceCondition(u32),
    /// The card did not finish powering up.
    PowerUpTimeout,
    /// The card's voltage window is not 2.7-3.6 V.
    Voltage(u32),
    /// The CSD has a structure version this driver does not know.
    UnknownCsd(u32),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::NoCard => write!(f, "no SD card answered"),
            InitError::Command { command, status } => {
                write!(f, "CMD{command} failed (status {status:#010x})")
            }
            InitError::BadInterfaceCondition(response) => {
                write!(f, "CMD8 answered {response:#x}, not the check pattern")
            }
            InitError::PowerUpTimeout => write!(f, "the card did not power up"),
            InitError::Voltage(ocr) => write!(f, "OCR {ocr:#010x}: no 2.7-3.6 V"),
            InitError::UnknownCsd(structure) => write!(f, "CSD structure {structure} unknown"),
        }
    }
}

/// How the card takes addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// Standard capacity (SDSC): byte addresses.
    Bytes,
    /// High or extended capacity (SDHC, SDXC): 512-byte block addresses.
    Blocks,
}

/// What [`Pl181::init`] learnt of the card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardInfo {
    /// Its size in 512-byte sectors.
    pub sectors: u64,
    /// How it is addressed.
    pub addressing: Addressing,
    /// Its relative card address.
    pub rca: u16,
    /// Its CSD's permanent or temporary write protection is set: writes
    /// are refused with [`BlockError::ReadOnly`].
    pub write_protected: bool,
}

impl CardInfo {
    /// "SDSC" or "SDHC/SDXC".
    pub fn kind(&self) -> &'static str {
        match self.addressing {
            Addressing::Bytes => "SDSC",
            Addressing::Blocks => "SDHC/SDXC",
        }
    }
}

/// The kinds of response a command has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Response {
    None,
    /// 48 bits with a CRC (R1, R1b, R6, R7).
    Short,
    /// 48 bits without a valid CRC (R3: the OCR).
    ShortNoCrc,
    /// 136 bits (R2).
    Long,
}

/// Where a transfer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The next command is to be sent.
    Start,
    /// Words are going through the FIFO up to `end` (a byte offset).
    Data { end: usize, sectors: usize },
    /// The data went through: stop, check, go on.
    Finish { end: usize, sectors: usize },
}

/// A read or write in flight.
#[derive(Debug)]
struct Transfer {
    write: bool,
    /// The sector of `buffer[0]`.
    first: u64,
    buffer: &'static mut [u8],
    /// Bytes moved so far.
    done: usize,
    phase: Phase,
    /// Polls in a row that moved nothing.
    idle_polls: u32,
}

/// The request the device holds.
#[derive(Debug, Default)]
enum Request {
    #[default]
    Idle,
    /// A flush, answered at the next poll.
    Flush,
    Transfer(Transfer),
}

/// What one poll of a transfer came to.
enum Progress {
    Pending,
    Done(Result<(), BlockError>),
}

/// The PL181 with its SD card.
pub struct Pl181<'a, B: Bus> {
    bus: B,
    card: Cell<Option<CardInfo>>,
    request: Cell<Request>,
    client: Cell<Option<&'a dyn BlockClient>>,
}

impl<B: Bus> fmt::Debug for Pl181<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pl181")
            .field("card", &self.card.get())
            .finish_non_exhaustive()
    }
}

impl<'a, B: Bus> Pl181<'a, B> {
    /// The controller behind `bus`, its card not yet brought up.
    pub const fn new(bus: B) -> Pl181<'a, B> {
        Pl181 {
            bus,
            card: Cell::new(None),
            request: Cell::new(Request::Idle),
            client: Cell::new(None),
        }
    }

    /// The card, once [`Pl181::init`] brought it up.
    pub fn card(&self) -> Option<CardInfo> {
        self.card.get()
    }

    /// Powers the card and brings it to the transfer state (a bounded
    /// number of register reads, at boot). [`InitError::NoCard`] when
    /// nothing answers CMD0's successors: QEMU without `-drive if=sd`.
    pub fn init(&self) -> Result<CardInfo, InitError> {
        let bus = &self.bus;
        bus.write(Register::Mask0, 0);
        bus.write(Register::Mask1, 0);
        bus.write(Register::DataCtrl, 0);
        bus.write(Register::Power, power::ON | power::VOLTAGE_3V3);
        bus.write(
            Register::Clock,
            clock::ENABLE | clock::IDENTIFICATION_DIVIDER,
        );
        bus.write(Register::Clear, status::STATIC);
        self.command(sd::GO_IDLE_STATE, 0, Response::None)
            .map_err(|_| InitError::NoCard)?;
        // A version 2.00 card echoes the voltage and the pattern; an older
        // one does not answer (and cannot be high capacity).
        let version2 = match self.command(sd::SEND_IF_COND, sd::IF_COND_ARGUMENT, Response::Short) {
            Ok(echo) if echo & 0xfff == sd::IF_COND_ARGUMENT => true,
            Ok(echo) => return Err(InitError::BadInterfaceCondition(echo)),
            Err(CommandError::Timeout) => false,
            Err(error) => return Err(error.during(sd::SEND_IF_COND)),
        };
        let hcs = if version2 { sd::OCR_HIGH_CAPACITY } else { 0 };
        let mut ocr = 0;
        for _ in 0..POWER_UP_ATTEMPTS {
            self.app_command(0)?;
            ocr = match self.command(
                sd::SD_SEND_OP_COND,
                hcs | sd::OCR_VOLTAGE_WINDOW,
                Response::ShortNoCrc,
            ) {
                Ok(ocr) => ocr,
                Err(CommandError::Timeout) => return Err(InitError::NoCard),
                Err(error) => return Err(error.during(sd::SD_SEND_OP_COND)),
            };
            if ocr & sd::OCR_POWERED_UP != 0 {
                break;
            }
        }
        if ocr & sd::OCR_POWERED_UP == 0 {
            return Err(InitError::PowerUpTimeout);
        }
        if ocr & sd::OCR_VOLTAGE_WINDOW == 0 {
            return Err(InitError::Voltage(ocr));
        }
        let addressing = if ocr & sd::OCR_HIGH_CAPACITY != 0 {
            Addressing::Blocks
        } else {
            Addressing::Bytes
        };
        self.command(sd::ALL_SEND_CID, 0, Response::Long)
            .map_err(|error| error.during(sd::ALL_SEND_CID))?;
        let rca = (self
            .command(sd::SEND_RELATIVE_ADDR, 0, Response::Short)
            .map_err(|error| error.during(sd::SEND_RELATIVE_ADDR))?
            >> 16) as u16;
        let rca_argument = u32::from(rca) << 16;
        self.command(sd::SEND_CSD, rca_argument, Response::Long)
            .map_err(|error| error.during(sd::SEND_CSD))?;
        let csd = Csd([0, 1, 2, 3].map(|index| self.bus.read(Register::Response(index))));
        let sectors =
            sd::capacity_sectors(&csd).ok_or(InitError::UnknownCsd(csd.bits(127, 126)))?;
        self.card_command(sd::SELECT_CARD, rca_argument)?;
        if addressing == Addressing::Bytes {
            self.card_command(sd::SET_BLOCKLEN, SECTOR_BYTES as u32)?;
        }
        bus.write(Register::Clock, clock::ENABLE | clock::TRANSFER_DIVIDER);
        let info = CardInfo {
            sectors,
            addressing,
            rca,
            write_protected: csd.bits(13, 12) != 0,
        };
        self.card.set(Some(info));
        Ok(info)
    }

    /// APP_CMD for the card at `rca` (0 before it has one). Its status
    /// may report ILLEGAL_COMMAND for the command before: the CMD8 a
    /// version 1 card does not know.
    fn app_command(&self, rca: u16) -> Result<(), InitError> {
        match self.command(sd::APP_CMD, u32::from(rca) << 16, Response::Short) {
            Ok(status) if status & sd::R1_ERRORS & !sd::R1_ILLEGAL_COMMAND == 0 => Ok(()),
            Ok(status) => Err(InitError::Command {
                command: sd::APP_CMD,
                status,
            }),
            Err(CommandError::Timeout) => Err(InitError::NoCard),
            Err(error) => Err(error.during(sd::APP_CMD)),
        }
    }

    /// A command with an R1 response whose card status must show no error.
    fn card_command(&self, index: u32, argument: u32) -> Result<u32, InitError> {
        match self.command(index, argument, Response::Short) {
            Ok(status) if status & sd::R1_ERRORS == 0 => Ok(status),
            Ok(status) => Err(InitError::Command {
                command: index,
                status,
            }),
            Err(error) => Err(error.during(index)),
        }
    }

    /// Sends one command and waits (a bounded number of status reads) for
    /// its end; returns RESPONSE0.
    fn command(&self, index: u32, argument: u32, response: Response) -> Result<u32, CommandError> {
        let bus = &self.bus;
        bus.write(
            Register::Clear,
            status::CMD_CRC_FAIL
                | status::CMD_TIMEOUT
                | status::CMD_RESPONSE_END
                | status::CMD_SENT,
        );
        bus.write(Register::Argument, argument);
        let kind = match response {
            Response::None => 0,
            Response::Short | Response::ShortNoCrc => command::RESPONSE,
            Response::Long => command::RESPONSE | command::LONG_RESPONSE,
        };
        bus.write(
            Register::Command,
            (index & command::INDEX) | kind | command::ENABLE,
        );
        let done = if response == Response::None {
            status::CMD_SENT
        } else {
            status::CMD_RESPONSE_END
        };
        for _ in 0..COMMAND_SPINS {
            let now = bus.read(Register::Status);
            if now & status::CMD_TIMEOUT != 0 {
                return Err(CommandError::Timeout);
            }
            // R3 has no CRC: a controller checking one reports a failure
            // with the response in place.
            if now & status::CMD_CRC_FAIL != 0 && response != Response::ShortNoCrc {
                return Err(CommandError::Crc(now));
            }
            if now & (done | status::CMD_CRC_FAIL) != 0 && now & status::CMD_ACTIVE == 0 {
                return Ok(bus.read(Register::Response(0)));
            }
        }
        Err(CommandError::Timeout)
    }

    /// The argument addressing `sector` on this card.
    fn address(&self, card: CardInfo, sector: u64) -> u32 {
        match card.addressing {
            Addressing::Bytes => (sector * SECTOR_BYTES as u64) as u32,
            Addressing::Blocks => sector as u32,
        }
    }

    /// Starts a request after checking it.
    fn start(
        &self,
        write: bool,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        let Some(card) = self.card.get() else {
            return Err((BlockError::Device, buffer));
        };
        if write && card.write_protected {
            return Err((BlockError::ReadOnly, buffer));
        }
        if let Err(error) = check_range(sector, buffer.len(), card.sectors) {
            return Err((error, buffer));
        }
        match self.request.take() {
            Request::Idle => {}
            busy => {
                self.request.set(busy);
                return Err((BlockError::Busy, buffer));
            }
        }
        self.request.set(Request::Transfer(Transfer {
            write,
            first: sector,
            buffer,
            done: 0,
            phase: Phase::Start,
            idle_polls: 0,
        }));
        Ok(())
    }

    /// Moves `transfer` on by at most [`POLL_BYTES`].
    fn advance(&self, card: CardInfo, transfer: &mut Transfer) -> Progress {
        let mut budget = POLL_BYTES;
        let mut progressed = false;
        loop {
            match transfer.phase {
                Phase::Start => {
                    let left = (transfer.buffer.len() - transfer.done) / SECTOR_BYTES;
                    let sectors = left.min(SECTORS_PER_COMMAND);
                    let sector = transfer.first + (transfer.done / SECTOR_BYTES) as u64;
                    if let Err(error) = self.start_command(card, transfer.write, sector, sectors) {
                        return Progress::Done(Err(error));
                    }
                    transfer.phase = Phase::Data {
                        end: transfer.done + sectors * SECTOR_BYTES,
                        sectors,
                    };
                    progressed = true;
                }
                Phase::Data { end, sectors } => {
                    match self.move_words(transfer, end, &mut budget) {
                        Ok(moved) => progressed |= moved,
                        Err(error) => {
                            self.abort(card);
                            return Progress::Done(Err(error));
                        }
                    }
                    if transfer.done == end
                        && self.bus.read(Register::Status) & status::DATA_END != 0
                    {
                        transfer.phase = Phase::Finish { end, sectors };
                    } else {
                        break;
                    }
                }
                Phase::Finish { end, sectors } => {
                    let last = transfer.first + (end / SECTOR_BYTES) as u64 == card.sectors;
                    if let Err(error) = self.finish_command(card, transfer.write, sectors, last) {
                        self.abort(card);
                        return Progress::Done(Err(error));
                    }
                    if end == transfer.buffer.len() {
                        return Progress::Done(Ok(()));
                    }
                    transfer.phase = Phase::Start;
                    if budget == 0 {
                        break;
                    }
                }
            }
        }
        if progressed {
            transfer.idle_polls = 0;
        } else {
            transfer.idle_polls += 1;
            if transfer.idle_polls >= IDLE_POLL_LIMIT {
                self.abort(card);
                return Progress::Done(Err(BlockError::Device));
            }
        }
        Progress::Pending
    }

    /// Sets up the data path and sends the read or write command for
    /// `sectors` sectors at `sector`.
    fn start_command(
        &self,
        card: CardInfo,
        write: bool,
        sector: u64,
        sectors: usize,
    ) -> Result<(), BlockError> {
        let bus = &self.bus;
        bus.write(Register::Clear, status::STATIC);
        bus.write(Register::DataTimer, DATA_TIMEOUT_CLOCKS);
        bus.write(Register::DataLength, (sectors * SECTOR_BYTES) as u32);
        let direction = if write { 0 } else { data_control::FROM_CARD };
        bus.write(
            Register::DataCtrl,
            data_control::ENABLE | direction | data_control::BLOCK_512,
        );
        let index = match (write, sectors > 1) {
            (false, false) => sd::READ_SINGLE_BLOCK,
            (false, true) => sd::READ_MULTIPLE_BLOCK,
            (true, false) => sd::WRITE_BLOCK,
            (true, true) => sd::WRITE_MULTIPLE_BLOCK,
        };
        match self.command(index, self.address(card, sector), Response::Short) {
            Ok(card_status) if card_status & sd::R1_ERRORS == 0 => Ok(()),
            _ => {
                self.abort(card);
                Err(BlockError::Device)
            }
        }
    }

    /// Moves words between the FIFO and `transfer.buffer` up to `end`
    /// while `budget` lasts; whether any moved.
    fn move_words(
        &self,
        transfer: &mut Transfer,
        end: usize,
        budget: &mut usize,
    ) -> Result<bool, BlockError> {
        let bus = &self.bus;
        let mut moved = false;
        let mut spins = 0;
        while transfer.done < end && *budget > 0 && spins < SPINS_PER_POLL {
            let now = bus.read(Register::Status);
            if now & status::DATA_ERRORS != 0 {
                return Err(BlockError::Device);
            }
            let at = transfer.done;
            if transfer.write {
                if now & status::TX_FIFO_FULL == 0 {
                    let word = [0, 1, 2, 3].map(|i| transfer.buffer[at + i]);
                    bus.write(Register::Fifo, u32::from_le_bytes(word));
                } else {
                    spins += 1;
                    continue;
                }
            } else if now & status::RX_DATA_AVAILABLE != 0 {
                let word = bus.read(Register::Fifo).to_le_bytes();
                transfer.buffer[at..at + 4].copy_from_slice(&word);
            } else {
                spins += 1;
                continue;
            }
            transfer.done += 4;
            *budget -= 4;
            moved = true;
            spins = 0;
        }
        if transfer.done == end {
            // The data's end (and its CRC) are in the status once the
            // card has sent or taken the last block.
            let now = bus.read(Register::Status);
            if now & status::DATA_ERRORS != 0 {
                return Err(BlockError::Device);
            }
        }
        Ok(moved)
    }

    /// Ends a transfer: CMD12 after a multiple-block one, then for a write
    /// waits for the card to be back in the transfer state. Card status
    /// errors fail it; a multiple-block read that ended at the card's last
    /// sector may report OUT_OF_RANGE or ADDRESS_ERROR for the block after,
    /// which the card read ahead and nobody asked for.
    fn finish_command(
        &self,
        card: CardInfo,
        write: bool,
        sectors: usize,
        last: bool,
    ) -> Result<(), BlockError> {
        self.bus.write(Register::DataCtrl, 0);
        if sectors > 1 {
            let card_status = self
                .command(sd::STOP_TRANSMISSION, 0, Response::Short)
                .map_err(|_| BlockError::Device)?;
            let mut errors = sd::R1_ERRORS;
            if last && !write {
                errors &= !(sd::R1_OUT_OF_RANGE | sd::R1_ADDRESS_ERROR);
            }
            if card_status & errors != 0 {
                return Err(BlockError::Device);
            }
        }
        if write {
            for _ in 0..COMMAND_SPINS {
                let card_status = self
                    .command(sd::SEND_STATUS, u32::from(card.rca) << 16, Response::Short)
                    .map_err(|_| BlockError::Device)?;
                if card_status & sd::R1_ERRORS != 0 {
                    return Err(BlockError::Device);
                }
                if card_status & sd::R1_READY_FOR_DATA != 0
                    && sd::r1_state(card_status) == sd::STATE_TRANSFER
                {
                    return Ok(());
                }
            }
            return Err(BlockError::Device);
        }
        Ok(())
    }

    /// Stops the data path after a failure and puts the card back in the
    /// transfer state: CMD12 (an error if the card never left it: its
    /// answer does not matter), then CMD13, whose status report clears
    /// the error bits left over for the next command.
    fn abort(&self, card: CardInfo) {
        self.bus.write(Register::DataCtrl, 0);
        let _ = self.command(sd::STOP_TRANSMISSION, 0, Response::Short);
        let _ = self.command(sd::SEND_STATUS, u32::from(card.rca) << 16, Response::Short);
        self.bus.write(Register::Clear, status::STATIC);
    }

    /// Whether a request is in flight.
    fn busy(&self) -> bool {
        let request = self.request.take();
        let busy = !matches!(request, Request::Idle);
        self.request.set(request);
        busy
    }
}

/// How a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommandError {
    /// No response in time (the controller's CMDTIMEOUT).
    Timeout,
    /// The response's CRC did not match (STATUS then).
    Crc(u32),
}

impl CommandError {
    fn during(self, command: u32) -> InitError {
        match self {
            CommandError::Timeout => InitError::Command {
                command,
                status: status::CMD_TIMEOUT,
            },
            CommandError::Crc(status) => InitError::Command { command, status },
        }
    }
}

impl<'a, B: Bus> BlockDevice<'a> for Pl181<'a, B> {
    fn set_client(&self, client: &'a dyn BlockClient) {
        self.client.set(Some(client));
    }

    fn sectors(&self) -> u64 {
        self.card.get().map_or(0, |card| card.sectors)
    }

    fn read_only(&self) -> bool {
        self.card.get().is_some_and(|card| card.write_protected)
    }

    fn read(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.start(false, sector, buffer)
    }

    fn write(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.start(true, sector, buffer)
    }

    /// An SD card without its optional cache (never turned on here) has
    /// every completed write in flash: the flush completes at the next
    /// poll.
    fn flush(&self) -> Result<(), BlockError> {
        match self.card.get() {
            None => return Err(BlockError::Device),
            Some(card) if card.write_protected => return Err(BlockError::ReadOnly),
            Some(_) => {}
        }
        match self.request.take() {
            Request::Idle => {
                self.request.set(Request::Flush);
                Ok(())
            }
            busy => {
                self.request.set(busy);
                Err(BlockError::Busy)
            }
        }
    }

    fn poll(&self) -> bool {
        let client = self.client.get();
        match self.request.take() {
            Request::Idle => return false,
            Request::Flush => {
                if let Some(client) = client {
                    client.flush_done(Ok(()));
                }
            }
            Request::Transfer(mut transfer) => {
                let Some(card) = self.card.get() else {
                    return false;
                };
                match self.advance(card, &mut transfer) {
                    Progress::Pending => {
                        self.request.set(Request::Transfer(transfer));
                        return true;
                    }
                    Progress::Done(result) => {
                        if let Some(client) = client {
                            if transfer.write {
                                client.write_done(transfer.buffer, result);
                            } else {
                                client.read_done(transfer.buffer, result);
                            }
                        }
                    }
                }
            }
        }
        self.busy()
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
