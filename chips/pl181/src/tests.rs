// SPDX-License-Identifier: MIT OR Apache-2.0
//! The driver against the modelled controller and card (`fake`).

use super::*;
use crate::fake::{FakeCard, State};
use std::cell::RefCell;

const MIB: usize = 1 << 20;

/// What the client heard.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Read(Vec<u8>, Result<(), BlockError>),
    Write(Result<(), BlockError>),
    Flush(Result<(), BlockError>),
}

#[derive(Default)]
struct Client {
    events: RefCell<Vec<Event>>,
}

impl BlockClient for Client {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.events
            .borrow_mut()
            .push(Event::Read(buffer.to_vec(), result));
    }
    fn write_done(&self, _buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.events.borrow_mut().push(Event::Write(result));
    }
    fn flush_done(&self, result: Result<(), BlockError>) {
        self.events.borrow_mut().push(Event::Flush(result));
    }
}

fn buffer(bytes: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; bytes].into_boxed_slice())
}

fn driver(card: FakeCard) -> (&'static Pl181<'static, FakeCard>, &'static Client) {
    let disk: &'static Pl181<'static, FakeCard> = Box::leak(Box::new(Pl181::new(card)));
    let client: &'static Client = Box::leak(Box::default());
    disk.set_client(client);
    (disk, client)
}

/// Polls until the request completes; returns how many polls it took.
fn run(disk: &Pl181<'_, FakeCard>) -> usize {
    let mut polls = 1;
    while disk.poll() {
        polls += 1;
        assert!(polls < 1_000_000, "the request never completed");
    }
    polls
}

fn read(disk: &Pl181<'_, FakeCard>, client: &Client, sector: u64, sectors: usize) -> Vec<u8> {
    disk.read(sector, buffer(sectors * 512)).unwrap();
    run(disk);
    match client.events.borrow_mut().pop() {
        Some(Event::Read(data, Ok(()))) => data,
        other => panic!("expected a good read, got {other:?}"),
    }
}

fn write(disk: &Pl181<'_, FakeCard>, client: &Client, sector: u64, data: &[u8]) {
    let buffer = buffer(data.len());
    buffer.copy_from_slice(data);
    disk.write(sector, buffer).unwrap();
    run(disk);
    assert_eq!(client.events.borrow_mut().pop(), Some(Event::Write(Ok(()))));
}

#[test]
fn an_sdhc_card_is_brought_up_in_order_and_addressed_in_blocks() {
    let (disk, client) = driver(FakeCard::new(64 * MIB, true, true));
    let card = disk.init().unwrap();
    assert_eq!(
        card,
        CardInfo {
            sectors: 131072,
            addressing: Addressing::Blocks,
            rca: 0x4567,
            write_protected: false,
        }
    );
    assert_eq!(card.kind(), "SDHC/SDXC");
    assert_eq!(disk.sectors(), 131072);
    let model = disk.bus.model.borrow();
    // CMD0, CMD8, ACMD41 three times until powered up, CMD2, CMD3, CMD9
    // and CMD7; no CMD16 for a block-addressed card.
    assert_eq!(
        model.log.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [0, 8, 55, 41, 55, 41, 55, 41, 2, 3, 9, 7]
    );
    assert_eq!(model.log[1], (8, 0x1aa));
    assert_eq!(
        model.log[3].1,
        sd::OCR_HIGH_CAPACITY | sd::OCR_VOLTAGE_WINDOW
    );
    assert_eq!(model.log[10], (9, 0x4567_0000));
    assert_eq!(model.log[11], (7, 0x4567_0000));
    assert_eq!(model.state, State::Transfer);
    drop(model);
    // Sector 5 is block address 5.
    let data = read(disk, client, 5, 1);
    assert_eq!(disk.bus.model.borrow().log.last(), Some(&(17, 5)));
    assert_eq!(data, disk.bus.model.borrow().storage[5 * 512..6 * 512]);
}

#[test]
fn an_sdsc_card_without_cmd8_gets_cmd16_and_byte_addresses() {
    let (disk, client) = driver(FakeCard::new(32 * MIB, false, false));
    let card = disk.init().unwrap();
    assert_eq!(card.addressing, Addressing::Bytes);
    assert_eq!(card.kind(), "SDSC");
    assert_eq!(card.sectors, 65536);
    let model = disk.bus.model.borrow();
    assert_eq!(
        model.log.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [0, 8, 55, 41, 55, 41, 55, 41, 2, 3, 9, 7, 16]
    );
    // No HCS for a card that did not answer CMD8.
    assert_eq!(model.log[3].1, sd::OCR_VOLTAGE_WINDOW);
    assert_eq!(model.log[12], (16, 512));
    drop(model);
    let data = read(disk, client, 3, 1);
    assert_eq!(disk.bus.model.borrow().log.last(), Some(&(17, 3 * 512)));
    assert_eq!(data, disk.bus.model.borrow().storage[3 * 512..4 * 512]);
}

