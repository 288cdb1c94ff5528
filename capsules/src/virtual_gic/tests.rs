// SPDX-License-Identifier: MIT OR Apache-2.0
//! Tests of the virtual GIC: distributor, software CPU interface, lines.

use super::*;
use AccessSize::{Byte, Doubleword, Halfword, Word};

/// A device's line: the guest platform's PL011.
const UART: u32 = hyp::guest_platform::UART.interrupt.unwrap();
/// A vCPU's PPI: the virtual timer.
const TIMER: u32 = hyp::guest_platform::VIRTUAL_TIMER;

fn dist_read(gic: &VirtualGic, offset: u64) -> u32 {
    gic.distributor().read(offset, Word).unwrap()
}

fn dist_write(gic: &VirtualGic, offset: u64, value: u32) {
    gic.distributor().write(offset, Word, value).unwrap();
}

fn cpu_read(gic: &VirtualGic, offset: u64) -> u32 {
    gic.cpu_interface().read(offset, Word).unwrap()
}

fn cpu_write(gic: &VirtualGic, offset: u64, value: u32) {
    gic.cpu_interface().write(offset, Word, value).unwrap();
}

/// Sets `id`'s priority with a byte write and enables it.
fn enable(gic: &VirtualGic, id: u32, priority: u8) {
    let offset = GICD_IPRIORITYR + u64::from(id);
    gic.distributor()
        .write(offset, Byte, priority.into())
        .unwrap();
    dist_write(gic, GICD_ISENABLER + u64::from(id / 32) * 4, 1 << (id % 32));
}

/// A GIC set up as Linux leaves it: both enables, PMR 0xf0.
fn running_gic() -> VirtualGic {
    let gic = VirtualGic::new();
    dist_write(&gic, GICD_CTLR, 1);
    cpu_write(&gic, GICC_PMR, 0xf0);
    cpu_write(&gic, GICC_CTLR, 1);
    gic
}

fn is_set(gic: &VirtualGic, base: u64, id: u32) -> bool {
    dist_read(gic, base + u64::from(id / 32) * 4) & (1 << (id % 32)) != 0
}

#[test]
fn reset_values_and_identification() {
    let gic = VirtualGic::new();
    assert_eq!(dist_read(&gic, GICD_CTLR), 0);
    assert_eq!(dist_read(&gic, GICD_TYPER), 1);
    assert_eq!(dist_read(&gic, GICD_IIDR), 0x0200_043b);
    assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "SGIs enabled");
    assert_eq!(dist_read(&gic, GICD_ICFGR), 0xaaaa_aaaa, "SGIs edge");
    assert_eq!(dist_read(&gic, GICD_ICFGR + 4), 0, "PPIs level");
    assert_eq!(dist_read(&gic, GICD_ITARGETSR), 0x0101_0101);
    assert_eq!(dist_read(&gic, GICD_ITARGETSR + 0x20), 0x0101_0101);
    assert_eq!(dist_read(&gic, 0xfe8), 0x2b, "ICPIDR2: GICv2");
    assert_eq!(dist_read(&gic, 0xffc), 0xb1);
    assert_eq!(cpu_read(&gic, GICC_IIDR), 0x0202_143b);
    assert_eq!(cpu_read(&gic, GICC_BPR), 2);
    assert_eq!(cpu_read(&gic, GICC_PMR), 0);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
}

#[test]
fn nothing_pending_reads_spurious() {
    let gic = running_gic();
    assert!(!gic.pending_irq());
    assert_eq!(gic.highest_pending(), None);
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    assert_eq!(cpu_read(&gic, GICC_HPPIR), SPURIOUS);
    assert_eq!(cpu_read(&gic, GICC_AIAR), SPURIOUS);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xff, "spurious activates nothing");
}

#[test]
fn distributor_and_cpu_interface_enables_gate() {
    let gic = VirtualGic::new();
    enable(&gic, UART, 0xa0);
    cpu_write(&gic, GICC_PMR, 0xff);
    gic.set_level(UART, true);
    assert!(!gic.pending_irq(), "both disabled");
    dist_write(&gic, GICD_CTLR, 1);
    assert!(!gic.pending_irq(), "CPU interface disabled");
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    cpu_write(&gic, GICC_CTLR, 1);
    assert!(gic.pending_irq());
    dist_write(&gic, GICD_CTLR, 0);
    assert!(!gic.pending_irq(), "distributor disabled");
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    dist_write(&gic, GICD_CTLR, 1);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
}

#[test]
fn enable_bits_gate_and_sgis_stay_enabled() {
    let gic = running_gic();
    gic.set_level(UART, true);
    assert!(!gic.pending_irq(), "disabled at reset");
    assert!(is_set(&gic, GICD_ISPENDR, UART), "pending though disabled");
    enable(&gic, UART, 0xa0);
    assert!(is_set(&gic, GICD_ICENABLER, UART));
    assert_eq!(gic.highest_pending(), Some(UART));
    dist_write(&gic, GICD_ICENABLER + 4, 1 << (UART - 32));
    assert!(!is_set(&gic, GICD_ISENABLER, UART));
    assert!(!gic.pending_irq());
    dist_write(&gic, GICD_ICENABLER, 0xffff_ffff);
    assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "only PPIs disable");
}

