//! The router's device index: from the hash of a device key to the device's slot.
//!
//! An open-addressed table of groups, each one cache line holding eight entries
//! of a 32-bit tag (high half of the hash) and a slot number. Where a key's
//! entry is follows from its hash alone, so the line can be requested before it
//! is needed ([`SlotIndex::prefetch`]); its entry then names the slot without
//! reading any device record, and a false match of the 32-bit tag is rare
//! enough that the record's check is a formality.
//!
//! Groups are probed linearly from `hash & mask`. A lookup stops at the first
//! group with a free entry; so a removed entry becomes free only when its group
//! already had one (no probe sequence passed through it), otherwise a tombstone.
//! The table grows (or is rebuilt, when tombstones fill it) at 7/8 of its
//! entries, re-hashing every key through the caller's closure.

/// Entries per group (one 64-byte line: eight tags, then eight slots).
const WIDTH: usize = 8;
/// Tag of an entry that never held a key.
const FREE: u32 = 0;
/// Tag of an entry whose key was removed.
const TOMBSTONE: u32 = 1;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Group {
    tags: [u32; WIDTH],
    slots: [u32; WIDTH],
}

const _: () = assert!(std::mem::size_of::<Group>() == 64);

const EMPTY_GROUP: Group = Group {
    tags: [FREE; WIDTH],
    slots: [0; WIDTH],
};

impl Group {
    /// Bit k set where `tags[k] == tag`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn matches(&self, tag: u32) -> u32 {
        use std::arch::x86_64::{
            _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_load_si128, _mm_movemask_ps, _mm_set1_epi32,
        };
        // SAFETY: SSE2 is part of x86_64; `tags` is the first 32 bytes of a
        // 64-byte aligned group, so both 16-byte loads are aligned and in bounds.
        unsafe {
            let want = _mm_set1_epi32(tag as i32);
            let p = self.tags.as_ptr().cast();
            let lo = _mm_cmpeq_epi32(_mm_load_si128(p), want);
            let hi = _mm_cmpeq_epi32(_mm_load_si128(p.add(1)), want);
            (_mm_movemask_ps(_mm_castsi128_ps(lo)) | _mm_movemask_ps(_mm_castsi128_ps(hi)) << 4)
                as u32
        }
    }

    /// Bit k set where `tags[k] == tag`.
    #[cfg(not(target_arch = "x86_64"))]
    #[inline]
    fn matches(&self, tag: u32) -> u32 {
        let mut m = 0;
        for (k, &t) in self.tags.iter().enumerate() {
            m |= u32::from(t == tag) << k;
        }
        m
    }
}

/// A live entry's tag: never [`FREE`] or [`TOMBSTONE`].
#[inline]
fn tag_of(hash: u64) -> u32 {
    let t = (hash >> 32) as u32;
    if t <= TOMBSTONE {
        t + 2
    } else {
        t
    }
}

pub(super) struct SlotIndex {
    groups: Vec<Group>,
    /// Live entries.
    len: usize,
    /// Live entries plus tombstones.
    used: usize,
}

impl SlotIndex {
    pub(super) fn new() -> SlotIndex {
        SlotIndex {
            groups: Vec::new(),
            len: 0,
            used: 0,
        }
    }

    /// Live entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the table.
    #[cfg(test)]
    fn capacity_bytes(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Group>()
    }

    fn mask(&self) -> usize {
        self.groups.len().wrapping_sub(1)
    }

