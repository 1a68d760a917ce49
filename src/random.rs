//! The library's one source of randomness: the operating system's, through the
//! `getrandom` crate (getrandom(2) on Linux). Message ids, client ids,
//! connection ids and the request ids of responses come from here, so that
//! another client cannot guess them and identical devices powered on together
//! do not choose alike.

/// Fills `buf` with random bytes. Should the operating system refuse (getrandom(2)
/// does not fail for small reads on Linux 3.17 and later), the bytes come from
/// std's per-process random hash keys mixed with the time: unpredictable enough
/// for ids, which are not secrets.
pub(crate) fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_ok() {
        return;
    }
    use std::hash::BuildHasher;
    let seed = std::collections::hash_map::RandomState::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let v = seed.hash_one((now, i)).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A random 64-bit number (see [`fill`]).
pub(crate) fn u64() -> u64 {
    let mut b = [0u8; 8];
    fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() {
        let a: Vec<u64> = (0..8).map(|_| super::u64()).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(a.len(), b.len(), "{a:?}");
        let mut buf = [0u8; 33];
        super::fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
