// SPDX-License-Identifier: MIT OR Apache-2.0
//! A VM's lock, and the objects it guards: reachable only through it.
//!
//! A VM's capsules (its virtual devices, hypercall services, interrupt
//! controller state, fault policy, RAM loader) are plain single-threaded
//! objects with `Cell`s inside. Whoever reaches them (a vCPU's routes and
//! interrupt backend, the board's console input) holds them in a
//! [`Guarded`], which hands them out only inside [`Guarded::with`], while
//! it holds the VM's lock. Which lock that is, is a type ([`VmLock`]):
//!
//! - [`OneCpu`]: no lock at all, for a VM that only one CPU ever reaches
//!   (one vCPU, on the CPU that takes console input). It is neither `Send`
//!   nor `Sync`, so the compiler keeps such a VM's objects on the CPU that
//!   built them: they cannot be handed to another CPU or put where another
//!   CPU reads. `with` is then a plain call: the unshared path costs
//!   nothing.
//! - [`SpinLock`]: the VM's [`VmMutex`], for a VM several CPUs reach. A
//!   `Guarded` on it may move to another CPU; making one is `unsafe`
//!   ([`VmMutex::guard`]): the board promises that everything the guarded
//!   value reaches is reached only through values guarded by that same
//!   mutex.
//! - [`AnyLock`]: either, for a CPU that runs vCPUs of both kinds of VM
//!   (the console's CPU); still not `Send`.
//!
//! The lock order: a VM's lock, then the console multiplexer's, then the
//! console UART's; no code holds two VMs' locks.
//!
//! ```
//! use core::cell::Cell;
//! use hyp::kernel::{OneCpu, VmMutex};
//!
//! let counter = Cell::new(0);
//! let alone = OneCpu::new().guard(&counter);
//! alone.with(|counter| counter.set(counter.get() + 1));
//! let mutex = VmMutex::new();
//! // SAFETY: `counter` is reached only through `alone` (on this thread)
//! // and `shared`, both used here and nowhere else.
//! let shared = unsafe { mutex.guard(&counter) };
//! shared.with(|counter| counter.set(counter.get() + 1));
//! assert_eq!(counter.get(), 2);
//! ```
//!
//! What only one CPU reaches cannot go to another:
//!
//! ```compile_fail
//! use hyp::kernel::OneCpu;
//!
//! fn to_another_cpu<T: Send>(_: T) {}
//! to_another_cpu(OneCpu::new().guard(0u32));
//! ```

use crate::sync::Mutex;
use core::marker::PhantomData;

/// How a VM's objects are kept from two CPUs at once.
pub trait VmLock {
    /// Runs `f` holding the lock.
    fn hold<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// No lock: the VM is reached from one CPU only (see the module
/// documentation). Neither `Send` nor `Sync`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OneCpu {
    /// Neither `Send` nor `Sync`: what it guards stays on its CPU.
    _this_cpu: PhantomData<*const ()>,
}

impl OneCpu {
    /// The lock of a VM that only the calling CPU reaches.
    pub const fn new() -> OneCpu {
        OneCpu {
            _this_cpu: PhantomData,
        }
    }

    /// `value`, reachable on this CPU only.
    pub const fn guard<T>(self, value: T) -> Guarded<T, OneCpu> {
        Guarded { lock: self, value }
    }
}

impl VmLock for OneCpu {
    #[inline(always)]
    fn hold<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// The lock of a VM that several CPUs reach (a spin lock).
#[derive(Debug, Default)]
pub struct VmMutex(Mutex<()>);

impl VmMutex {
    /// An unlocked mutex.
    #[cfg(not(loom))]
    pub const fn new() -> VmMutex {
        VmMutex(Mutex::new(()))
    }

    /// An unlocked mutex.
    #[cfg(loom)]
    pub fn new() -> VmMutex {
        VmMutex(Mutex::new(()))
    }

