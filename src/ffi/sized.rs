//! Structs that grow: how the library reads what an application filled in
//! (`_config`, `_params`) and writes what it asked for (`_get_stats`, views),
//! whatever `rrpc.h` of the 1.x series the application was built with.
//!
//! - **Settings** (application to library) start with `uint32_t struct_size`,
//!   which their `_init(out, size)` sets to the application's `sizeof`. The
//!   library reads only the fields that lie wholly within `struct_size`; the
//!   others keep the library's defaults, so an application built against an
//!   older header gets the defaults of the fields added since. A `struct_size`
//!   larger than the library's own struct (a header newer than the library) or
//!   smaller than the field itself (never initialised) is refused with
//!   `RRPC_STATUS_STRUCT_SIZE`.
//! - **Outputs** (library to application memory) come with their size as an
//!   argument: the library writes the fields that fit, and zeroes the rest of
//!   the application's struct (fields a newer header has and this library does
//!   not know read as 0). Counters ([`CounterSet`]) are `u64` words only.
//!
//! New fields are only ever appended, at an offset at or after the previous
//! release's `sizeof` (never in its tail padding); `abi/` holds the dump that
//! checks it. Each struct lists its fields once with [`sized_fields!`], which
//! fails to compile when a field is missing from the list.

use std::mem::size_of;

use super::args::arg_non_null;
use super::status::rrpc_status::RRPC_STATUS_STRUCT_SIZE;
use super::status::Failure;
use crate::counters::CounterSet;

/// A `#[repr(C)]` struct of the C API whose fields [`sized_fields!`] lists,
/// each of a type for which every bit pattern is a valid value (integers, raw
/// pointers, optional C function pointers and arrays of them: flags and enums
/// cross the boundary as integers).
pub(crate) trait Fields: Sized {
    /// The struct's C name, for messages.
    const NAME: &'static str;

    /// Copies into `dst` every field of the struct at `src` that lies wholly
    /// within its first `size` bytes.
    ///
    /// # Safety
    /// `src` must point to `size` readable bytes.
    unsafe fn read_covered(dst: &mut Self, src: *const u8, size: usize);

    /// Writes every field of `self` that lies wholly within the first `size`
    /// bytes at `dst`.
    ///
    /// # Safety
    /// `dst` must point to `size` writable bytes.
    unsafe fn write_covered(&self, dst: *mut u8, size: usize);
}

/// Settings an application fills for the library: [`Fields`] whose first field
/// is `struct_size`, with the library's defaults.
pub(crate) trait Settings: Fields {
    /// The defaults `_init` writes, `struct_size` included.
    fn defaults() -> Self;
}

/// Settings whose every field is 0, NULL or false, but `struct_size`: the
/// library's own size. [`Settings::defaults`] starts from it and names only
/// the fields whose default is something else.
pub(crate) fn zeroed_settings<T: Settings>() -> T {
    // SAFETY: every bit pattern is a valid `T` (the `Fields` contract).
    let mut v: T = unsafe { std::mem::zeroed() };
    // SAFETY: settings start with their `uint32_t struct_size`.
    unsafe {
        (&mut v as *mut T)
            .cast::<u32>()
            .write_unaligned(size_of::<T>() as u32)
    };
    v
}

/// One field of [`Fields::read_covered`].
///
/// # Safety
/// `src` must point to `size` readable bytes; every bit pattern must be a
/// valid `F`.
#[inline]
pub(crate) unsafe fn read_field<F: Copy>(dst: &mut F, src: *const u8, offset: usize, size: usize) {
    if offset + size_of::<F>() <= size {
        // SAFETY: the field lies within the `size` readable bytes; any bit
        // pattern is a valid `F` (the trait's contract).
        *dst = unsafe { src.add(offset).cast::<F>().read_unaligned() };
    }
}

/// One field of [`Fields::write_covered`].
///
/// # Safety
/// `dst` must point to `size` writable bytes.
#[inline]
pub(crate) unsafe fn write_field<F: Copy>(value: &F, dst: *mut u8, offset: usize, size: usize) {
    if offset + size_of::<F>() <= size {
        // SAFETY: the field lies within the `size` writable bytes.
        unsafe { dst.add(offset).cast::<F>().write_unaligned(*value) };
    }
}

