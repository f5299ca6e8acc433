//! The host cache's index (pure): slot numbers in an open-addressed table with linear probing,
//! each stored beside 32 bits of its host's hash.
//!
//! Why not a general hash map: with a million hosts every lookup is a cache miss at each
//! dependent step, and on a busy machine a miss costs far more than the hashing. A `hashbrown`
//! table of slot numbers reads a control byte, then the slot number stored elsewhere, then the
//! slot; here one 8-byte entry holds both the hash bits that rule out other hosts and the slot
//! number, so a lookup reads one line of the table and then only the slot it names. The probe
//! start is derived from the stored bits, so growing and deleting (backward shift, no tombstones)
//! never need a host's name.

/// An empty entry. A real one never equals it: slot numbers stay below `u32::MAX`.
const EMPTY: u64 = u64::MAX;
const MIN_ENTRIES: usize = 16;

pub(crate) struct HostIndex {
    entries: Vec<u64>,
    len: usize,
}

impl HostIndex {
    /// Most slots an index can number.
    pub(crate) const MAX_SLOTS: usize = u32::MAX as usize;

    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes of its table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
    }

    /// The slot of the host whose hash is `hash` and for which `is_host` says yes.
    pub(crate) fn find(&self, hash: u64, is_host: impl Fn(u32) -> bool) -> Option<u32> {
        let tag = tag(hash);
        let mut at = self.home(tag)?;
        loop {
            let entry = self.entries[at];
            if entry == EMPTY {
                return None;
            }
            if entry_tag(entry) == tag && is_host(entry_slot(entry)) {
                return Some(entry_slot(entry));
            }
            at = self.next(at);
        }
    }

    /// Adds `slot` for a host of hash `hash` that is not in the index yet.
    pub(crate) fn insert(&mut self, hash: u64, slot: u32) {
        debug_assert!((slot as usize) < Self::MAX_SLOTS);
        // At most 5/8 full: linear probes stay short.
        if (self.len + 1) * 8 > self.entries.len() * 5 {
            self.grow();
        }
        self.place(u64::from(tag(hash)) << 32 | u64::from(slot));
        self.len += 1;
    }

    /// Removes `slot`, indexed under `hash`; nothing if it is not there.
    pub(crate) fn remove(&mut self, hash: u64, slot: u32) {
        let tag = tag(hash);
        let Some(mut at) = self.home(tag) else {
            return;
        };
        loop {
            let entry = self.entries[at];
            if entry == EMPTY {
                return;
            }
            if entry_slot(entry) == slot && entry_tag(entry) == tag {
                break;
            }
            at = self.next(at);
        }
        // Backward shift: pull later entries of the run into the hole when their probe start
        // does not lie between the hole and them, so every probe still reaches its entry.
        let mask = self.entries.len() - 1;
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & mask;
            let entry = self.entries[next];
            if entry == EMPTY {
                break;
            }
            let home = self.start(entry_tag(entry));
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.entries[hole] = entry;
                hole = next;
            }
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
    }

    fn grow(&mut self) {
        let size = (self.entries.len() * 2).max(MIN_ENTRIES);
        let old = std::mem::replace(&mut self.entries, vec![EMPTY; size]);
        for entry in old.into_iter().filter(|&e| e != EMPTY) {
            self.place(entry);
        }
    }

    fn place(&mut self, entry: u64) {
        let mut at = self.start(entry_tag(entry));
        while self.entries[at] != EMPTY {
            at = self.next(at);
        }
        self.entries[at] = entry;
    }

    fn home(&self, tag: u32) -> Option<usize> {
        (!self.entries.is_empty()).then(|| self.start(tag))
    }

    /// Where the probe for `tag` starts: Fibonacci hashing of the tag, so entries that start
    /// at the same place still differ in all their tag bits. The table is never empty here.
    fn start(&self, tag: u32) -> usize {
        let bits = self.entries.len().trailing_zeros();
        (u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn next(&self, at: usize) -> usize {
        (at + 1) & (self.entries.len() - 1)
    }
}

fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

fn entry_tag(entry: u64) -> u32 {
    (entry >> 32) as u32
}

fn entry_slot(entry: u64) -> u32 {
    entry as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Hashes whose top 32 bits collide often (few distinct tags), to exercise long runs,
    /// wrap-around and backward shifts.
    fn hash_of(key: u64) -> u64 {
        ((key % 97) << 32) | key
    }

    #[test]
    fn finds_what_was_inserted_and_nothing_removed_under_heavy_collisions() {
        let mut index = HostIndex::new();
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x: u64 = 1;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let key = (x >> 33) % 600;
            match model.get(&key) {
                Some(&slot) if step % 3 != 0 => {
                    index.remove(hash_of(key), slot);
                    model.remove(&key);
                }
                Some(_) => {}
                None => {
                    index.insert(hash_of(key), step);
                    model.insert(key, step);
                }
            }
            assert_eq!(index.len(), model.len());
            if step % 500 == 0 {
                for key in 0..600 {
                    let found = index.find(hash_of(key), |slot| model.get(&key) == Some(&slot));
                    assert_eq!(found, model.get(&key).copied(), "key {key} at step {step}");
                }
            }
        }
        // Removing what is not there changes nothing.
        index.remove(hash_of(601), 7);
        assert_eq!(index.len(), model.len());
        assert_eq!(HostIndex::new().find(1, |_| true), None);
    }
}