    /// Asks the CPU to start loading the group where the search for `hash`
    /// begins (no effect on other targets).
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        if !self.groups.is_empty() {
            super::devices::prefetch(&self.groups[hash as usize & self.mask()]);
        }
    }

    /// The slot of the entry with `hash` for which `is(slot)` holds.
    #[inline]
    pub(super) fn find(&self, hash: u64, is: impl FnMut(u32) -> bool) -> Option<u32> {
        let (g, k) = self.position(hash, is)?;
        Some(self.groups[g].slots[k])
    }

    /// Group and entry of the entry with `hash` for which `is(slot)` holds.
    #[inline]
    fn position(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<(usize, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        let tag = tag_of(hash);
        let mask = self.mask();
        let mut g = hash as usize & mask;
        // Every probe ends: the table always keeps at least one free entry.
        loop {
            let group = &self.groups[g];
            let mut m = group.matches(tag);
            while m != 0 {
                let k = m.trailing_zeros() as usize;
                if is(group.slots[k]) {
                    return Some((g, k));
                }
                m &= m - 1;
            }
            if group.matches(FREE) != 0 {
                return None;
            }
            g = (g + 1) & mask;
        }
    }

    /// The slot of the first entry whose tag matches `hash`: almost always the
    /// entry of the key that hashes to `hash`, but unconfirmed.
    #[inline]
    pub(super) fn candidate(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Adds `slot` under `hash`; the key must not be present. `rehash` gives the
    /// hash of any slot already in the table (called only when the table grows).
    pub(super) fn insert(&mut self, hash: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        if (self.used + 1) * 8 > self.groups.len() * WIDTH * 7 {
            self.resize(self.len + 1, &rehash);
        }
        let (g, k) = self.vacancy(hash);
        if self.groups[g].tags[k] == FREE {
            self.used += 1;
        }
        self.groups[g].tags[k] = tag_of(hash);
        self.groups[g].slots[k] = slot;
        self.len += 1;
    }

    /// Removes the entry with `hash` for which `is(slot)` holds; returns its slot.
    pub(super) fn remove(&mut self, hash: u64, is: impl FnMut(u32) -> bool) -> Option<u32> {
        let (g, k) = self.position(hash, is)?;
        let group = &mut self.groups[g];
        // A group with a free entry never sent a probe on: the entry can be free
        // again.
        if group.matches(FREE) != 0 {
            group.tags[k] = FREE;
            self.used -= 1;
        } else {
            group.tags[k] = TOMBSTONE;
        }
        self.len -= 1;
        Some(group.slots[k])
    }

    /// The first free or removed entry on the probe sequence of `hash`.
    fn vacancy(&self, hash: u64) -> (usize, usize) {
        let mask = self.mask();
        let mut g = hash as usize & mask;
        loop {
            let m = self.groups[g].matches(FREE) | self.groups[g].matches(TOMBSTONE);
            if m != 0 {
                return (g, m.trailing_zeros() as usize);
            }
            g = (g + 1) & mask;
        }
    }

    /// Rebuilds the table for `want` live entries at most 7/8 full (at least
    /// doubling when it is full of live entries), dropping tombstones.
    fn resize(&mut self, want: usize, rehash: &impl Fn(u32) -> u64) {
        let groups = (want * 8 / 7 / WIDTH + 1).next_power_of_two();
        let old = std::mem::replace(&mut self.groups, vec![EMPTY_GROUP; groups]);
        self.len = 0;
        self.used = 0;
        for group in &old {
            for k in 0..WIDTH {
                if group.tags[k] > TOMBSTONE {
                    let slot = group.slots[k];
                    let hash = rehash(slot);
                    let (g, e) = self.vacancy(hash);
                    self.groups[g].tags[e] = tag_of(hash);
                    self.groups[g].slots[e] = slot;
                    self.len += 1;
                    self.used += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check(ix: &SlotIndex, live: &HashMap<u32, u64>) {
        assert_eq!(ix.len(), live.len());
        for (&slot, &hash) in live {
            assert_eq!(ix.find(hash, |s| s == slot), Some(slot), "slot {slot}");
        }
    }

    #[test]
    fn insert_find_remove_grow_and_reuse() {
        // A deliberately poor hash: many equal tags and home groups.
        let h = |slot: u32| u64::from(slot % 37) << 32 | u64::from(slot % 5);
        let mut ix = SlotIndex::new();
        let mut live = HashMap::new();
        assert_eq!(ix.find(h(1), |_| true), None);
        assert_eq!(ix.remove(h(1), |_| true), None);
        ix.prefetch(h(1));
        for slot in 0..2_000u32 {
            ix.insert(h(slot), slot, h);
            live.insert(slot, h(slot));
        }
        check(&ix, &live);
        assert_eq!(ix.find(h(5000), |s| s == 5000), None);
        for slot in (0..2_000u32).filter(|s| s % 3 != 0) {
            assert_eq!(ix.remove(h(slot), |s| s == slot), Some(slot));
            assert_eq!(ix.remove(h(slot), |s| s == slot), None);
            live.remove(&slot);
        }
        check(&ix, &live);
        // Churn: tombstones are reclaimed by rebuilds; the table does not grow
        // without bound.
        let bytes = ix.capacity_bytes();
        for round in 0..50u32 {
            let batch = 10_000 + round * 100..10_000 + round * 100 + 100;
            for slot in batch.clone() {
                ix.insert(h(slot), slot, h);
                live.insert(slot, h(slot));
            }
            for slot in batch {
                assert_eq!(ix.remove(h(slot), |s| s == slot), Some(slot));
                live.remove(&slot);
            }
        }
        check(&ix, &live);
        assert!(
            ix.capacity_bytes() <= bytes,
            "{} > {bytes}",
            ix.capacity_bytes()
        );
    }

    #[test]
    fn tags_never_collide_with_the_markers() {
        for hash in [0u64, 1 << 32, 2 << 32, u64::MAX] {
            assert!(tag_of(hash) > TOMBSTONE);
        }
        let mut ix = SlotIndex::new();
        ix.insert(0, 7, |_| 0);
        ix.insert(1 << 32, 8, |s| u64::from(s == 8) << 32);
        assert_eq!(ix.find(0, |s| s == 7), Some(7));
        assert_eq!(ix.find(1 << 32, |s| s == 8), Some(8));
        assert_eq!(ix.candidate(1 << 32), Some(8));
    }
}