/// Implements [`Fields`] for a `#[repr(C)]` struct from the list of all its
/// fields (a field left out is a compile error).
macro_rules! sized_fields {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl $crate::ffi::sized::Fields for $ty {
            const NAME: &'static str = stringify!($ty);

            unsafe fn read_covered(dst: &mut Self, src: *const u8, size: usize) {
                // SAFETY: forwarded contract.
                $( unsafe {
                    $crate::ffi::sized::read_field(
                        &mut dst.$field, src, ::std::mem::offset_of!($ty, $field), size)
                }; )+
            }

            unsafe fn write_covered(&self, dst: *mut u8, size: usize) {
                // SAFETY: forwarded contract.
                $( unsafe {
                    $crate::ffi::sized::write_field(
                        &self.$field, dst, ::std::mem::offset_of!($ty, $field), size)
                }; )+
            }
        }

        impl $crate::ffi::sized::Output for $ty {
            unsafe fn write_into(&self, dst: *mut u8, size: usize) {
                // SAFETY: forwarded contract.
                unsafe { $crate::ffi::sized::Fields::write_covered(self, dst, size) }
            }
        }

        // Every field is listed: this pattern has no `..`.
        const _: fn(&$ty) = |v| {
            let $ty { $($field: _),+ } = v;
        };
    };
}
pub(crate) use sized_fields;

/// A settings struct in one declaration: its fields (as [`sized_fields!`], every
/// one listed) and the defaults its `_init` writes, naming only the fields whose
/// default is not 0, NULL or false ([`zeroed_settings`] gives the rest), from
/// the bindings in `[...]` (such as the Rust object's own defaults).
macro_rules! settings {
    (
        $ty:ident { $($field:ident),+ $(,)? }
        defaults $([$($var:ident = $init:expr),+ $(,)?])? { $($name:ident: $value:expr),* $(,)? }
    ) => {
        $crate::ffi::sized::sized_fields!($ty { $($field),+ });

        impl $crate::ffi::sized::Settings for $ty {
            fn defaults() -> Self {
                $($(let $var = $init;)+)?
                $ty {
                    $($name: $value,)*
                    ..$crate::ffi::sized::zeroed_settings()
                }
            }
        }
    };
}
pub(crate) use settings;

/// The smallest size a struct may be declared with: its `struct_size` field.
const MIN_SIZE: usize = size_of::<u32>();

/// Checks a size the application gave for a `T` (`name` says where it came
/// from): from its `struct_size` field up to the library's own struct.
fn known_size<T: Fields>(size: usize, name: impl FnOnce() -> String) -> Result<(), Failure> {
    let known = size_of::<T>();
    if (MIN_SIZE..=known).contains(&size) {
        return Ok(());
    }
    Err(Failure::new(
        RRPC_STATUS_STRUCT_SIZE,
        format!(
            "{} is {size} bytes ({}); this library knows {known}: {}",
            name(),
            T::NAME,
            if size > known {
                "the application was built against a newer rrpc.h than the library it runs with"
            } else {
                "fill the struct with its _init first"
            }
        ),
    ))
}

/// Reads settings the application filled: the fields its `struct_size`
/// covers, the library's defaults for the others.
///
/// # Safety
/// `p` must be NULL or point to `struct_size` readable bytes that start with
/// the `uint32_t struct_size` of a `T`.
pub(crate) unsafe fn read_settings<T: Settings>(p: *const T, name: &str) -> Result<T, Failure> {
    arg_non_null(p, name)?;
    // SAFETY: non-NULL; the struct starts with its 4-byte struct_size.
    let size = unsafe { p.cast::<u32>().read_unaligned() } as usize;
    known_size::<T>(size, || format!("{name}->struct_size"))?;
    let mut v = T::defaults();
    // SAFETY: `size` readable bytes per the contract.
    unsafe { T::read_covered(&mut v, p.cast(), size) };
    Ok(v)
}

/// The `_init` of settings: the defaults into the first `size` bytes at `out`
/// (the rest of them zeroed), `struct_size` set to `size`.
///
/// # Safety
/// `out` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn init_settings<T: Settings>(
    out: *mut T,
    size: usize,
    name: &str,
) -> Result<(), Failure> {
    arg_non_null(out, name)?;
    known_size::<T>(size, || format!("the size given for {name}"))?;
    // SAFETY: `size` writable bytes per the contract.
    unsafe {
        fill_output(out, size, |dst| {
            T::defaults().write_covered(dst, size);
            dst.cast::<u32>().write_unaligned(size as u32);
        })
    };
    Ok(())
}

/// Zeroes the application's `size` bytes at `out`, then has `write` write
/// the fields that fit into them.
///
/// # Safety
/// `out` must point to `size` writable bytes; `write` may write only there.
unsafe fn fill_output<T>(out: *mut T, size: usize, write: impl FnOnce(*mut u8)) {
    let dst = out.cast::<u8>();
    // SAFETY: `size` writable bytes per the contract.
    unsafe { std::ptr::write_bytes(dst, 0, size) };
    write(dst);
}