#[test]
fn priority_mask_must_be_strictly_lower() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    cpu_write(&gic, GICC_PMR, 0xa0);
    assert!(!gic.pending_irq(), "equal to PMR is masked");
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    assert_eq!(cpu_read(&gic, GICC_HPPIR), UART, "HPPIR ignores PMR");
    cpu_write(&gic, GICC_PMR, 0xa8);
    assert!(gic.pending_irq());
    cpu_write(&gic, GICC_PMR, 0xff);
    assert_eq!(cpu_read(&gic, GICC_PMR), 0xf8, "5 priority bits");
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
}

#[test]
fn highest_priority_wins_then_lowest_id() {
    let gic = running_gic();
    for (id, priority) in [(40, 0x80), (35, 0x60), (34, 0x60), (UART, 0x90)] {
        enable(&gic, id, priority);
        gic.trigger(id);
    }
    assert_eq!(gic.highest_pending(), Some(34));
    let order: [u32; 4] = core::array::from_fn(|_| {
        let id = cpu_read(&gic, GICC_IAR);
        cpu_write(&gic, GICC_EOIR, id);
        id
    });
    assert_eq!(order, [34, 35, 40, UART]);
}

#[test]
fn preemption_and_running_priority_with_eoi() {
    let gic = running_gic();
    enable(&gic, 40, 0x80);
    enable(&gic, 41, 0x80);
    enable(&gic, 42, 0x40);
    gic.trigger(40);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0x80);
    gic.trigger(41);
    assert!(!gic.pending_irq(), "same priority does not preempt");
    assert_eq!(cpu_read(&gic, GICC_HPPIR), 41);
    gic.trigger(42);
    assert_eq!(cpu_read(&gic, GICC_IAR), 42, "higher priority preempts");
    assert_eq!(cpu_read(&gic, GICC_RPR), 0x40);
    assert_eq!(cpu_read(&gic, GICC_APR0), (1 << 8) | (1 << 16));
    cpu_write(&gic, GICC_EOIR, 42);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0x80, "back to the preempted one");
    assert!(!gic.pending_irq());
    cpu_write(&gic, GICC_EOIR, 40);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
    assert_eq!(cpu_read(&gic, GICC_IAR), 41);
}

#[test]
fn binary_point_groups_priorities() {
    let gic = running_gic();
    cpu_write(&gic, GICC_BPR, 0);
    assert_eq!(cpu_read(&gic, GICC_BPR), 2, "clamped to the minimum");
    cpu_write(&gic, GICC_BPR, 4); // group priority: bits 7:5
    enable(&gic, 40, 0x78);
    enable(&gic, 41, 0x68);
    enable(&gic, 42, 0x38);
    gic.trigger(40);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0x60, "group priority of 0x78");
    gic.trigger(41);
    assert!(!gic.pending_irq(), "0x68 is in the same group as 0x78");
    gic.trigger(42);
    assert_eq!(cpu_read(&gic, GICC_IAR), 42, "0x38 is a higher group");
}

#[test]
fn sgi_target_filters_and_source() {
    let gic = running_gic();
    enable(&gic, 3, 0x20);
    for (value, delivered) in [
        (0x0002_0003, false), // list: CPU 1 only
        (0x0100_0003, false), // every CPU but the sender
        (0x0300_0003, false), // reserved filter
        (0x0001_0003, true),  // list: CPU 0
        (0x0200_0003, true),  // the sender
    ] {
        dist_write(&gic, GICD_SGIR, value);
        assert_eq!(gic.pending_irq(), delivered, "SGIR {value:#x}");
        assert_eq!(
            gic.distributor().read(GICD_SPENDSGIR + 3, Byte),
            Ok(u32::from(delivered))
        );
        if delivered {
            let iar = cpu_read(&gic, GICC_IAR);
            assert_eq!((iar & 0x3ff, (iar >> 10) & 7), (3, 0), "source CPU 0");
            cpu_write(&gic, GICC_EOIR, iar);
        }
    }
    assert_eq!(dist_read(&gic, GICD_SGIR), 0, "write-only");
    dist_write(&gic, GICD_SGIR, 0x0200_0005);
    gic.distributor()
        .write(GICD_CPENDSGIR + 5, Byte, 1)
        .unwrap();
    assert!(!gic.pending_irq(), "CPENDSGIR clears");
    gic.distributor()
        .write(GICD_SPENDSGIR + 4, Byte, 1)
        .unwrap();
    assert_eq!(dist_read(&gic, GICD_SPENDSGIR + 4), 1);
}

