//! The per-worker lookup cache (pure): host → its last answer, at most `capacity` hosts, evicted
//! by CLOCK (second chance), each entry a host name plus a shared [`Template`].
//!
//! One store serves two uses. A *fresh* entry answers lookups without Redis; any entry, fresh or
//! not, is the stale-if-error answer while Redis is unreachable. Freshness is a generation: an
//! entry is fresh while its generation is the cache's. A change to a key the answer was read from
//! makes the entries it touches stale; losing or regaining tracking makes every entry stale in
//! one step, so nothing cached before an outage can hide a change made during it.
//!
//! A host's answer depends on `frontend:<c>` for each of its candidates `c` (the host, its
//! wildcards, `*`) and on `dead:<host>`, all under the driver prefix. So no reverse index is
//! needed: the changed key itself says which hosts to touch. `dead:<h>` and `frontend:<h>` touch
//! `h`; `frontend:*.<suffix>` touches every host ending in `.<suffix>` (a superset of those whose
//! candidates hold it: one pass over the entries, for a rare write); `frontend:*` and any key not
//! understood touch everything.
//!
//! Layout: the entries live in one `Vec` of slots (the CLOCK ring), one cache line each with the
//! host's name inside it when short (most are), and the index is a [`HostIndex`] of slot numbers,
//! so a host is stored once. With a million hosts a hit is a cache miss at every dependent read,
//! so the layout keeps them to two: the index entry, then the slot (a `hashbrown` index of slot
//! numbers over slots holding a boxed name took four: control byte, slot number, slot, name).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::footprint::{self, Footprint};
use super::super::{DEAD_PREFIX, FRONTEND_PREFIX, STATE_PREFIX};
use super::host_index::HostIndex;
use super::intern::{Interner, Template};
use super::Answer;

/// The generation of an entry made stale on its own; the cache's generation is never this.
const STALE: u32 = 0;

pub(crate) struct HostCache {
    index: HostIndex,
    slots: Vec<Slot>,
    hasher: RandomState,
    capacity: usize,
    /// The CLOCK hand: the next slot considered for eviction.
    hand: usize,
    generation: u32,
    /// Longest an answer is served from the cache (`server.lruCache.ttl`), if any.
    max_age: Option<Duration>,
    /// Expiry times are stored as milliseconds after this instant.
    origin: Instant,
    templates: Interner,
    /// Bytes of the host names too long for their slot, each with malloc's overhead.
    boxed_bytes: usize,
    /// Where the cache's bytes are published for the memory watchdog.
    footprint: Footprint,
    frontend_prefix: String,
    dead_prefix: String,
    state_prefix: String,
}

/// One cache line (on x86-64), so a hit reads one line of the ring.
#[repr(align(64))]
struct Slot {
    host: HostName,
    /// `None`: no frontend matched this host.
    answer: Option<Arc<Template>>,
    /// Milliseconds after `origin` when the answer stops being fresh; 0: never.
    expires_ms: u64,
    generation: u32,
    /// Set by a hit; the CLOCK hand spares a referenced slot once, clearing the bit.
    referenced: bool,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

/// Longest host name kept inside its slot; longer ones are boxed.
const INLINE: usize = 38;

/// A host name, inside the slot when it fits, so comparing it reads no other memory.
enum HostName {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<[u8]>),
}

impl HostName {
    fn new(host: &str) -> Self {
        let name = host.as_bytes();
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..name.len()].copy_from_slice(name);
                Self::Inline { len, bytes }
            }
            _ => Self::Boxed(name.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Boxed(name) => name,
        }
    }

    /// The bytes it holds outside its slot.
    fn boxed_bytes(&self) -> usize {
        match self {
            Self::Inline { .. } => 0,
            Self::Boxed(name) => footprint::block(name.len()),
        }
    }
}

impl HostCache {
    /// An empty cache for keys under the driver `prefix`, holding at most `capacity` hosts (0:
    /// cache nothing), each answer served at most `max_age` when given; its bytes are published
    /// in `footprint`.
    pub(crate) fn new(
        prefix: &str,
        capacity: usize,
        max_age: Option<Duration>,
        footprint: Footprint,
    ) -> Self {
        Self {
            index: HostIndex::new(),
            slots: Vec::new(),
            hasher: RandomState::new(),
            capacity: capacity.min(HostIndex::MAX_SLOTS),
            hand: 0,
            generation: STALE + 1,
            max_age,
            origin: Instant::now(),
            templates: Interner::default(),
            boxed_bytes: 0,
            footprint,
            frontend_prefix: format!("{prefix}{FRONTEND_PREFIX}"),
            dead_prefix: format!("{prefix}{DEAD_PREFIX}"),
            state_prefix: format!("{prefix}{STATE_PREFIX}"),
        }
    }

    /// The fresh answer for `host` at `now`, if any (`Some(None)`: fresh "no frontend").
    pub(crate) fn get(&mut self, host: &str, now: Instant) -> Option<Option<Answer>> {
        let at = self.find(host)?;
        let expired = {
            let slot = &self.slots[at];
            slot.expires_ms != 0 && slot.expires_ms <= self.millis(now)
        };
        let generation = self.generation;
        let slot = &mut self.slots[at];
        if slot.generation != generation {
            return None;
        }
        if expired {
            slot.generation = STALE;
            return None;
        }
        slot.referenced = true;
        Some(slot.answer.as_ref().map(|t| t.answer(host)))
    }

