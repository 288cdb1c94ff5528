// SPDX-License-Identifier: MIT OR Apache-2.0
//! The board disk on `virt`: QEMU's `virtio-blk-device` behind `BlockDevice`.
//!
//! QEMU's `virt` has 32 virtio-mmio transports, 0x200 bytes each, at
//! 0x0a00_0000 + n x 0x200, interrupting on SPI 16 + n (GIC id 48 + n);
//! `-drive if=none,id=d0,file=F,format=raw -device virtio-blk-device,drive=d0`
//! puts a disk behind one of them, and the runner adds `-global
//! virtio-mmio.force-legacy=false` so that the transport speaks virtio 1.x
//! (MMIO version 2; the legacy version 1 works too). [`probe`] reads every
//! slot's magic value and device id to find the block device; [`VirtioDisk`]
//! drives it with the `virtio-drivers` crate: feature negotiation, the one
//! virtqueue of 16 descriptors, the request header and status byte.
//!
//! The hypervisor is the driver here, so the queue and the buffers are in
//! its own memory: [`IdentityHal`] hands out the virtqueue's pages from a
//! static pool in `.bss` (no heap; pages are never given back, the disk
//! lives as long as the hypervisor) and gives the device a buffer's own
//! address as its physical address, which is what the Hyp map's identity
//! mapping makes true. (The guests' virtio-mmio windows at the same
//! addresses are guest-physical, emulated by capsules; these transports
//! are host-physical and never mapped into a guest.)
//!
//! A request goes to the device at once ([`BlockDevice::read`] and
//! [`BlockDevice::write`] put its descriptors in the queue and notify);
//! QEMU completes it in its I/O thread and raises the transport's
//! interrupt; [`VirtioDisk::handle_interrupt`] acknowledges it and
//! completes the request, and [`BlockDevice::poll`] does the same without
//! an interrupt. A flush waits for the device inside
//! [`BlockDevice::flush`] (`virtio-drivers` 0.13 has no split-phase
//! flush); its completion is told at the next poll.
//!
//! ```
//! use qemu_virt::disk::{find_block_device, probe, VIRTIO_MMIO_SLOTS};
//! // Slot 31 holds a block device (id 2), slot 30 a network card (id 1).
//! let ids = |slot: usize| match slot { 31 => 2, 30 => 1, _ => 0 };
//! let slots = probe(|slot| (0x7472_6976, ids(slot)));
//! assert_eq!(slots.len(), VIRTIO_MMIO_SLOTS);
//! assert_eq!(find_block_device(&slots), Some(31));
//! ```

use core::cell::{Cell, RefCell, UnsafeCell};
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicUsize, Ordering};
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, MmioVersion, VirtIOHeader};
use virtio_drivers::transport::Transport;
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// The first virtio-mmio transport.
pub const VIRTIO_MMIO_BASE: usize = 0x0a00_0000;
/// The distance between two transports (each one's size).
pub const VIRTIO_MMIO_STRIDE: usize = 0x200;
/// How many transports `virt` has.
pub const VIRTIO_MMIO_SLOTS: usize = 32;
/// The whole window of the transports, to map in the Hyp tables.
pub const VIRTIO_MMIO_WINDOW: usize = VIRTIO_MMIO_SLOTS * VIRTIO_MMIO_STRIDE;
/// The value of a transport's MagicValue register: "virt".
pub const VIRTIO_MAGIC: u32 = 0x7472_6976;
/// The device id of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;

/// Transport `slot`'s registers.
pub const fn transport_base(slot: usize) -> usize {
    VIRTIO_MMIO_BASE + slot * VIRTIO_MMIO_STRIDE
}

/// Transport `slot`'s interrupt: SPI 16 + `slot`, GIC id 48 + `slot`.
pub const fn transport_interrupt(slot: usize) -> u32 {
    48 + slot as u32
}

/// Reads every slot with `read` (its magic value and device id) and
/// returns each slot's device id (0: nothing there, or no transport).
pub fn probe(read: impl Fn(usize) -> (u32, u32)) -> [u32; VIRTIO_MMIO_SLOTS] {
    core::array::from_fn(|slot| match read(slot) {
        (VIRTIO_MAGIC, id) => id,
        _ => 0,
    })
}

/// The first slot holding a block device.
pub fn find_block_device(ids: &[u32]) -> Option<usize> {
    ids.iter().position(|&id| id == VIRTIO_ID_BLOCK)
}