#[test]
fn level_interrupt_pending_while_line_high() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    assert!(is_set(&gic, GICD_ISPENDR, UART), "active and pending");
    assert!(is_set(&gic, GICD_ISACTIVER, UART));
    assert!(!gic.pending_irq(), "an active interrupt is not signalled");
    cpu_write(&gic, GICC_EOIR, UART);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART, "line still high");
    gic.set_level(UART, false);
    assert!(!is_set(&gic, GICD_ISPENDR, UART));
    cpu_write(&gic, GICC_EOIR, UART);
    assert!(!is_set(&gic, GICD_ISACTIVER, UART));
    assert!(!gic.pending_irq());
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
}

#[test]
fn edge_interrupt_pending_once_per_edge() {
    let gic = running_gic();
    enable(&gic, TIMER, 0xa0);
    dist_write(&gic, GICD_ICFGR + 4, 2 << (2 * (TIMER - 16)));
    assert_eq!(dist_read(&gic, GICD_ICFGR + 4), 2 << 22);
    gic.trigger(TIMER);
    gic.trigger(TIMER);
    assert_eq!(cpu_read(&gic, GICC_IAR), TIMER);
    assert!(!is_set(&gic, GICD_ISPENDR, TIMER), "edges do not count");
    gic.set_level(TIMER, true);
    gic.set_level(TIMER, true);
    assert!(is_set(&gic, GICD_ISPENDR, TIMER), "pending and active");
    assert!(is_set(&gic, GICD_ISACTIVER, TIMER));
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    cpu_write(&gic, GICC_EOIR, TIMER);
    assert_eq!(cpu_read(&gic, GICC_IAR), TIMER, "the second edge");
    cpu_write(&gic, GICC_EOIR, TIMER);
    assert!(!gic.pending_irq(), "a line held high is one edge");
    gic.set_level(TIMER, false);
    gic.set_level(TIMER, true);
    assert!(gic.pending_irq(), "a new rising edge");
}

#[test]
fn set_and_clear_pending() {
    let gic = running_gic();
    enable(&gic, 40, 0xa0);
    dist_write(&gic, GICD_ISPENDR + 4, 1 << 8);
    assert_eq!(gic.highest_pending(), Some(40));
    dist_write(&gic, GICD_ICPENDR + 4, 1 << 8);
    assert!(!gic.pending_irq());
    gic.set_level(40, true);
    dist_write(&gic, GICD_ICPENDR + 4, 1 << 8);
    assert!(is_set(&gic, GICD_ISPENDR, 40), "the line keeps it pending");
    gic.set_level(40, false);
    dist_write(&gic, GICD_ISPENDR + 4, 1 << 8);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    cpu_write(&gic, GICC_EOIR, 40);
    assert!(!gic.pending_irq(), "acknowledge cleared the latch");
    dist_write(&gic, GICD_ISPENDR, 1 << 2);
    assert_eq!(dist_read(&gic, GICD_ISPENDR), 0, "SGI bits are read-only");
}

#[test]
fn set_and_clear_active() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    dist_write(&gic, GICD_ISACTIVER + 4, 1 << 1);
    gic.set_level(UART, true);
    assert!(!gic.pending_irq(), "active: not signalled");
    assert_eq!(dist_read(&gic, GICD_ICACTIVER + 4), 1 << 1);
    dist_write(&gic, GICD_ICACTIVER + 4, 1 << 1);
    assert_eq!(dist_read(&gic, GICD_ISACTIVER + 4), 0);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
}

#[test]
fn eoimode_one_splits_drop_and_deactivate() {
    let gic = running_gic();
    cpu_write(&gic, GICC_CTLR, 0xffff_ffff);
    assert_eq!(
        cpu_read(&gic, GICC_CTLR),
        GICC_CTLR_ENABLE | GICC_CTLR_EOIMODE
    );
    enable(&gic, 40, 0xa0);
    gic.trigger(40);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    cpu_write(&gic, GICC_EOIR, 40);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xff, "priority dropped");
    assert!(is_set(&gic, GICD_ISACTIVER, 40), "still active");
    cpu_write(&gic, GICC_DIR, 40);
    assert!(!is_set(&gic, GICD_ISACTIVER, 40));
}

#[test]
fn out_of_range_ids_are_raz_wi() {
    let gic = running_gic();
    for offset in [
        GICD_ISENABLER + 8,
        GICD_ISPENDR + 8,
        GICD_ISACTIVER + 8,
        GICD_IPRIORITYR + 0x40,
        GICD_ITARGETSR + 0x40,
        GICD_ICFGR + 0x10,
        0x3fc,
    ] {
        dist_write(&gic, offset, 0xffff_ffff);
        assert_eq!(dist_read(&gic, offset), 0, "{offset:#x}");
    }
    gic.set_level(64, true);
    gic.trigger(1000);
    gic.set_level(5, true);
    gic.trigger(5);
    assert!(!gic.pending_irq());
    assert_eq!(dist_read(&gic, GICD_ISPENDR), 0, "SGIs have no line");
    enable(&gic, 40, 0xa0);
    gic.trigger(40);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    cpu_write(&gic, GICC_EOIR, SPURIOUS);
    cpu_write(&gic, GICC_EOIR, 100);
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xa0, "ignored EOIs drop nothing");
    assert!(is_set(&gic, GICD_ISACTIVER, 40));
}

