// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capabilities: zero-sized tokens that privileged constructors and
//! operations demand, so that only the code trusted to wire a system (a
//! board) can call them (Tock's `kernel::capabilities`).
//!
//! Each capability is an `unsafe` trait. A token is made with
//! [`create_capability!`](crate::create_capability), whose expansion holds
//! an `unsafe impl`: a crate that forbids unsafe code (`capsules`) cannot
//! expand it (`#![forbid(unsafe_code)]` cannot be overridden), so a
//! capsule can use a token a board hands it but never make one.
//!
//! ```
//! use hyp::capabilities::Stage2MappingCapability;
//! fn privileged(_capability: &dyn Stage2MappingCapability) {}
//! let capability = hyp::create_capability!(Stage2MappingCapability);
//! privileged(&capability);
//! ```
//!
//! A crate that forbids unsafe code, as `capsules` does, cannot make one:
//!
//! ```compile_fail
//! #![forbid(unsafe_code)]
//! let capability = hyp::create_capability!(hyp::capabilities::VcpuCreationCapability);
//! ```
//!
//! | capability | guards |
//! |---|---|
//! | [`Stage2MappingCapability`] | mapping host memory or devices into a VM's stage-2 tables |
//! | [`VcpuCreationCapability`] | creating a vCPU that runs on a set of stage-2 tables |
//! | [`InterruptRoutingCapability`] | routing physical interrupts to a VM's interrupt backend or the hypervisor's platform |

/// May map host memory and devices into a VM's stage 2.
///
/// # Safety
/// Implemented only by [`create_capability!`](crate::create_capability),
/// in code trusted to decide what each VM may reach.
#[allow(unsafe_code)] // an unsafe trait: only `create_capability!` implements it
pub unsafe trait Stage2MappingCapability {}

/// May create a vCPU bound to stage-2 tables.
///
/// # Safety
/// As for [`Stage2MappingCapability`].
#[allow(unsafe_code)] // an unsafe trait: only `create_capability!` implements it
pub unsafe trait VcpuCreationCapability {}

/// May route physical interrupts to a VM or to the hypervisor's platform.
///
/// # Safety
/// As for [`Stage2MappingCapability`].
#[allow(unsafe_code)] // an unsafe trait: only `create_capability!` implements it
pub unsafe trait InterruptRoutingCapability {}

/// Makes a token of capability `$T` (one of this module's traits). Only a
/// crate that allows unsafe code can expand it.
#[macro_export]
macro_rules! create_capability {
    ($T:ty $(,)?) => {{
        struct Capability;
        #[allow(unsafe_code)]
        // SAFETY: the expanding crate is trusted with this capability: it
        // could not expand this under `forbid(unsafe_code)`.
        unsafe impl $T for Capability {}
        Capability
    }};
}

/// Tokens of every capability for the host tests of crates that cannot
/// make their own (`capsules` forbids unsafe code): only with the
/// `test-capabilities` feature, which only `dev-dependencies` enable.
#[cfg(feature = "test-capabilities")]
pub mod testing {
    use super::*;

    /// Holds every capability; for tests only.
    #[derive(Clone, Copy, Debug)]
    pub struct TestCapability;

    #[allow(unsafe_code)]
    // SAFETY: compiled only into host tests (feature `test-capabilities`).
    unsafe impl Stage2MappingCapability for TestCapability {}
    #[allow(unsafe_code)]
    // SAFETY: as above.
    unsafe impl VcpuCreationCapability for TestCapability {}
    #[allow(unsafe_code)]
    // SAFETY: as above.
    unsafe impl InterruptRoutingCapability for TestCapability {}
}
