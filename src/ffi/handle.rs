//! Handles: how an opaque C pointer (`rrpc_client *`, `rrpc_router *`, ...)
//! stands for a boxed Rust object, in the spirit of rustls-ffi's `Castable`.
//!
//! A handle is made once by `into_c` (a `_new` function), borrowed by every
//! other function of its family, and taken back once by `free` (its `_free`
//! function). C sees only `struct rrpc_x { _private: [u8; 0] }`; no Rust layout
//! leaks into `rrpc.h`.

use super::args::null_arg;
use super::status::Failure;

/// A Rust object that C holds through an opaque handle of type `C`.
pub(crate) trait Castable: Sized {
    /// The opaque C type.
    type C;
    /// The handle's parameter name in every function of its family (and in
    /// their doc comments), used in error messages: "client is NULL".
    const NAME: &'static str;

    /// Boxes `self` and gives it to C.
    fn into_c(self) -> *mut Self::C {
        Box::into_raw(Box::new(self)).cast()
    }

    /// The object behind a handle, shared. NULL is `RRPC_STATUS_NULL_POINTER`.
    fn borrow<'a>(p: *const Self::C) -> Result<&'a Self, Failure> {
        // SAFETY: a non-NULL `*const Self::C` is only ever made by `into_c` from a
        // `Box<Self>`; the API contract forbids its use after the `_free`.
        unsafe { p.cast::<Self>().as_ref() }.ok_or_else(|| null_arg(Self::NAME))
    }

    /// The object behind a handle, exclusively, for families whose functions
    /// take the handle from one thread at a time (documented per family).
    #[cfg(feature = "jt808")]
    fn borrow_mut<'a>(p: *mut Self::C) -> Result<&'a mut Self, Failure> {
        // SAFETY: as `borrow`; exclusive use is the family's documented contract.
        unsafe { p.cast::<Self>().as_mut() }.ok_or_else(|| null_arg(Self::NAME))
    }

    /// The `_free` of a family: NULL does nothing; otherwise `release` runs
    /// first on the live object (stopping it, releasing its callbacks) and may
    /// refuse, leaving the handle valid; then the object is dropped.
    fn free(
        p: *mut Self::C,
        release: impl FnOnce(&Self) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        if p.is_null() {
            return Ok(());
        }
        release(Self::borrow(p)?)?;
        // SAFETY: made by `into_c` from a `Box<Self>`; freed once per the contract.
        drop(unsafe { Box::from_raw(p.cast::<Self>()) });
        Ok(())
    }
}