    /// `value`, reachable only while this mutex is held, from any CPU.
    ///
    /// # Safety
    ///
    /// Every object `value` reaches that is not `Sync` (a capsule with
    /// `Cell`s inside) must be reached only through values guarded by this
    /// mutex (by this function), never through another lock, a
    /// [`OneCpu`] guard, or a plain reference another CPU uses.
    #[allow(unsafe_code)] // an unsafe fn: the promise is its caller's
    pub unsafe fn guard<T>(&self, value: T) -> Guarded<T, SpinLock<'_>> {
        Guarded {
            lock: SpinLock(self),
            value,
        }
    }
}

/// A [`VmMutex`], as the guards on it hold it.
#[derive(Clone, Copy, Debug)]
pub struct SpinLock<'a>(&'a VmMutex);

impl VmLock for SpinLock<'_> {
    #[inline(always)]
    fn hold<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.0 .0.lock();
        f()
    }
}

/// Either lock, for a CPU that runs vCPUs of VMs of both kinds.
#[derive(Clone, Copy, Debug)]
pub enum AnyLock<'a> {
    /// No lock (the VM is this CPU's alone).
    OneCpu(OneCpu),
    /// The VM's spin lock.
    Spin(SpinLock<'a>),
}

impl VmLock for AnyLock<'_> {
    #[inline(always)]
    fn hold<R>(&self, f: impl FnOnce() -> R) -> R {
        // One copy of `f` for both kinds (it is the exit path's dispatch):
        // the spin lock, if any, is taken around it.
        let _held = match self {
            AnyLock::OneCpu(_) => None,
            AnyLock::Spin(lock) => Some(lock.0 .0.lock()),
        };
        f()
    }
}

/// A value reachable only while its VM's lock `L` is held.
#[derive(Debug)]
pub struct Guarded<T, L> {
    lock: L,
    value: T,
}

impl<T, L: VmLock> Guarded<T, L> {
    /// Runs `f` on the value, holding the lock.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.lock.hold(|| f(&self.value))
    }

    /// Another value under the same lock, built from this one's (holding
    /// the lock): a vCPU's objects, then the part of them someone else
    /// needs.
    pub fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Guarded<U, L>
    where
        L: Copy,
    {
        Guarded {
            lock: self.lock,
            value: self.with(f),
        }
    }
}

/// A copy under the same lock. Only for `Copy` values (references to the
/// guarded objects, say): copying one reads no `Cell`, so it needs no lock.
impl<T: Copy, L: Copy> Clone for Guarded<T, L> {
    fn clone(&self) -> Self {
        Guarded {
            lock: self.lock,
            value: self.value,
        }
    }
}

impl<'a, T> From<Guarded<T, OneCpu>> for Guarded<T, AnyLock<'a>> {
    fn from(guarded: Guarded<T, OneCpu>) -> Self {
        Guarded {
            lock: AnyLock::OneCpu(guarded.lock),
            value: guarded.value,
        }
    }
}

impl<'a, T> From<Guarded<T, SpinLock<'a>>> for Guarded<T, AnyLock<'a>> {
    fn from(guarded: Guarded<T, SpinLock<'a>>) -> Self {
        Guarded {
            lock: AnyLock::Spin(guarded.lock),
            value: guarded.value,
        }
    }
}

#[allow(unsafe_code)]
// SAFETY: a `Guarded` on a `SpinLock` is made only by `VmMutex::guard`,
// whose caller promised that what the value reaches (and is not `Sync`)
// is reached only through values guarded by that one mutex. The value is
// private and lent out only by `with`, inside `SpinLock::hold`, which
// holds the mutex: on whichever CPU the `Guarded` now is, its accesses
// and every other CPU's exclude each other, and the mutex's acquire and
// release order them. `T: Send` is not asked because the value's
// references are exactly what the mutex protects.
unsafe impl<T> Send for Guarded<T, SpinLock<'_>> {}

#[allow(unsafe_code)]
// SAFETY: as `Send`: through `&Guarded` a CPU reaches the value only in
// `with`, holding the mutex, so two CPUs sharing one never reach it at
// once.
unsafe impl<T> Sync for Guarded<T, SpinLock<'_>> {}