#[test]
fn read_only_registers_ignore_writes() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    for offset in [GICD_TYPER, GICD_IIDR, GICD_ICFGR, GICD_ITARGETSR, 0xfe8] {
        let before = dist_read(&gic, offset);
        dist_write(&gic, offset, !before);
        assert_eq!(dist_read(&gic, offset), before, "{offset:#x}");
    }
    dist_write(&gic, 0x080, 0xffff_ffff);
    assert_eq!(dist_read(&gic, 0x084), 0, "IGROUPR: Group 0 only");
    for offset in [GICC_RPR, GICC_HPPIR, GICC_IIDR, GICC_IAR] {
        cpu_write(&gic, offset, 0x1234);
    }
    assert_eq!(cpu_read(&gic, GICC_IIDR), 0x0202_143b);
    assert_eq!(
        cpu_read(&gic, GICC_RPR),
        0xff,
        "IAR write acknowledged nothing"
    );
    assert_eq!(cpu_read(&gic, GICC_EOIR), 0, "write-only");
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
}

#[test]
fn byte_access_to_priorities_and_targets() {
    let gic = running_gic();
    let gicd = gic.distributor();
    gicd.write(GICD_IPRIORITYR + 33, Byte, 0xa7).unwrap();
    assert_eq!(
        dist_read(&gic, GICD_IPRIORITYR + 32),
        0xa0 << 8,
        "low bits RAZ"
    );
    assert_eq!(gicd.read(GICD_IPRIORITYR + 33, Byte), Ok(0xa0));
    dist_write(&gic, GICD_IPRIORITYR + 36, 0x1020_3040);
    assert_eq!(gicd.read(GICD_IPRIORITYR + 38, Byte), Ok(0x20));
    assert_eq!(gicd.read(GICD_ITARGETSR + u64::from(TIMER), Byte), Ok(0x01));
    gicd.write(GICD_ITARGETSR + u64::from(TIMER), Byte, 0)
        .unwrap();
    assert_eq!(
        gicd.read(GICD_ITARGETSR + u64::from(TIMER), Byte),
        Ok(0x01),
        "banked"
    );
    gicd.write(GICD_ITARGETSR + u64::from(UART), Byte, 0xfe)
        .unwrap();
    assert_eq!(dist_read(&gic, GICD_ITARGETSR + 32), 0x0101_0001);
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    assert!(
        !gic.pending_irq(),
        "an SPI targeting no CPU is not forwarded"
    );
    gicd.write(GICD_ITARGETSR + u64::from(UART), Byte, 0xff)
        .unwrap();
    assert_eq!(gicd.read(GICD_ITARGETSR + u64::from(UART), Byte), Ok(0x01));
    assert!(gic.pending_irq());
}

#[test]
fn other_narrow_accesses_are_raz_wi() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    let gicc = gic.cpu_interface();
    assert_eq!(gicc.read(GICC_IAR, Byte), Ok(0), "no acknowledge");
    assert_eq!(gicc.read(GICC_IAR, Halfword), Ok(0));
    assert!(gic.pending_irq());
    gicc.write(GICC_CTLR, Halfword, 0).unwrap();
    gic.distributor().write(GICD_CTLR, Byte, 0).unwrap();
    assert!(gic.pending_irq(), "narrow writes to CTLRs ignored");
    gic.distributor()
        .write(GICD_IPRIORITYR + 32, Halfword, 0)
        .unwrap();
    assert_eq!(gic.distributor().read(GICD_IPRIORITYR + 33, Byte), Ok(0xa0));
    assert_eq!(gic.distributor().read(GICD_TYPER, Byte), Ok(0));
}

#[test]
fn misaligned_and_doubleword_accesses_abort() {
    let gic = VirtualGic::new();
    let (gicd, gicc) = (gic.distributor(), gic.cpu_interface());
    assert_eq!(gicd.read(0x401, Halfword), Err(MmioError::BadSize));
    assert_eq!(gicd.write(0x402, Word, 0), Err(MmioError::BadSize));
    assert_eq!(gicd.read(0x400, Doubleword), Err(MmioError::BadSize));
    assert_eq!(gicc.write(0x0, Doubleword, 0), Err(MmioError::BadSize));
    assert_eq!(gicc.read(0xd, Word), Err(MmioError::BadSize));
    assert_eq!(gicd.read(0x401, Byte), Ok(0));
}

#[test]
fn any_access_anywhere_is_answered() {
    let gic = VirtualGic::new();
    let devices: [&dyn MmioDevice; 2] = [&gic.distributor(), &gic.cpu_interface()];
    for device in devices {
        for offset in 0..device.size() {
            for size in [Byte, Halfword, Word, Doubleword] {
                let legal = size != Doubleword && offset % u64::from(size.bytes()) == 0;
                let read = device.read(offset, size);
                let write = device.write(offset, size, 0xffff_ffff);
                assert_eq!(read.is_ok(), legal, "{} {offset:#x}", device.name());
                assert_eq!(write.is_ok(), legal, "{} {offset:#x}", device.name());
            }
        }
    }
    assert_eq!(dist_read(&gic, GICD_TYPER), 1);
    assert_eq!(cpu_read(&gic, GICC_PMR), 0xf8);
    assert_eq!(dist_read(&gic, GICD_ISENABLER), 0xffff, "SGIs stay enabled");
    assert_eq!(
        dist_read(&gic, GICD_ISENABLER + 4),
        0,
        "ICENABLER came last"
    );
}