#[test]
fn a_version2_standard_capacity_card_is_asked_with_hcs_and_answers_without_ccs() {
    let (disk, _) = driver(FakeCard::new(16 * MIB, false, true));
    let card = disk.init().unwrap();
    assert_eq!(card.addressing, Addressing::Bytes);
    assert_eq!(card.sectors, 32768);
    assert_eq!(
        disk.bus.model.borrow().log[3].1,
        sd::OCR_HIGH_CAPACITY | sd::OCR_VOLTAGE_WINDOW
    );
}

#[test]
fn r3_with_a_crc_failure_is_taken_as_a_real_controller_reports_it() {
    let card = FakeCard::new(16 * MIB, true, true);
    card.model.borrow_mut().faults.r3_crc_fail = true;
    let (disk, _) = driver(card);
    assert_eq!(disk.init().unwrap().addressing, Addressing::Blocks);
}

#[test]
fn long_transfers_go_in_commands_of_64_sectors_and_polls_of_4_kib() {
    let (disk, client) = driver(FakeCard::new(16 * MIB, true, true));
    disk.init().unwrap();
    let data: Vec<u8> = (0..80 * 512).map(|i| (i * 13 + 5) as u8).collect();
    let first = disk.bus.model.borrow().log.len();
    let buffer = buffer(data.len());
    buffer.copy_from_slice(&data);
    disk.write(100, buffer).unwrap();
    let polls = run(disk);
    assert!(polls >= 80 * 512 / POLL_BYTES, "{polls} polls");
    assert_eq!(client.events.borrow_mut().pop(), Some(Event::Write(Ok(()))));
    {
        let model = disk.bus.model.borrow();
        assert_eq!(model.storage[100 * 512..180 * 512], data[..]);
        let commands: Vec<_> = model.log[first..].to_vec();
        assert_eq!(
            commands,
            [
                (25, 100),
                (12, 0),
                (13, 0x4567_0000),
                (25, 164),
                (12, 0),
                (13, 0x4567_0000)
            ]
        );
        // A write's data path goes to the card; a block size of 512.
        assert_eq!(
            model.data_controls.last(),
            Some(&(data_control::ENABLE | data_control::BLOCK_512))
        );
    }
    let first = disk.bus.model.borrow().log.len();
    assert_eq!(read(disk, client, 100, 80), data);
    let model = disk.bus.model.borrow();
    assert_eq!(model.log[first..], [(18, 100), (12, 0), (18, 164), (12, 0)]);
    assert_eq!(
        model.data_controls.last(),
        Some(&(data_control::ENABLE | data_control::FROM_CARD | data_control::BLOCK_512))
    );
}

#[test]
fn single_sector_writes_use_cmd24_and_keep_their_neighbours() {
    let (disk, client) = driver(FakeCard::new(8 * MIB, false, true));
    disk.init().unwrap();
    let before = disk.bus.model.borrow().storage.clone();
    write(disk, client, 7, &[0xa5; 512]);
    let model = disk.bus.model.borrow();
    assert_eq!(model.log[model.log.len() - 2], (24, 7 * 512));
    assert_eq!(model.storage[7 * 512..8 * 512], [0xa5; 512]);
    assert_eq!(model.storage[..7 * 512], before[..7 * 512]);
    assert_eq!(model.storage[8 * 512..], before[8 * 512..]);
}

#[test]
fn a_read_ending_at_the_last_sector_tolerates_the_cards_read_ahead() {
    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().faults.read_ahead_out_of_range = true;
    let (disk, client) = driver(card);
    disk.init().unwrap();
    let last = disk.sectors() - 4;
    let data = read(disk, client, last, 4);
    assert_eq!(data, disk.bus.model.borrow().storage[last as usize * 512..]);
    // Elsewhere the same report is an error.
    let card = FakeCard::new(8 * MIB, true, true);
    let (disk, client) = driver(card);
    disk.init().unwrap();
    disk.bus.model.borrow_mut().faults.status_error_on = Some(sd::STOP_TRANSMISSION);
    disk.read(0, buffer(1024)).unwrap();
    run(disk);
    assert!(matches!(
        client.events.borrow_mut().pop(),
        Some(Event::Read(_, Err(BlockError::Device)))
    ));
}

