//! Built-in guests: code inside the hypervisor image, run as a VM.
//!
//! The integration tests and benchmarks need guests before the tree can
//! build and load separate guest images. A built-in guest's code lives in
//! the image's `.guest_smoke` section (page aligned, mapped read-only for
//! the hypervisor) and is given to a VM at IPA 0x4000_0000 through stage 2,
//! with nothing else mapped. Only the test-only `test-world-switch` and
//! `bench` features compile one in.

use crate::log;
use armv7a::cp15_context::Cp15Context;
use armv7a::stage2::{vttbr, GuestAccess, GuestMapping, Stage2Tables};
use armv7a::vcpu::ArmVcpu;
use armv7a::world_switch::GuestContext;
use hyp::config::GUEST_RAM_IPA;
use hyp::memory::MemoryType;
use hyp::utilities::TakeOnce;

static STAGE2: TakeOnce<Stage2Tables<1, 1>> = TakeOnce::new(Stage2Tables::new());

/// Gives the built-in guest's code (the image's `.guest_smoke` section) to a
/// VM at IPA 0x4000_0000 (VMID 1) and returns its vCPU, ready to be switched
/// in. `label` prefixes the log line.
pub fn start_builtin_guest(label: &str) -> ArmVcpu {
    let code = crate::memory_map::guest_smoke();
    let tables = STAGE2.take().expect("one built-in guest per boot");
    let mapping = GuestMapping {
        name: "builtin-code",
        ipa: GUEST_RAM_IPA,
        physical: code.start as u64,
        size: code.size,
        memory: MemoryType::Normal,
        access: GuestAccess::ReadWriteExecute,
    };
    if let Err(error) = tables.map(&mapping) {
        crate::io::refuse_boot(format_args!("{}: {}", label, error));
    }
    log!(
        "{}: {} KiB of code at IPA {:#010x} (host {:#010x})",
        label,
        code.size / 1024,
        GUEST_RAM_IPA,
        code.start
    );
    ArmVcpu::new(
        GuestContext::boot(GUEST_RAM_IPA),
        Cp15Context::save(),
        vttbr(1, tables.root_table_address()),
    )
}