#[test]
fn reset_forgets_the_guest_but_not_the_lines() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    gic.set_level(UART, true);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
    gic.reset();
    assert_eq!(cpu_read(&gic, GICC_RPR), 0xff);
    assert_eq!(dist_read(&gic, GICD_ISACTIVER + 4), 0);
    assert!(!gic.pending_irq());
    assert!(is_set(&gic, GICD_ISPENDR, UART), "the UART still asserts");
    dist_write(&gic, GICD_CTLR, 1);
    cpu_write(&gic, GICC_PMR, 0xf0);
    cpu_write(&gic, GICC_CTLR, 1);
    enable(&gic, UART, 0xa0);
    assert_eq!(cpu_read(&gic, GICC_IAR), UART);
}

// Several vCPUs.

fn read_for(gic: &VirtualGic, vcpu: usize, offset: u64) -> u32 {
    gic.distributor_for(vcpu).read(offset, Word).unwrap()
}

fn write_for(gic: &VirtualGic, vcpu: usize, offset: u64, value: u32) {
    gic.distributor_for(vcpu)
        .write(offset, Word, value)
        .unwrap();
}

/// The sources of SGI `sgi` pending for `vcpu`, as its GICD_SPENDSGIR
/// byte reads.
fn sgi_sources(gic: &VirtualGic, vcpu: usize, sgi: u32) -> u32 {
    gic.distributor_for(vcpu)
        .read(GICD_SPENDSGIR + u64::from(sgi), Byte)
        .unwrap()
}

#[test]
fn typer_cpu_number_is_the_vcpu_count_minus_one() {
    for n in 1..=MAX_VCPUS {
        let gic = VirtualGic::with_vcpus(n);
        assert_eq!(gic.vcpus(), n);
        let expected = ((n as u32 - 1) << 5) | 1;
        for vcpu in 0..n {
            assert_eq!(read_for(&gic, vcpu, GICD_TYPER), expected, "{n} vCPUs");
        }
    }
    assert_eq!(VirtualGic::with_vcpus(0).vcpus(), 1, "at least one");
    assert_eq!(VirtualGic::with_vcpus(9).vcpus(), MAX_VCPUS, "at most four");
    assert_eq!(dist_read(&VirtualGic::with_vcpus(9), GICD_TYPER), 0x61);
    assert_eq!(VirtualGic::new().vcpus(), 1);
}

#[test]
#[should_panic(expected = "no such vCPU")]
fn a_distributor_view_of_a_missing_vcpu_is_a_board_error() {
    VirtualGic::with_vcpus(2).distributor_for(2);
}

#[test]
fn banked_registers_are_per_vcpu_and_spi_registers_shared() {
    let gic = VirtualGic::with_vcpus(2);
    write_for(&gic, 0, GICD_CTLR, 1);
    // vCPU 1 enables its PPI 20 at priority 0x40, edge-triggered.
    write_for(&gic, 1, GICD_ISENABLER, 1 << 20);
    gic.distributor_for(1)
        .write(GICD_IPRIORITYR + 20, Byte, 0x40)
        .unwrap();
    write_for(&gic, 1, GICD_ICFGR + 4, 2 << 8);
    assert_eq!(read_for(&gic, 1, GICD_ISENABLER), 0xffff | 1 << 20);
    assert_eq!(read_for(&gic, 0, GICD_ISENABLER), 0xffff, "vCPU 0's bank");
    assert_eq!(read_for(&gic, 1, GICD_IPRIORITYR + 20), 0x40);
    assert_eq!(read_for(&gic, 0, GICD_IPRIORITYR + 20), 0);
    assert_eq!(read_for(&gic, 1, GICD_ICFGR + 4), 2 << 8);
    assert_eq!(read_for(&gic, 0, GICD_ICFGR + 4), 0);
    // vCPU 0 writes its own PPI 20's priority: vCPU 1's stays.
    write_for(&gic, 0, GICD_IPRIORITYR + 20, 0x80);
    assert_eq!(read_for(&gic, 1, GICD_IPRIORITYR + 20), 0x40);
    // PPI lines are per vCPU too; set_level drives vCPU 0's.
    gic.set_private_level(1, 20, true);
    assert_eq!(read_for(&gic, 1, GICD_ISPENDR), 1 << 20);
    assert_eq!(read_for(&gic, 0, GICD_ISPENDR), 0);
    assert_eq!(gic.forwarded(1), 1 << 20);
    assert_eq!(gic.forwarded(0), 0, "not enabled in vCPU 0's bank");
    gic.set_level(21, true);
    assert_eq!(read_for(&gic, 0, GICD_ISPENDR), 1 << 21);
    assert_eq!(read_for(&gic, 1, GICD_ISPENDR), 1 << 20);
    write_for(&gic, 0, GICD_ISACTIVER, 1 << 21);
    assert_eq!(read_for(&gic, 1, GICD_ISACTIVER), 0);
    // SPIs: one state seen by both.
    write_for(&gic, 1, GICD_ISENABLER + 4, 1 << 8);
    write_for(&gic, 1, GICD_IPRIORITYR + 40, 0x60);
    write_for(&gic, 1, GICD_ICFGR + 8, 2 << 16);
    for vcpu in 0..2 {
        assert_eq!(read_for(&gic, vcpu, GICD_ISENABLER + 4), 1 << 8);
        assert_eq!(read_for(&gic, vcpu, GICD_IPRIORITYR + 40), 0x60);
        assert_eq!(read_for(&gic, vcpu, GICD_ICFGR + 8), 2 << 16);
    }
    // The CPU interface (vCPU 0's) sees vCPU 0's priorities.
    assert_eq!(gic.priority(0, 20), 0x80);
    assert_eq!(gic.priority(1, 20), 0x40);
}