#[test]
fn requests_outside_the_card_or_unaligned_or_overlapping_are_refused() {
    let (disk, _) = driver(FakeCard::new(8 * MIB, true, true));
    // Before the card is up, nothing goes.
    assert_eq!(disk.read(0, buffer(512)).unwrap_err().0, BlockError::Device);
    disk.init().unwrap();
    let sectors = disk.sectors();
    assert_eq!(
        disk.read(sectors, buffer(512)).unwrap_err().0,
        BlockError::OutOfRange
    );
    assert_eq!(
        disk.write(sectors - 1, buffer(1024)).unwrap_err().0,
        BlockError::OutOfRange
    );
    assert_eq!(
        disk.read(0, buffer(100)).unwrap_err().0,
        BlockError::Unaligned
    );
    let commands = disk.bus.model.borrow().log.len();
    disk.read(0, buffer(512)).unwrap();
    assert_eq!(disk.read(1, buffer(512)).unwrap_err().0, BlockError::Busy);
    assert_eq!(disk.flush(), Err(BlockError::Busy));
    // Refused requests never reached the card.
    run(disk);
    assert_eq!(disk.bus.model.borrow().log.len(), commands + 1);
}

#[test]
fn a_command_timeout_a_data_crc_failure_and_a_card_status_error_fail_the_request() {
    for (fault, write) in [
        ("timeout", false),
        ("timeout", true),
        ("crc", false),
        ("crc", true),
        ("status", false),
        ("status", true),
    ] {
        let (disk, client) = driver(FakeCard::new(8 * MIB, true, true));
        disk.init().unwrap();
        let index = if write {
            sd::WRITE_MULTIPLE_BLOCK
        } else {
            sd::READ_MULTIPLE_BLOCK
        };
        {
            let faults = &mut disk.bus.model.borrow_mut().faults;
            match fault {
                "timeout" => faults.timeout_on = Some(index),
                "crc" => faults.data_crc = true,
                _ => faults.status_error_on = Some(index),
            }
        }
        let buffer = buffer(4096);
        if write {
            disk.write(8, buffer).unwrap();
        } else {
            disk.read(8, buffer).unwrap();
        }
        run(disk);
        let event = client.events.borrow_mut().pop();
        match event {
            Some(Event::Read(_, Err(BlockError::Device))) if !write => {}
            Some(Event::Write(Err(BlockError::Device))) if write => {}
            other => panic!(
                "{fault} on a {} gave {other:?}",
                if write { "write" } else { "read" }
            ),
        }
        // The card is back in the transfer state: the next request works.
        disk.bus.model.borrow_mut().faults = Default::default();
        assert_eq!(read(disk, client, 0, 2).len(), 1024);
    }
}

#[test]
fn bring_up_failures_are_named() {
    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().faults.timeout_on = Some(sd::APP_CMD);
    assert_eq!(driver(card).0.init(), Err(InitError::NoCard));

    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().faults.never_ready = true;
    assert_eq!(driver(card).0.init(), Err(InitError::PowerUpTimeout));

    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().faults.status_error_on = Some(sd::SELECT_CARD);
    assert!(matches!(
        driver(card).0.init(),
        Err(InitError::Command { command: 7, .. })
    ));

    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().faults.timeout_on = Some(sd::SEND_CSD);
    assert_eq!(
        driver(card).0.init(),
        Err(InitError::Command {
            command: 9,
            status: status::CMD_TIMEOUT
        })
    );
}

#[test]
fn a_write_protected_card_is_read_only() {
    let card = FakeCard::new(8 * MIB, true, true);
    card.model.borrow_mut().write_protected = true;
    let (disk, client) = driver(card);
    assert!(!disk.read_only());
    assert!(disk.init().unwrap().write_protected);
    assert!(disk.read_only());
    assert_eq!(
        disk.write(0, buffer(512)).unwrap_err().0,
        BlockError::ReadOnly
    );
    assert_eq!(disk.flush(), Err(BlockError::ReadOnly));
    assert_eq!(read(disk, client, 0, 1).len(), 512);
}

#[test]
fn a_flush_completes_at_the_next_poll() {
    let (disk, client) = driver(FakeCard::new(8 * MIB, true, true));
    assert_eq!(disk.flush(), Err(BlockError::Device));
    disk.init().unwrap();
    assert_eq!(disk.flush(), Ok(()));
    assert!(client.events.borrow().is_empty());
    assert!(!disk.poll());
    assert_eq!(client.events.borrow_mut().pop(), Some(Event::Flush(Ok(()))));
    assert!(!disk.poll());
}

#[test]
fn csds_of_both_versions_give_the_capacity() {
    // QEMU's 64 MiB SDSC card: C_SIZE 255, C_SIZE_MULT 7, READ_BL_LEN 9.
    let csd = Csd(crate::fake::csd_of(64 << 20, false));
    assert_eq!(csd.bits(127, 126), 0);
    assert_eq!(csd.bits(73, 62), 255);
    assert_eq!(sd::capacity_sectors(&csd), Some(131072));
    let csd = Csd(crate::fake::csd_of(4 << 30, true));
    assert_eq!(csd.bits(127, 126), 1);
    assert_eq!(sd::capacity_sectors(&csd), Some(8 * 1024 * 1024));
    assert_eq!(sd::capacity_sectors(&Csd([0xc000_0000, 0, 0, 0])), None);
}
