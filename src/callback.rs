//! Who runs whose callback on this thread, and callbacks that can be released.
//!
//! Two rules of the C API rest on this module, and the Rust API keeps them too:
//!
//! - **No re-entry into what would wait for itself.** A thread that is inside a
//!   callback of an object (or drives a caller's runtime) must not stop, free or
//!   release that object: the call would wait for the very callback it runs in.
//!   [`enter`] records, on the thread's stack, that the thread is inside
//!   `(kind, key)`; [`inside`] and [`inside_kind`] ask. One record per nested
//!   call, no allocation.
//! - **A released callback never runs again.** After the function that replaces
//!   or removes a callback returns, the old callback is not running on any other
//!   thread and will not start again, so C code may free its `user_data` at once.
//!   [`Callback`] counts the calls in flight; [`Callback::release`] marks it
//!   released and waits for them; a call that races with the release sees the
//!   mark and does not start. [`CallbackSlot`] holds the current callback of a
//!   registration point and releases the old one on every change.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};

/// What a thread is inside of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A device client's request handler (key: the handler).
    #[cfg(feature = "client")]
    ClientHandler,
    /// A thread that drives a caller's runtime: the caller's own thread, or one
    /// waiting in a blocking call (key: the caller).
    #[cfg(feature = "caller")]
    CallerDriver,
    /// A released-on-change callback ([`Callback`]; key: the callback).
    Callback,
    /// Any callback of a C object without a thread of its own (a router, a JT/T
    /// 808 adapter; key: its handle), so that freeing it from inside is refused.
    Object,
}

struct Frame {
    kind: Kind,
    key: usize,
    prev: *const Frame,
}