#[test]
fn itargetsr_banked_reads_and_spis_routed_to_their_lowest_target() {
    let gic = VirtualGic::with_vcpus(3);
    for vcpu in 0..3 {
        let own = 0x0101_0101 << vcpu;
        assert_eq!(read_for(&gic, vcpu, GICD_ITARGETSR), own);
        assert_eq!(read_for(&gic, vcpu, GICD_ITARGETSR + 0x1c), own);
        assert_eq!(read_for(&gic, vcpu, GICD_ITARGETSR + 0x20), 0x0101_0101);
    }
    write_for(&gic, 1, GICD_ITARGETSR + 0x18, 0);
    assert_eq!(read_for(&gic, 1, GICD_ITARGETSR + 0x18), 0x0202_0202, "WI");
    write_for(&gic, 0, GICD_CTLR, 1);
    write_for(&gic, 0, GICD_ISENABLER + 4, 1 << 1);
    gic.set_level(UART, true);
    let routed =
        |id: u32| -> [bool; 3] { core::array::from_fn(|v| gic.forwarded(v) & (1 << id) != 0) };
    assert_eq!(routed(UART), [true, false, false], "reset: vCPU 0");
    // Bits of vCPUs that do not exist are not kept.
    gic.distributor_for(2)
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0xfe)
        .unwrap();
    assert_eq!(read_for(&gic, 0, GICD_ITARGETSR + 32), 0x0101_0601);
    assert_eq!(routed(UART), [false, true, false], "vCPUs 1 and 2: 1");
    gic.distributor()
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0x04)
        .unwrap();
    assert_eq!(routed(UART), [false, false, true]);
    assert!(gic.forwards(2, UART) && !gic.forwards(1, UART));
    gic.distributor()
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0x05)
        .unwrap();
    assert_eq!(routed(UART), [true, false, false], "vCPUs 0 and 2: 0");
    gic.distributor()
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0)
        .unwrap();
    assert_eq!(routed(UART), [false; 3], "no target: nobody");
}

#[test]
fn sgi_filters_from_vcpu_1_name_their_targets_with_the_source() {
    let gic = VirtualGic::with_vcpus(3);
    // SGI 6 from vCPU 1, with each filter; the target list's bit 3 names
    // a vCPU that does not exist.
    for (value, targets) in [
        (0x000d_0006, [true, false, true]),  // list: 0, 2 (and 3)
        (0x0002_0006, [false, true, false]), // list: 1, itself
        (0x0100_0006, [true, false, true]),  // every vCPU but the sender
        (0x0200_0006, [false, true, false]), // the sender
        (0x03ff_0006, [false; 3]),           // reserved
    ] {
        write_for(&gic, 1, GICD_SGIR, value);
        for (vcpu, targeted) in targets.into_iter().enumerate() {
            let expected = if targeted { 1 << 1 } else { 0 };
            assert_eq!(
                sgi_sources(&gic, vcpu, 6),
                expected,
                "SGIR {value:#x}, vCPU {vcpu}"
            );
            assert_eq!(
                read_for(&gic, vcpu, GICD_ISPENDR) & (1 << 6) != 0,
                targeted,
                "SGIR {value:#x}, vCPU {vcpu}"
            );
            gic.distributor_for(vcpu)
                .write(GICD_CPENDSGIR + 6, Byte, 0xff)
                .unwrap();
        }
    }
    // Sources accumulate per target; the register bytes are the
    // accessing vCPU's own.
    write_for(&gic, 0, GICD_SGIR, 0x0004_0009);
    write_for(&gic, 1, GICD_SGIR, 0x0004_0009);
    assert_eq!(sgi_sources(&gic, 2, 9), 0b011);
    assert_eq!(read_for(&gic, 2, GICD_SPENDSGIR + 8), 0b011 << 8);
    assert_eq!(read_for(&gic, 0, GICD_SPENDSGIR + 8), 0);
    gic.distributor_for(2)
        .write(GICD_CPENDSGIR + 9, Byte, 0b001)
        .unwrap();
    assert_eq!(sgi_sources(&gic, 2, 9), 0b010, "only source 0 cleared");
    // SPENDSGIR sets sources of existing vCPUs only.
    gic.distributor_for(1)
        .write(GICD_SPENDSGIR + 2, Byte, 0xff)
        .unwrap();
    assert_eq!(sgi_sources(&gic, 1, 2), 0b111);
}