/// A struct the library writes into the application's memory: a view
/// ([`sized_fields!`]) or a family's counters ([`CounterSet`]).
pub(crate) trait Output {
    /// Writes what fits wholly into the first `size` bytes at `dst`.
    ///
    /// # Safety
    /// `dst` must point to `size` writable bytes.
    unsafe fn write_into(&self, dst: *mut u8, size: usize);
}

/// Counters are `u64` words only: the words that fit whole.
impl<T: CounterSet> Output for T {
    unsafe fn write_into(&self, dst: *mut u8, size: usize) {
        let words = size.min(size_of::<T>()) / 8;
        // SAFETY: `size` writable bytes per the contract; `self` is
        // `size_of::<T>() / 8` u64 words (the CounterSet contract).
        unsafe { std::ptr::copy_nonoverlapping((self as *const T).cast::<u8>(), dst, words * 8) };
    }
}

/// Writes an output struct into the application's `size` bytes at `out`: the
/// fields that fit, zeroes everywhere else.
///
/// # Safety
/// `out` must be NULL or point to `size` writable bytes.
pub(crate) unsafe fn write_output<T: Output>(
    value: &T,
    out: *mut T,
    size: usize,
    name: &str,
) -> Result<(), Failure> {
    arg_non_null(out, name)?;
    // SAFETY: `size` writable bytes per the contract.
    unsafe { fill_output(out, size, |dst| value.write_into(dst, size)) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct rrpc_test_config {
        struct_size: u32,
        a: u32,
        b: u8,
        c: u64,
    }
    sized_fields!(rrpc_test_config {
        struct_size,
        a,
        b,
        c
    });

    impl Settings for rrpc_test_config {
        fn defaults() -> Self {
            rrpc_test_config {
                struct_size: size_of::<Self>() as u32,
                a: 7,
                b: 1,
                c: 99,
            }
        }
    }

    #[test]
    fn fields_beyond_struct_size_keep_their_defaults() {
        let app = rrpc_test_config {
            struct_size: 12, // an older header: struct_size, a and b
            a: 1,
            b: 0,
            c: 5,
        };
        let v = unsafe { read_settings(&app, "config") }.unwrap();
        assert_eq!((v.a, v.b, v.c), (1, 0, 99));
        let full = rrpc_test_config {
            struct_size: size_of::<rrpc_test_config>() as u32,
            ..app
        };
        assert_eq!(unsafe { read_settings(&full, "config") }.unwrap().c, 5);
    }

    #[test]
    fn a_size_the_library_does_not_know_is_refused() {
        for size in [0u32, 3, size_of::<rrpc_test_config>() as u32 + 8] {
            let app = rrpc_test_config {
                struct_size: size,
                ..rrpc_test_config::defaults()
            };
            let e = unsafe { read_settings(&app, "config") }.unwrap_err();
            assert_eq!(e.status, RRPC_STATUS_STRUCT_SIZE, "{size}");
            assert!(e.message.contains("config->struct_size"), "{}", e.message);
        }
    }

    #[test]
    fn init_fills_what_the_application_has() {
        let mut buf = [0xffu8; 64];
        unsafe { init_settings(buf.as_mut_ptr().cast::<rrpc_test_config>(), 12, "out") }.unwrap();
        assert_eq!(&buf[..4], &12u32.to_ne_bytes());
        assert_eq!(&buf[4..8], &7u32.to_ne_bytes());
        assert_eq!(buf[8], 1);
        assert_eq!(&buf[9..12], &[0, 0, 0], "padding zeroed");
        assert!(buf[12..].iter().all(|&b| b == 0xff), "nothing beyond size");
        let e = unsafe { init_settings(buf.as_mut_ptr().cast::<rrpc_test_config>(), 64, "out") }
            .unwrap_err();
        assert_eq!(e.status, RRPC_STATUS_STRUCT_SIZE);
    }

    #[test]
    fn outputs_fill_what_fits_and_zero_the_rest() {
        let v = rrpc_test_config::defaults();
        let mut small = [0xffu8; 8];
        unsafe { write_output(&v, small.as_mut_ptr().cast(), 8, "out") }.unwrap();
        assert_eq!(&small[4..8], &7u32.to_ne_bytes());
        let mut big = [0xffu8; 40];
        unsafe { write_output(&v, big.as_mut_ptr().cast(), 40, "out") }.unwrap();
        assert_eq!(&big[16..24], &99u64.to_ne_bytes());
        assert!(
            big[24..].iter().all(|&b| b == 0),
            "a newer header's fields read 0"
        );
    }
}