    /// The last answer known for `host`, fresh or not: what to serve while Redis is unreachable.
    pub(crate) fn last_known(&self, host: &str) -> Option<Option<Answer>> {
        let slot = &self.slots[self.find(host)?];
        Some(slot.answer.as_ref().map(|t| t.answer(host)))
    }

    /// Records `answer` for `host`: fresh (valid until `expires`) when `fresh`, otherwise only
    /// as its last known answer.
    pub(crate) fn insert(
        &mut self,
        host: &str,
        answer: &Option<Answer>,
        fresh: bool,
        expires: Option<Instant>,
        now: Instant,
    ) {
        if self.capacity == 0 {
            return;
        }
        let expires = match (expires, self.max_age.map(|age| now + age)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_ms = expires.map_or(0, |at| self.millis(at).max(1));
        let answer = answer.as_ref().map(|a| self.templates.intern(host, a));
        let generation = if fresh { self.generation } else { STALE };
        if let Some(at) = self.find(host) {
            let slot = &mut self.slots[at];
            (slot.answer, slot.expires_ms, slot.generation) = (answer, expires_ms, generation);
            return;
        }
        let slot = Slot {
            host: HostName::new(host),
            answer,
            expires_ms,
            generation,
            referenced: false,
        };
        self.boxed_bytes += slot.host.boxed_bytes();
        let at = if self.slots.len() < self.capacity {
            if self.slots.len() == self.slots.capacity() {
                // Doubling, but never past the capacity the ring will have.
                let more = self
                    .slots
                    .len()
                    .max(16)
                    .min(self.capacity - self.slots.len());
                self.slots.reserve_exact(more);
            }
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let at = self.victim();
            self.unindex(at);
            self.boxed_bytes -= self.slots[at].host.boxed_bytes();
            self.slots[at] = slot;
            at
        };
        self.index.insert(self.hash(host.as_bytes()), at as u32);
        self.footprint.set(self.heap_bytes());
    }

    /// The bytes the cache holds, as it accounts them: its slots in use, its index, the names
    /// too long for a slot and the shared answers. What a cached host costs is this divided by
    /// the hosts held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
            + self.index.heap_bytes()
            + self.boxed_bytes
            + self.templates.heap_bytes()
    }

    /// Makes stale every answer that depended on the Redis key `key` (prefix included).
    pub(crate) fn invalidate(&mut self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return self.make_all_stale();
        };
        if let Some(host) =
            (key.strip_prefix(&self.dead_prefix)).or_else(|| key.strip_prefix(&self.state_prefix))
        {
            self.make_stale(host);
        } else if let Some(name) = key.strip_prefix(&self.frontend_prefix) {
            if name == "*" {
                self.make_all_stale();
            } else if let Some(suffix) = name.strip_prefix('*') {
                // `suffix` starts with `.`: hosts below it, and a host literally named `name`.
                for slot in &mut self.slots {
                    let host = slot.host.as_bytes();
                    if host == name.as_bytes() || host.ends_with(suffix.as_bytes()) {
                        slot.generation = STALE;
                    }
                }
            } else {
                self.make_stale(name);
            }
        } else {
            self.make_all_stale();
        }
    }

    /// Every entry stops being fresh; all stay as last known answers.
    pub(crate) fn make_all_stale(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == STALE {
            // After 2^32 steps an old entry could carry the new generation: reset them all.
            self.slots.iter_mut().for_each(|s| s.generation = STALE);
            self.generation = STALE + 1;
        }
    }

    /// Up to `limit` hosts held, those hit since the CLOCK hand last passed first: what a new
    /// worker is handed to look up before its clients ask.
    pub(crate) fn hosts(&self, limit: usize) -> Vec<String> {
        let (hit, rest): (Vec<&Slot>, Vec<&Slot>) = self.slots.iter().partition(|s| s.referenced);
        (hit.into_iter().chain(rest))
            .take(limit)
            .filter_map(|slot| std::str::from_utf8(slot.host.as_bytes()).ok())
            .map(str::to_owned)
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    fn make_stale(&mut self, host: &str) {
        if let Some(at) = self.find(host) {
            self.slots[at].generation = STALE;
        }
    }

    fn find(&self, host: &str) -> Option<usize> {
        let host = host.as_bytes();
        let slots = &self.slots;
        let at = self.index.find(self.hash(host), |i| {
            slots[i as usize].host.as_bytes() == host
        })?;
        Some(at as usize)
    }

    fn hash(&self, host: &[u8]) -> u64 {
        self.hasher.hash_one(host)
    }

    /// The slot to reuse: the first under the hand not referenced since the hand last passed.
    fn victim(&mut self) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let slot = &mut self.slots[at];
            if !std::mem::take(&mut slot.referenced) {
                return at;
            }
        }
    }

    fn unindex(&mut self, at: usize) {
        let hash = self.hash(self.slots[at].host.as_bytes());
        self.index.remove(hash, at as u32);
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }
}