/// Reads the magic value and device id of the transport at `slot`.
///
/// # Safety
///
/// The transports' window ([`VIRTIO_MMIO_BASE`], [`VIRTIO_MMIO_WINDOW`])
/// must be mapped as device memory (reading these two registers has no
/// side effect).
pub unsafe fn read_ids(slot: usize) -> (u32, u32) {
    let base = transport_base(slot) as *const u32;
    // SAFETY: the caller promises the window is mapped; MagicValue (0x000)
    // and DeviceID (0x008) are read-only registers of every transport.
    unsafe {
        (
            core::ptr::read_volatile(base),
            core::ptr::read_volatile(base.add(2)),
        )
    }
}

/// Pages of the virtqueues: a block device with the one queue of 16
/// descriptors takes two (virtio 1.x) or two contiguous (legacy). (The
/// host tests create many disks in one process.)
pub const DMA_PAGES: usize = if cfg!(test) { 64 } else { 4 };

/// The pool [`IdentityHal`] hands pages from, page aligned, in `.bss`.
#[repr(C, align(4096))]
struct DmaPool(UnsafeCell<[u8; DMA_PAGES * PAGE_SIZE]>);

// SAFETY: the pool's pages are handed out once each (`NEXT_PAGE` only
// grows), so no two owners ever share one; the pool itself is never read
// or written through this static.
unsafe impl Sync for DmaPool {}

static DMA_POOL: DmaPool = DmaPool(UnsafeCell::new([0; DMA_PAGES * PAGE_SIZE]));
/// The first page of [`DMA_POOL`] not handed out yet.
static NEXT_PAGE: AtomicUsize = AtomicUsize::new(0);

/// `virtio-drivers`' platform layer for the hypervisor: physical =
/// virtual (the Hyp map is an identity map), DMA pages from a static pool.
#[derive(Debug)]
pub struct IdentityHal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned pages that nobody
// else uses (each once, from the `.bss` pool), with their physical address
// equal to their virtual one as the Hyp identity map has it; `share` gives
// a buffer's own address, which is its physical address for the same
// reason; nothing is ever moved or unmapped.
unsafe impl Hal for IdentityHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let taken = NEXT_PAGE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            next.checked_add(pages).filter(|&end| end <= DMA_PAGES)
        });
        match taken {
            Ok(first) => {
                let address = DMA_POOL.0.get() as usize + first * PAGE_SIZE;
                // The pool is in `.bss`, never handed out twice: the pages
                // are still zero, as the crate requires.
                match NonNull::new(address as *mut u8) {
                    Some(pointer) => (address as PhysAddr, pointer),
                    None => (0, NonNull::dangling()),
                }
            }
            // A physical address of 0 is the crate's "no memory".
            Err(_) => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Never reached (the disk is never dropped); the pages are not
        // reused in any case.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // What the CPU wrote reaches memory before the device is told
        // (QEMU models no caches; the barrier orders the accesses).
        fence(Ordering::SeqCst);
        buffer.cast::<u8>().as_ptr() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        fence(Ordering::SeqCst);
    }
}

/// Why the disk could not be brought up.
#[derive(Debug)]
pub enum InitError {
    /// The transport is not one `virtio-drivers` drives.
    Transport(MmioError),
    /// The device refused the driver (features, queue, configuration).
    Device(virtio_drivers::Error),
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Transport(error) => write!(f, "virtio-mmio transport: {error}"),
            InitError::Device(error) => write!(f, "virtio-blk device: {error}"),
        }
    }
}

/// Brings up the block device behind transport `slot`; returns it with
/// its transport's version ("1 (legacy)" or "2").
///
/// # Safety
///
/// The transports' window must be mapped as device memory for the rest of
/// the run, and transport `slot` driven by nothing else.
pub unsafe fn open<'a>(
    slot: usize,
) -> Result<(VirtioDisk<'a, MmioTransport<'static>>, &'static str), InitError> {
    let header = NonNull::new(transport_base(slot) as *mut VirtIOHeader)
        .ok_or(InitError::Transport(MmioError::MmioRegionTooSmall))?;
    // SAFETY: the caller promises the transport's registers and its
    // configuration space (the rest of its 0x200 bytes) are mapped for the
    // rest of the run and driven by nothing else.
    let transport =
        unsafe { MmioTransport::new(header, VIRTIO_MMIO_STRIDE) }.map_err(InitError::Transport)?;
    let version = match transport.version() {
        MmioVersion::Legacy => "1 (legacy)",
        MmioVersion::Modern => "2",
    };
    Ok((VirtioDisk::new(transport)?, version))
}

