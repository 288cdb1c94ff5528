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
/// descriptors takes two (virtio 1.x) or two contiguous (legacy).
pub const DMA_PAGES: usize = 4;

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