thread_local! {
    /// The innermost frame of this thread; frames live on the stack of [`enter`].
    static TOP: Cell<*const Frame> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with `(kind, key)` recorded as entered on this thread.
#[inline]
pub(crate) fn enter<R>(kind: Kind, key: usize, f: impl FnOnce() -> R) -> R {
    let frame = Frame {
        kind,
        key,
        prev: TOP.with(Cell::get),
    };
    TOP.with(|t| t.set(&frame));
    struct Pop(*const Frame);
    impl Drop for Pop {
        fn drop(&mut self) {
            TOP.with(|t| t.set(self.0));
        }
    }
    // Restores the outer frame also when `f` unwinds.
    let _pop = Pop(frame.prev);
    f()
}

fn any_frame(pred: impl Fn(&Frame) -> bool) -> bool {
    let mut p = TOP.with(Cell::get);
    while !p.is_null() {
        // SAFETY: every frame in the chain lives in a stack frame of `enter` that
        // has not returned yet (each `enter` pops its frame before returning).
        let f = unsafe { &*p };
        if pred(f) {
            return true;
        }
        p = f.prev;
    }
    false
}

/// Whether this thread is inside `(kind, key)`, at any depth.
pub(crate) fn inside(kind: Kind, key: usize) -> bool {
    any_frame(|f| f.kind == kind && f.key == key)
}

/// Runs `release`, which releases the callbacks of the object `key` (each
/// waiting for its calls in progress on other threads), unless this thread is
/// inside one of them, where it would wait for itself.
pub(crate) fn release_outside(
    key: usize,
    release: impl FnOnce() -> Result<(), Reentered>,
) -> Result<(), Reentered> {
    if inside(Kind::Object, key) {
        return Err(Reentered);
    }
    release()
}

/// Whether this thread is inside anything of `kind`.
#[cfg(any(feature = "client", feature = "caller", test))]
pub(crate) fn inside_kind(kind: Kind) -> bool {
    any_frame(|f| f.kind == kind)
}

/// Why a callback could not be released or replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("called from inside the callback it would release (it would wait for itself)")]
pub struct Reentered;

/// A callback with a count of its calls in flight; see the module documentation.
pub(crate) struct Callback<T: ?Sized> {
    /// What a thread running this callback is inside of.
    kind: Kind,
    running: AtomicUsize,
    released: AtomicBool,
    idle: Mutex<()>,
    idle_cv: Condvar,
    f: Box<T>,
}

impl<T: ?Sized> Callback<T> {
    pub fn new(f: Box<T>) -> Callback<T> {
        Callback::of_kind(Kind::Callback, f)
    }

    /// A callback whose calls record `kind` (such as a client's request handler,
    /// which a thread must not stop its client from).
    pub fn of_kind(kind: Kind, f: Box<T>) -> Callback<T> {
        Callback {
            kind,
            running: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            idle: Mutex::new(()),
            idle_cv: Condvar::new(),
            f,
        }
    }

    fn key(&self) -> usize {
        self as *const Self as *const u8 as usize
    }

    /// Calls the callback through `call`, unless it was released (then `None`).
    #[inline]
    pub fn call<R>(&self, call: impl FnOnce(&T) -> R) -> Option<R> {
        // SeqCst pairs with `release`: either this call sees the release mark, or
        // the release sees this call running and waits for it.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.released.load(Ordering::SeqCst) {
            self.done();
            return None;
        }
        Some(self.call_counted(call))
    }

    /// Runs `call`, this call already counted in `running`.
    #[inline]
    fn call_counted<R>(&self, call: impl FnOnce(&T) -> R) -> R {
        struct Done<'a, T: ?Sized>(&'a Callback<T>);
        impl<T: ?Sized> Drop for Done<'_, T> {
            fn drop(&mut self) {
                self.0.done();
            }
        }
        let _done = Done(self);
        enter(self.kind, self.key(), || call(&self.f))
    }

    fn done(&self) {
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 && self.released.load(Ordering::SeqCst)
        {
            let _g = self.idle.lock();
            self.idle_cv.notify_all();
        }
    }

    /// Whether this thread is inside a call of this callback.
    pub fn running_here(&self) -> bool {
        inside(self.kind, self.key())
    }

    /// Marks the callback released and waits until no call of it runs on any
    /// other thread. From inside one of its own calls it refuses, changing nothing.
    pub fn release(&self) -> Result<(), Reentered> {
        if self.running_here() {
            return Err(Reentered);
        }
        self.released.store(true, Ordering::SeqCst);
        let mut g = self.idle.lock();
        while self.running.load(Ordering::SeqCst) != 0 {
            // The timeout only guards against a wake-up lost between the count's
            // last decrement and this wait; the notify normally ends it.
            self.idle_cv.wait_for(&mut g, Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The current callback of one registration point (`set_callback`, a log
/// handler, a publish function...), or none.
pub(crate) struct CallbackSlot<T: ?Sized> {
    /// What a thread running the slot's callback is inside of.
    kind: Kind,
    cur: RwLock<Option<Arc<Callback<T>>>>,
    /// Whether `cur` holds a callback, readable without the lock.
    is_set: AtomicBool,
}

impl<T: ?Sized> Default for CallbackSlot<T> {
    fn default() -> Self {
        CallbackSlot::of_kind(Kind::Callback)
    }
}

impl<T: ?Sized> CallbackSlot<T> {
    /// A slot whose callbacks record `kind` when they run.
    pub fn of_kind(kind: Kind) -> CallbackSlot<T> {
        CallbackSlot {
            kind,
            cur: RwLock::new(None),
            is_set: AtomicBool::new(false),
        }
    }
}

impl<T: ?Sized> CallbackSlot<T> {
    /// Installs `f` (or clears the slot) and releases the callback it replaces:
    /// when this returns, the old callback is not running on another thread and
    /// will not run again. From inside the old callback it refuses and changes
    /// nothing.
    pub fn set(&self, f: Option<Box<T>>) -> Result<(), Reentered> {
        let new = f.map(|f| Arc::new(Callback::of_kind(self.kind, f)));
        let old = {
            let mut cur = self.cur.write();
            if cur.as_ref().is_some_and(|c| c.running_here()) {
                return Err(Reentered);
            }
            self.is_set.store(new.is_some(), Ordering::Relaxed);
            std::mem::replace(&mut *cur, new)
        };
        match old {
            Some(old) => old.release(),
            None => Ok(()),
        }
    }

    /// Calls the current callback through `call`; `None` when there is none.
    #[inline]
    pub fn call<R>(&self, call: impl FnOnce(&T) -> R) -> Option<R> {
        let cb: *const Callback<T> = {
            let cur = self.cur.read();
            let cb = cur.as_deref()?;
            // Counted while the slot cannot change: `set` swaps the callback out
            // under the write lock, so it is not released yet and `release` will
            // see this call running.
            cb.running.fetch_add(1, Ordering::SeqCst);
            cb
        };
        // SAFETY: the callback lives until its `release` has returned and `set`
        // dropped the slot's `Arc`; `release` waits for this counted call.
        let cb = unsafe { &*cb };
        Some(cb.call_counted(call))
    }

    /// Whether a callback is installed (a hint: it may change right after).
    pub fn is_set(&self) -> bool {
        self.is_set.load(Ordering::Relaxed)
    }

    /// Whether this thread is inside a call of the current callback.
    pub fn running_here(&self) -> bool {
        self.cur.read().as_ref().is_some_and(|c| c.running_here())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    #[test]
    fn frames_nest_and_unwind() {
        assert!(!inside(Kind::Object, 1));
        enter(Kind::Object, 1, || {
            enter(Kind::Callback, 2, || {
                assert!(inside(Kind::Object, 1));
                assert!(inside(Kind::Callback, 2));
                assert!(!inside(Kind::Callback, 1));
                assert!(inside_kind(Kind::Object));
            });
            assert!(!inside(Kind::Callback, 2));
        });
        let r = std::panic::catch_unwind(|| enter(Kind::Object, 3, || panic!("unwind")));
        assert!(r.is_err());
        assert!(!inside_kind(Kind::Object), "the frame went with the panic");
    }

    #[test]
    fn a_released_callback_is_not_running_and_never_runs_again() {
        let slot: Arc<CallbackSlot<Plain>> = Arc::new(CallbackSlot::default());
        let calls = Arc::new(AtomicU32::new(0));
        let c2 = calls.clone();
        slot.set(Some(Box::new(move || {
            c2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            c2.fetch_add(1, Ordering::SeqCst);
        })))
        .unwrap();
        let s2 = slot.clone();
        let t = std::thread::spawn(move || s2.call(|f| f()));
        while calls.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let t0 = Instant::now();
        slot.set(None).unwrap();
        // The call in flight finished before `set` returned...
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert_eq!(t.join().unwrap(), Some(()));
        // ...and nothing calls the old callback any more.
        assert_eq!(slot.call(|f| f()), None);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    type Plain = dyn Fn() + Send + Sync;
    type OnOther = dyn Fn(&CallbackSlot<Plain>) + Send + Sync;

    #[test]
    fn replacing_from_inside_the_callback_is_refused() {
        let slot: Arc<CallbackSlot<OnOther>> = Arc::new(CallbackSlot::default());
        let inner: CallbackSlot<Plain> = CallbackSlot::default();
        inner.set(Some(Box::new(|| {}))).unwrap();
        // A callback may release *another* slot's callback...
        slot.set(Some(Box::new(|other| {
            assert_eq!(other.set(None), Ok(()));
        })))
        .unwrap();
        slot.call(|f| f(&inner));
        assert!(!inner.is_set());
        // ...but not its own.
        let own: Arc<CallbackSlot<dyn Fn() -> Result<(), Reentered> + Send + Sync>> =
            Arc::new(CallbackSlot::default());
        let o2 = own.clone();
        own.set(Some(Box::new(move || o2.set(None)))).unwrap();
        assert_eq!(own.call(|f| f()), Some(Err(Reentered)));
        assert!(own.is_set(), "a refused change changes nothing");
    }

    #[test]
    fn calls_racing_with_a_release_either_finish_first_or_never_start() {
        for _ in 0..50 {
            let cb = Arc::new(Callback::new(Box::new(AtomicU32::new(0)) as Box<AtomicU32>));
            let after = Arc::new(AtomicBool::new(false));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (cb, after) = (cb.clone(), after.clone());
                    std::thread::spawn(move || {
                        for _ in 0..200 {
                            cb.call(|n| {
                                assert!(!after.load(Ordering::SeqCst), "ran after release");
                                n.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    })
                })
                .collect();
            cb.release().unwrap();
            after.store(true, Ordering::SeqCst);
            for t in threads {
                t.join().unwrap();
            }
        }
    }

    #[test]
    fn a_slot_replaced_under_load_never_runs_an_old_callback_after_set() {
        let slot: Arc<CallbackSlot<dyn Fn() -> usize + Send + Sync>> =
            Arc::new(CallbackSlot::default());
        // The generation whose callback may run; a callback of an older one
        // running after `set` returned is the bug.
        let current = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (slot, current, stop) = (slot.clone(), current.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut calls = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        if slot.call(|f| f()).is_some() {
                            calls += 1;
                        }
                    }
                    let _ = current;
                    calls
                })
            })
            .collect();
        let ran = Arc::new(AtomicUsize::new(0));
        for generation in 1..100 {
            let (c, r) = (current.clone(), ran.clone());
            slot.set(Some(Box::new(move || {
                assert!(
                    generation >= c.load(Ordering::SeqCst),
                    "generation {generation} ran after it was replaced"
                );
                r.fetch_add(1, Ordering::SeqCst);
                generation
            })))
            .unwrap();
            // `set` returned: the previous generation is over.
            current.store(generation, Ordering::SeqCst);
            // Let the callers run this generation before the next replaces it.
            let before = ran.load(Ordering::SeqCst);
            let t0 = std::time::Instant::now();
            while ran.load(Ordering::SeqCst) == before && t0.elapsed() < Duration::from_millis(50) {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::SeqCst);
        let calls: usize = callers.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(calls > 0);
    }
}