/// The request in flight.
#[derive(Debug, Default)]
enum Request {
    #[default]
    Idle,
    /// A flush that finished, told at the next poll.
    Flushed(Result<(), BlockError>),
    Transfer {
        token: u16,
        write: bool,
        buffer: &'static mut [u8],
    },
}

/// QEMU's virtio-blk device through transport `T`.
pub struct VirtioDisk<'a, T: Transport> {
    device: RefCell<VirtIOBlk<IdentityHal, T>>,
    /// The request header and status byte of the request in flight; the
    /// device reads and writes them until it completes, so they live here,
    /// at the disk's fixed address, not on a stack.
    header: RefCell<BlkReq>,
    status: RefCell<BlkResp>,
    request: Cell<Request>,
    client: Cell<Option<&'a dyn BlockClient>>,
    sectors: u64,
    read_only: bool,
}

impl<T: Transport> fmt::Debug for VirtioDisk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioDisk")
            .field("sectors", &self.sectors)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl<'a, T: Transport> VirtioDisk<'a, T> {
    /// Resets the device behind `transport`, negotiates its features, sets
    /// up its queue and reads its capacity. The disk must not move once a
    /// request is started (boards leak it to `'static` first).
    pub fn new(transport: T) -> Result<VirtioDisk<'a, T>, InitError> {
        let mut device = VirtIOBlk::<IdentityHal, T>::new(transport).map_err(InitError::Device)?;
        // Completions are seen by polling the used ring as well, but the
        // interrupt lets the board complete a request without waiting.
        device.enable_interrupts();
        Ok(VirtioDisk {
            sectors: device.capacity(),
            read_only: device.readonly(),
            device: RefCell::new(device),
            header: RefCell::new(BlkReq::default()),
            status: RefCell::new(BlkResp::default()),
            request: Cell::new(Request::Idle),
            client: Cell::new(None),
        })
    }

    /// Acknowledges the transport's interrupt and completes the request
    /// if the device is done with it.
    pub fn handle_interrupt(&self) {
        self.poll();
    }

    fn start(
        &self,
        write: bool,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        if write && self.read_only {
            return Err((BlockError::ReadOnly, buffer));
        }
        if let Err(error) = check_range(sector, buffer.len(), self.sectors) {
            return Err((error, buffer));
        }
        let Ok(block) = usize::try_from(sector) else {
            return Err((BlockError::OutOfRange, buffer));
        };
        match self.request.take() {
            Request::Idle => {}
            busy => {
                self.request.set(busy);
                return Err((BlockError::Busy, buffer));
            }
        }
        let mut device = self.device.borrow_mut();
        let mut header = self.header.borrow_mut();
        let mut status = self.status.borrow_mut();
        // SAFETY: the header, status and buffer stay untouched until the
        // request completes: the header and status are this disk's (which
        // does not move once requests start), the buffer is held in
        // `request` and handed back only after `complete_*_blocks`.
        let token = unsafe {
            if write {
                device.write_blocks_nb(block, &mut header, buffer, &mut status)
            } else {
                device.read_blocks_nb(block, &mut header, buffer, &mut status)
            }
        };
        match token {
            Ok(token) => {
                self.request.set(Request::Transfer {
                    token,
                    write,
                    buffer,
                });
                Ok(())
            }
            Err(_) => Err((BlockError::Device, buffer)),
        }
    }

    /// Whether a request is held.
    fn busy(&self) -> bool {
        let request = self.request.take();
        let busy = !matches!(request, Request::Idle);
        self.request.set(request);
        busy
    }
}

