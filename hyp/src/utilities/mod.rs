//! Small building blocks shared by every layer: MMIO references and
//! once-only static storage.

pub mod static_ref;
pub mod take_once;

pub use static_ref::StaticRef;
pub use take_once::TakeOnce;