/// vCPU 0's GIC running, as `running_gic`, with `vcpus` vCPUs.
fn running_smp_gic(vcpus: usize) -> VirtualGic {
    let gic = VirtualGic::with_vcpus(vcpus);
    dist_write(&gic, GICD_CTLR, 1);
    cpu_write(&gic, GICC_PMR, 0xf0);
    cpu_write(&gic, GICC_CTLR, 1);
    gic
}

#[test]
fn iar_names_an_sgis_source_and_takes_one_source_at_a_time() {
    let gic = running_smp_gic(3);
    enable(&gic, 3, 0x20);
    write_for(&gic, 2, GICD_SGIR, 0x0001_0003);
    write_for(&gic, 1, GICD_SGIR, 0x0001_0003);
    assert_eq!(sgi_sources(&gic, 0, 3), 0b110);
    let first = cpu_read(&gic, GICC_IAR);
    assert_eq!((first & 0x3ff, first >> 10), (3, 1), "lowest source first");
    assert_eq!(sgi_sources(&gic, 0, 3), 0b100, "vCPU 2's still pending");
    assert!(!gic.pending_irq(), "active: the other source waits");
    assert_eq!(cpu_read(&gic, GICC_HPPIR), SPURIOUS);
    cpu_write(&gic, GICC_EOIR, first);
    let second = cpu_read(&gic, GICC_IAR);
    assert_eq!(second, 3 | 2 << 10);
    assert_eq!(sgi_sources(&gic, 0, 3), 0);
    // EOI names the id in bits 9:0, whatever the source bits say.
    cpu_write(&gic, GICC_EOIR, second);
    assert!(!is_set(&gic, GICD_ISACTIVER, 3));
    assert_eq!(cpu_read(&gic, GICC_IAR), SPURIOUS);
    // An SGI to vCPU 1 only is not vCPU 0's.
    write_for(&gic, 2, GICD_SGIR, 0x0002_0004);
    assert!(!gic.pending_irq());
}

#[test]
fn kicks_name_the_vcpus_an_action_gave_an_interrupt() {
    let gic = VirtualGic::with_vcpus(4);
    write_for(&gic, 0, GICD_CTLR, 1);
    assert_eq!(gic.take_kicks(), 0, "enabled, nothing pending");
    // An SGI from vCPU 0 to vCPU 1 kicks vCPU 1 only, once.
    write_for(&gic, 0, GICD_SGIR, 0x0002_0001);
    assert_eq!(gic.take_kicks(), 1 << 1);
    assert_eq!(gic.take_kicks(), 0, "taken");
    // The UART's SPI targeted at vCPU 2: raising it kicks vCPU 2.
    gic.distributor_for(3)
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0x04)
        .unwrap();
    write_for(&gic, 3, GICD_ISENABLER + 4, 1 << 1);
    assert_eq!(gic.take_kicks(), 0, "its line is low");
    gic.set_level(UART, true);
    assert_eq!(gic.take_kicks(), 1 << 2);
    gic.set_level(UART, true);
    assert_eq!(gic.take_kicks(), 0, "no new interrupt");
    // Retargeting a pending SPI kicks its new vCPU; disabling it kicks
    // nobody.
    gic.distributor()
        .write(GICD_ITARGETSR + u64::from(UART), Byte, 0x08)
        .unwrap();
    assert_eq!(gic.take_kicks(), 1 << 3);
    write_for(&gic, 0, GICD_ICENABLER + 4, 1 << 1);
    assert_eq!(gic.take_kicks(), 0);
    write_for(&gic, 0, GICD_ISENABLER + 4, 1 << 1);
    assert_eq!(gic.take_kicks(), 1 << 3, "enabled again");
    // An edge on vCPU 1's PPI kicks vCPU 1 when enabled there.
    write_for(&gic, 1, GICD_ISENABLER, 1 << TIMER);
    gic.trigger_private(1, TIMER);
    assert_eq!(gic.take_kicks(), 1 << 1);
    // Enabling the distributor with interrupts waiting kicks everyone
    // who has one: vCPU 1 (SGI 1, the timer's PPI) and vCPU 3 (the UART's
    // SPI).
    write_for(&gic, 2, GICD_CTLR, 0);
    assert_eq!(gic.take_kicks(), 0);
    write_for(&gic, 2, GICD_CTLR, 1);
    assert_eq!(gic.take_kicks(), 1 << 1 | 1 << 3);
    // vCPU 2 sends an SGI to every vCPU but itself.
    write_for(&gic, 2, GICD_SGIR, 0x0100_0005);
    assert_eq!(gic.take_kicks(), 0b1011);
}