impl<'a, T: Transport> BlockDevice<'a> for VirtioDisk<'a, T> {
    fn set_client(&self, client: &'a dyn BlockClient) {
        self.client.set(Some(client));
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read_only(&self) -> bool {
        self.read_only
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

    fn flush(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        match self.request.take() {
            Request::Idle => {}
            busy => {
                self.request.set(busy);
                return Err(BlockError::Busy);
            }
        }
        let result = self
            .device
            .borrow_mut()
            .flush()
            .map_err(|_| BlockError::Device);
        self.request.set(Request::Flushed(result));
        Ok(())
    }

    fn poll(&self) -> bool {
        let client = self.client.get();
        let _ = self.device.borrow_mut().ack_interrupt();
        match self.request.take() {
            Request::Idle => return false,
            Request::Flushed(result) => {
                if let Some(client) = client {
                    client.flush_done(result);
                }
            }
            Request::Transfer {
                token,
                write,
                buffer,
            } => {
                let mut device = self.device.borrow_mut();
                if device.peek_used() != Some(token) {
                    drop(device);
                    self.request.set(Request::Transfer {
                        token,
                        write,
                        buffer,
                    });
                    return true;
                }
                let header = self.header.borrow();
                let mut status = self.status.borrow_mut();
                // SAFETY: the same header, buffer and status the request
                // was started with (`start`), which the device has
                // finished with (its token is in the used ring).
                let result = unsafe {
                    if write {
                        device.complete_write_blocks(token, &header, buffer, &mut status)
                    } else {
                        device.complete_read_blocks(token, &header, buffer, &mut status)
                    }
                }
                .map_err(|_| BlockError::Device);
                drop((device, header, status));
                if let Some(client) = client {
                    if write {
                        client.write_done(buffer, result);
                    } else {
                        client.read_done(buffer, result);
                    }
                }
            }
        }
        self.busy()
    }
}

#[cfg(test)]
mod tests {
    //! The disk against a fake virtio-blk device: a `Transport` that keeps
    //! the queue's addresses, and on each notification takes the requests
    //! from the available ring into a list the test completes when it
    //! wants (writing the data, the status byte and the used ring).

    use super::*;
    use std::cell::RefCell as StdRefCell;
    use std::rc::Rc;
    use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus};
    use zerocopy::{FromBytes, Immutable, IntoBytes};

    const SECTORS: u64 = 64;
    const FEATURE_RO: u64 = 1 << 5;
    const FEATURE_FLUSH: u64 = 1 << 9;
    const FEATURE_VERSION_1: u64 = 1 << 32;

    #[derive(Default)]
    struct Device {
        features: u64,
        status: DeviceStatus,
        /// Descriptor table, available ring, used ring.
        queue: Option<(u64, u64, u64)>,
        /// The next available-ring index to take.
        next_avail: u16,
        /// Chains taken and not yet completed: their head index.
        pending: Vec<u16>,
        /// Status byte to answer with.
        answer: u8,
        storage: Vec<u8>,
        interrupt: bool,
        /// Request types seen (0 read, 1 write, 4 flush).
        seen: Vec<u32>,
    }

    /// Reads a `T` at `address` of this process (the Hal's physical
    /// addresses are its virtual ones).
    fn load<T: FromBytes>(address: u64) -> T {
        let bytes =
            // SAFETY: the driver put a descriptor table, rings or buffers
            // of at least this size at `address`, in memory it owns and
            // keeps until the request completes.
            unsafe { std::slice::from_raw_parts(address as usize as *const u8, size_of::<T>()) };
        T::read_from_bytes(bytes).unwrap()
    }

    fn store(address: u64, bytes: &[u8]) {
        // SAFETY: as in `load`, for a buffer the driver made writable for
        // the device.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), address as usize as *mut u8, bytes.len())
        };
    }

    impl Device {
        /// The chain at `head`: (address, length, device-writable).
        fn chain(&self, head: u16) -> Vec<(u64, u32, bool)> {
            let (descriptors, _, _) = self.queue.unwrap();
            let mut out = Vec::new();
            let mut index = head;
            loop {
                let at = descriptors + u64::from(index) * 16;
                let address: u64 = load(at);
                let length: u32 = load(at + 8);
                let flags: u16 = load(at + 12);
                let next: u16 = load(at + 14);
                out.push((address, length, flags & 2 != 0));
                if flags & 1 == 0 {
                    return out;
                }
                index = next;
            }
        }

        fn take_available(&mut self) {
            let (_, avail, _) = self.queue.unwrap();
            let idx: u16 = load(avail + 2);
            while self.next_avail != idx {
                let slot = u64::from(self.next_avail % 16);
                let head: u16 = load(avail + 4 + slot * 2);
                self.next_avail = self.next_avail.wrapping_add(1);
                let kind: u32 = load(self.chain(head)[0].0);
                self.seen.push(kind);
                self.pending.push(head);
                // A flush is done at once (the driver waits for it).
                if kind == 4 {
                    self.complete();
                }
            }
        }

        /// Completes the oldest pending request.
        fn complete(&mut self) {
            let head = self.pending.remove(0);
            let chain = self.chain(head);
            let kind: u32 = load(chain[0].0);
            let sector: u64 = load(chain[0].0 + 8);
            let start = sector as usize * 512;
            let mut written = 0;
            for &(address, length, _) in &chain[1..chain.len() - 1] {
                let length = length as usize;
                match kind {
                    0 => store(address, &self.storage[start..start + length]),
                    1 => {
                        let data: Vec<u8> = (0..length as u64)
                            .map(|i| load::<u8>(address + i))
                            .collect();
                        self.storage[start..start + length].copy_from_slice(&data);
                    }
                    _ => {}
                }
                written += length;
            }
            store(chain[chain.len() - 1].0, &[self.answer]);
            let (_, _, used) = self.queue.unwrap();
            let idx: u16 = load(used + 2);
            let slot = u64::from(idx % 16);
            store(used + 4 + slot * 8, &u32::from(head).to_le_bytes());
            store(used + 8 + slot * 8, &(written as u32 + 1).to_le_bytes());
            std::sync::atomic::fence(Ordering::SeqCst);
            store(used + 2, &idx.wrapping_add(1).to_le_bytes());
            self.interrupt = true;
        }
    }

    struct FakeTransport(Rc<StdRefCell<Device>>);

    impl Transport for FakeTransport {
        fn device_type(&self) -> DeviceType {
            DeviceType::Block
        }
        fn read_device_features(&mut self) -> u64 {
            self.0.borrow().features
        }
        fn write_driver_features(&mut self, _features: u64) {}
        fn max_queue_size(&mut self, _queue: u16) -> u32 {
            16
        }
        fn notify(&mut self, _queue: u16) {
            self.0.borrow_mut().take_available();
        }
        fn get_status(&self) -> DeviceStatus {
            self.0.borrow().status
        }
        fn set_status(&mut self, status: DeviceStatus) {
            self.0.borrow_mut().status = status;
        }
        fn set_guest_page_size(&mut self, _size: u32) {}
        fn requires_legacy_layout(&self) -> bool {
            false
        }
        fn queue_set(
            &mut self,
            _queue: u16,
            size: u32,
            descriptors: PhysAddr,
            driver_area: PhysAddr,
            device_area: PhysAddr,
        ) {
            assert_eq!(size, 16);
            self.0.borrow_mut().queue = Some((descriptors, driver_area, device_area));
        }
        fn queue_unset(&mut self, _queue: u16) {}
        fn queue_used(&mut self, _queue: u16) -> bool {
            self.0.borrow().queue.is_some()
        }
        fn ack_interrupt(&mut self) -> InterruptStatus {
            if core::mem::take(&mut self.0.borrow_mut().interrupt) {
                InterruptStatus::QUEUE_INTERRUPT
            } else {
                InterruptStatus::empty()
            }
        }
        fn read_config_generation(&self) -> u32 {
            0
        }
        fn read_config_space<T: FromBytes + IntoBytes>(
            &self,
            offset: usize,
        ) -> virtio_drivers::Result<T> {
            let mut config = [0u8; 64];
            config[..8].copy_from_slice(&SECTORS.to_le_bytes());
            Ok(T::read_from_bytes(&config[offset..offset + size_of::<T>()]).unwrap())
        }
        fn write_config_space<T: IntoBytes + Immutable>(
            &mut self,
            _offset: usize,
            _value: T,
        ) -> virtio_drivers::Result<()> {
            Ok(())
        }
    }

    /// A completion: 'r', 'w' or 'f', the buffer, the result.
    type Event = (char, Vec<u8>, Result<(), BlockError>);

    #[derive(Default)]
    struct Client {
        events: StdRefCell<Vec<Event>>,
    }

    impl BlockClient for Client {
        fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
            self.events
                .borrow_mut()
                .push(('r', buffer.to_vec(), result));
        }
        fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
            self.events
                .borrow_mut()
                .push(('w', buffer.to_vec(), result));
        }
        fn flush_done(&self, result: Result<(), BlockError>) {
            self.events.borrow_mut().push(('f', Vec::new(), result));
        }
    }

    type Disk = VirtioDisk<'static, FakeTransport>;

    fn disk(features: u64) -> (&'static Disk, Rc<StdRefCell<Device>>, &'static Client) {
        let device = Rc::new(StdRefCell::new(Device {
            features: features | FEATURE_VERSION_1,
            storage: (0..SECTORS as usize * 512)
                .map(|i| (i * 3 + i / 512) as u8)
                .collect(),
            ..Device::default()
        }));
        let disk: &'static Disk = Box::leak(Box::new(
            VirtioDisk::new(FakeTransport(device.clone())).unwrap(),
        ));
        let client: &'static Client = Box::leak(Box::default());
        disk.set_client(client);
        (disk, device, client)
    }

    fn buffer(bytes: usize) -> &'static mut [u8] {
        Box::leak(vec![0xee; bytes].into_boxed_slice())
    }

    #[test]
    fn a_read_completes_only_when_the_device_is_done() {
        let (disk, device, client) = disk(FEATURE_FLUSH);
        assert_eq!((disk.sectors(), disk.read_only()), (SECTORS, false));
        disk.read(3, buffer(1024)).unwrap();
        assert_eq!(device.borrow().seen, [0]);
        // Pending: polls keep it, a second request is refused.
        assert!(disk.poll());
        assert_eq!(disk.read(0, buffer(512)).unwrap_err().0, BlockError::Busy);
        assert_eq!(disk.flush(), Err(BlockError::Busy));
        assert!(client.events.borrow().is_empty());
        device.borrow_mut().complete();
        disk.handle_interrupt();
        let events = client.events.borrow();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, 'r');
        assert_eq!(events[0].1, device.borrow().storage[3 * 512..5 * 512]);
        assert_eq!(events[0].2, Ok(()));
        drop(events);
        assert!(!disk.poll());
    }

    #[test]
    fn a_write_reaches_the_device_and_a_flush_follows() {
        let (disk, device, client) = disk(FEATURE_FLUSH);
        let data = buffer(512);
        data.fill(0x5a);
        disk.write(63, data).unwrap();
        device.borrow_mut().complete();
        assert!(!disk.poll());
        assert_eq!(device.borrow().storage[63 * 512..], [0x5a; 512]);
        assert_eq!(client.events.borrow()[0].2, Ok(()));
        disk.flush().unwrap();
        assert!(!disk.poll());
        assert_eq!(device.borrow().seen, [1, 4]);
        assert_eq!(client.events.borrow()[1], ('f', Vec::new(), Ok(())));
    }

    #[test]
    fn device_errors_and_bad_requests_are_block_errors() {
        let (disk, device, client) = disk(0);
        device.borrow_mut().answer = 1; // VIRTIO_BLK_S_IOERR
        disk.read(0, buffer(512)).unwrap();
        device.borrow_mut().complete();
        disk.poll();
        assert_eq!(client.events.borrow()[0].2, Err(BlockError::Device));
        assert_eq!(
            disk.read(SECTORS, buffer(512)).unwrap_err().0,
            BlockError::OutOfRange
        );
        assert_eq!(
            disk.write(0, buffer(100)).unwrap_err().0,
            BlockError::Unaligned
        );
        // Nothing more reached the device.
        assert_eq!(device.borrow().seen, [0]);
    }

    #[test]
    fn a_read_only_device_refuses_writes_and_flushes() {
        let (disk, device, _) = disk(FEATURE_RO);
        assert!(disk.read_only());
        assert_eq!(
            disk.write(0, buffer(512)).unwrap_err().0,
            BlockError::ReadOnly
        );
        assert_eq!(disk.flush(), Err(BlockError::ReadOnly));
        assert!(device.borrow().seen.is_empty());
    }

    #[test]
    fn the_probe_finds_the_first_block_device_and_skips_empty_slots() {
        let ids = probe(|slot| match slot {
            3 => (VIRTIO_MAGIC, 1),
            5 => (0, 2),
            7 | 9 => (VIRTIO_MAGIC, 2),
            _ => (VIRTIO_MAGIC, 0),
        });
        assert_eq!(ids[5], 0, "no magic, no device");
        assert_eq!(find_block_device(&ids), Some(7));
        assert_eq!(find_block_device(&[0; 32]), None);
        assert_eq!(transport_base(31), 0x0a00_3e00);
        assert_eq!(transport_interrupt(31), 79);
    }
}
