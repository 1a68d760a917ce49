//! Counters, kept one way in every family.
//!
//! Each family declares its counters once, as a `#[repr(C)]` struct of
//! `u64` fields (`RouterStats`, `ClientStats`, `CallerStats`, `AdapterStats`):
//! that struct is the snapshot Rust users get and, under its C name
//! (`rrpc_router_stats`, ...), the struct `rrpc_<family>_get_stats` fills.
//! [`counter_set!`] lists its fields and names a [`Counter`] handle for each,
//! under an alias of the family's choosing (`RouterStats::requests`, so that
//! `RouterStats::requests` stays the field, for readers and doc links); a
//! [`Counters`] of that struct keeps the live
//! values as atomics, so that any thread may count and read without a lock.
//! Gauges (requests pending, devices registered) are fields of the same struct
//! that the family fills in when it takes a snapshot.

use std::marker::PhantomData;
use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};

/// A `#[repr(C)]` struct of `u64` fields only: implemented by [`counter_set!`],
/// which checks it.
///
/// # Safety
/// Every field is a `u64`, so that the struct is exactly `size_of::<Self>() / 8`
/// words, each valid for any value.
pub(crate) unsafe trait CounterSet: Copy + Default {}

/// One field of a [`CounterSet`] `T`, by its offset.
pub(crate) struct Counter<T> {
    word: usize,
    of: PhantomData<fn() -> T>,
}

impl<T> Clone for Counter<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Counter<T> {}

impl<T: CounterSet> Counter<T> {
    /// The field at byte `offset` (from `offset_of!`).
    pub(crate) const fn at(offset: usize) -> Counter<T> {
        assert!(offset % 8 == 0 && offset < size_of::<T>());
        Counter {
            word: offset / 8,
            of: PhantomData,
        }
    }
}

/// Makes a struct a [`CounterSet`] and names a [`Counter`] for each of its
/// fields, as `Alias::field` (`counter_set!(RouterStats as RouterCounter {...})`
/// gives `RouterStats::requests`). Every field must be listed (a field left out
/// is a compile error) and be a `u64`.
macro_rules! counter_set {
    ($ty:ident as $alias:ident { $($field:ident),+ $(,)? }) => {
        // SAFETY: the checks below: every field listed, each a u64.
        unsafe impl $crate::counters::CounterSet for $ty {}

        /// The counters of one field each (see `crate::counters`).
        #[allow(dead_code)]
        pub(crate) type $alias = $crate::counters::Counter<$ty>;

        #[allow(non_upper_case_globals, dead_code)]
        impl $crate::counters::Counter<$ty> {
            $(
                pub(crate) const $field: $crate::counters::Counter<$ty> =
                    $crate::counters::Counter::at(::std::mem::offset_of!($ty, $field));
            )+
        }

        const _: () = {
            assert!(::std::mem::size_of::<$ty>() == 8 * [$(stringify!($field)),+].len());
        };
        const _: fn(&$ty) = |v| {
            let $ty { $($field),+ } = *v;
            $( let _: u64 = $field; )+
        };
    };
}
pub(crate) use counter_set;

/// Most fields a [`CounterSet`] may have.
const MAX_WORDS: usize = 64;

/// The live values of a [`CounterSet`]: one atomic word per field.
pub(crate) struct Counters<T: CounterSet> {
    words: [AtomicU64; MAX_WORDS],
    of: PhantomData<fn() -> T>,
}

impl<T: CounterSet> Default for Counters<T> {
    fn default() -> Self {
        const { assert!(size_of::<T>() <= 8 * MAX_WORDS) };
        Counters {
            words: [const { AtomicU64::new(0) }; MAX_WORDS],
            of: PhantomData,
        }
    }
}

impl<T: CounterSet> Counters<T> {
    /// Adds 1.
    #[inline]
    pub(crate) fn bump(&self, c: Counter<T>) {
        self.add(c, 1);
    }

    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, c: Counter<T>, n: u64) {
        self.words[c.word].fetch_add(n, Ordering::Relaxed);
    }

    /// One field's value now.
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub(crate) fn get(&self, c: Counter<T>) -> u64 {
        self.words[c.word].load(Ordering::Relaxed)
    }

    /// Every field's value now (each read on its own: the snapshot is not
    /// atomic across fields).
    pub(crate) fn snapshot(&self) -> T {
        let mut out = T::default();
        let dst = (&mut out as *mut T).cast::<u64>();
        for (i, w) in self.words[..size_of::<T>() / 8].iter().enumerate() {
            // SAFETY: `T` is `size_of::<T>() / 8` u64 words (the CounterSet
            // contract); word `i` is one of them.
            unsafe { dst.add(i).write_unaligned(w.load(Ordering::Relaxed)) };
        }
        out
    }
}

impl<T: CounterSet + std::fmt::Debug> std::fmt::Debug for Counters<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct TestStats {
        pub(crate) a: u64,
        pub(crate) b: u64,
        pub(crate) c: u64,
    }
    counter_set!(TestStats as TestCounter { a, b, c });

    #[test]
    fn each_field_counts_on_its_own() {
        let c = Counters::<TestStats>::default();
        c.bump(TestCounter::b);
        c.add(TestCounter::c, 5);
        c.add(TestCounter::a, 9);
        assert_eq!(c.get(TestCounter::c), 5);
        assert_eq!(c.snapshot(), TestStats { a: 9, b: 1, c: 5 });
    }

    #[test]
    fn threads_count_without_losing_any() {
        let c = std::sync::Arc::new(Counters::<TestStats>::default());
        let t: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        c.bump(TestCounter::a);
                    }
                })
            })
            .collect();
        t.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(TestCounter::a), 40_000);
    }
}