#[test]
fn a_one_vcpu_gic_never_kicks() {
    let gic = running_gic();
    enable(&gic, UART, 0xa0);
    enable(&gic, TIMER, 0xa0);
    dist_write(&gic, GICD_SGIR, 0x0200_0001);
    dist_write(&gic, GICD_SGIR, 0x0001_0002);
    dist_write(&gic, GICD_ISPENDR + 4, 1 << 8);
    gic.set_private_level(0, TIMER, true);
    gic.trigger(40);
    enable(&gic, 40, 0x80);
    assert!(gic.pending_irq());
    assert!(!gic.is_stale(0), "nothing noted for the GIC's own changes");
    // A device's line that moves is noted (the backend looks again), one
    // that stays is not; neither is a kick.
    gic.set_level(UART, true);
    assert!(gic.is_stale(0), "a line moved");
    gic.seen(0);
    gic.set_level(UART, true);
    assert!(!gic.is_stale(0), "a line left high");
    gic.set_level(UART, false);
    assert!(gic.is_stale(0), "a line lowered");
    assert_eq!(gic.take_kicks(), 0);
}

#[test]
fn private_lines_of_missing_vcpus_and_other_ids_are_ignored() {
    let gic = VirtualGic::with_vcpus(2);
    gic.set_private_level(2, 20, true);
    gic.trigger_private(2, 20);
    gic.set_private_level(1, UART, true);
    gic.trigger_private(1, 3);
    gic.trigger_private(1, 40);
    for vcpu in 0..2 {
        assert_eq!(read_for(&gic, vcpu, GICD_ISPENDR), 0);
        assert_eq!(read_for(&gic, vcpu, GICD_ISPENDR + 4), 0);
    }
    gic.trigger_private(1, 20);
    assert_eq!(read_for(&gic, 1, GICD_ISPENDR), 1 << 20);
    assert_eq!(read_for(&gic, 0, GICD_ISPENDR), 0);
}

#[test]
fn reset_clears_every_bank_and_keeps_the_lines() {
    let gic = VirtualGic::with_vcpus(3);
    write_for(&gic, 2, GICD_CTLR, 1);
    write_for(&gic, 2, GICD_ISENABLER, 1 << 20);
    write_for(&gic, 2, GICD_IPRIORITYR + 20, 0xc0);
    write_for(&gic, 2, GICD_ICFGR + 4, 2 << 10);
    write_for(&gic, 2, GICD_ISACTIVER, 1 << 22);
    write_for(&gic, 2, GICD_ISPENDR, 1 << 23);
    write_for(&gic, 1, GICD_SGIR, 0x0004_0007);
    write_for(&gic, 1, GICD_ITARGETSR + 32, 0x0404_0404);
    gic.set_private_level(2, 24, true);
    assert_ne!(gic.take_kicks(), 0);
    write_for(&gic, 1, GICD_SGIR, 0x0004_0008);
    gic.reset();
    assert_eq!(gic.take_kicks(), 0, "forgotten");
    assert!(!gic.is_stale(2));
    assert_eq!(read_for(&gic, 2, GICD_CTLR), 0);
    assert_eq!(read_for(&gic, 2, GICD_ISENABLER), 0xffff);
    assert_eq!(read_for(&gic, 2, GICD_IPRIORITYR + 20), 0);
    assert_eq!(read_for(&gic, 2, GICD_ICFGR + 4), 0);
    assert_eq!(read_for(&gic, 2, GICD_ISACTIVER), 0);
    assert_eq!(sgi_sources(&gic, 2, 7), 0);
    assert_eq!(read_for(&gic, 2, GICD_ISPENDR), 1 << 24, "the line only");
    assert_eq!(read_for(&gic, 0, GICD_ITARGETSR + 32), 0x0101_0101);
    assert_eq!(read_for(&gic, 2, GICD_TYPER), 0x41, "still three vCPUs");
    write_for(&gic, 2, GICD_CTLR, 1);
    write_for(&gic, 2, GICD_ISENABLER, 1 << 24);
    assert_eq!(gic.forwarded(2), 1 << 24);
    assert_eq!(gic.forwarded(0), 0);
}

#[test]
fn an_eoi_that_hands_an_spi_to_another_vcpu_kicks_it() {
    let gic = running_smp_gic(2);
    enable(&gic, 40, 0xa0);
    gic.set_level(40, true);
    assert_eq!(gic.take_kicks(), 1 << 0);
    assert_eq!(cpu_read(&gic, GICC_IAR), 40);
    gic.distributor()
        .write(GICD_ITARGETSR + 40, Byte, 0x02)
        .unwrap();
    assert_eq!(gic.take_kicks(), 0, "active: forwarded to nobody");
    cpu_write(&gic, GICC_EOIR, 40);
    assert_eq!(gic.take_kicks(), 1 << 1, "the line is still high");
    assert!(!gic.pending_irq(), "vCPU 1's now");
}
