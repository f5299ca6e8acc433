//! TLS session tickets that every worker of a node can open: a client that resumes lands on
//! any worker (they share the listening socket), so a key of one worker's own would make
//! resumption a coin toss with two workers.
//!
//! Keys are derived, not exchanged: each worker derives the key of a 12-hour epoch from the
//! node's secret (which the master hands every worker it starts) with HKDF, so workers started
//! at different times, and across reloads, agree without a word. A ticket is sealed with the
//! current epoch's key and opened with the current or the previous one, so it lives 12 to 24
//! hours. As with nginx's default ticket key, whoever learns the node's secret can open the
//! tickets of this master's lifetime; `server.stickySecret` does not feed it.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::crypto::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use crate::crypto::hkdf;
use rustls::server::ProducesTickets;

/// How long one key seals new tickets.
const EPOCH_SECS: u64 = 12 * 60 * 60;
/// What the HKDF expansion is for: no other key derived from the node's secret can equal it.
const LABEL: &[u8] = b"hipache tls session ticket key";
/// A ticket: the epoch (big-endian), the nonce, then the sealed session and its tag.
const EPOCH_LEN: usize = 8;

/// Seals and opens session tickets with keys derived from the node's secret.
pub(crate) struct Tickets {
    secret: hkdf::Prk,
    /// The current epoch's key, derived once per epoch rather than per ticket.
    current: Mutex<Option<(u64, LessSafeKey)>>,
}

impl Tickets {
    pub(crate) fn new(node_secret: &[u8]) -> Self {
        Self {
            secret: hkdf::Salt::new(hkdf::HKDF_SHA256, LABEL).extract(node_secret),
            current: Mutex::new(None),
        }
    }

    fn key(&self, epoch: u64) -> LessSafeKey {
        let info = epoch.to_be_bytes();
        let info = [&info[..]];
        // AES-256-GCM's key length is what `expand` is asked for, and HKDF-SHA256 can give up
        // to 8,160 bytes: neither step can fail.
        let mut bytes = [0u8; 32];
        let unbound = self
            .secret
            .expand(&info, &aead::AES_256_GCM)
            .and_then(|okm| okm.fill(&mut bytes))
            .and_then(|()| UnboundKey::new(&aead::AES_256_GCM, &bytes));
        bytes.fill(0);
        match unbound {
            Ok(key) => LessSafeKey::new(key),
            Err(_) => unreachable!("HKDF-SHA256 gives 32 bytes, and AES-256-GCM takes them"),
        }
    }

    fn seal_at(&self, epoch: u64, plain: &[u8]) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut ticket = Vec::with_capacity(EPOCH_LEN + NONCE_LEN + plain.len() + 16);
        ticket.extend_from_slice(&epoch.to_be_bytes());
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        let aad = Aad::from(epoch.to_be_bytes());
        let nonce = Nonce::assume_unique_for_key(nonce);
        let mut current = self.current.lock().ok()?;
        let key = match &mut *current {
            Some((known, key)) if *known == epoch => key,
            slot => &slot.insert((epoch, self.key(epoch))).1,
        };
        key.seal_in_place_append_tag(nonce, aad, &mut sealed).ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn open_at(&self, now: u64, ticket: &[u8]) -> Option<Vec<u8>> {
        let (epoch, rest) = ticket.split_first_chunk::<EPOCH_LEN>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let epoch = u64::from_be_bytes(*epoch);
        if epoch != now && epoch.checked_add(1) != Some(now) {
            return None;
        }
        let key = self.key(epoch);
        let mut plain = sealed.to_vec();
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let aad = Aad::from(epoch.to_be_bytes());
        let len = key.open_in_place(nonce, aad, &mut plain).ok()?.len();
        plain.truncate(len);
        Some(plain)
    }
}

fn epoch_now() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |elapsed| elapsed.as_secs() / EPOCH_SECS)
}

impl ProducesTickets for Tickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        EPOCH_SECS as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(epoch_now(), plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(epoch_now(), cipher)
    }
}

impl fmt::Debug for Tickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tickets { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_from_one_worker_opens_at_another_of_the_same_node_only() {
        let (one, other) = (Tickets::new(b"node secret"), Tickets::new(b"node secret"));
        let ticket = one.seal_at(100, b"session state").unwrap();
        assert_eq!(other.open_at(100, &ticket).unwrap(), b"session state");
        assert!(
            !ticket.windows(7).any(|w| w == b"session"),
            "sealed in clear"
        );
        let stranger = Tickets::new(b"another node");
        assert_eq!(stranger.open_at(100, &ticket), None);
    }

    #[test]
    fn a_ticket_lives_through_the_next_epoch_and_no_longer() {
        let tickets = Tickets::new(b"s");
        let ticket = tickets.seal_at(7, b"state").unwrap();
        assert!(tickets.open_at(7, &ticket).is_some());
        assert!(tickets.open_at(8, &ticket).is_some());
        assert_eq!(tickets.open_at(9, &ticket), None);
        assert_eq!(tickets.open_at(6, &ticket), None, "from the future");
    }

    #[test]
    fn altered_or_short_tickets_do_not_open() {
        let tickets = Tickets::new(b"s");
        let ticket = tickets.seal_at(1, b"state").unwrap();
        for i in 0..ticket.len() {
            let mut altered = ticket.clone();
            altered[i] ^= 1;
            assert_eq!(tickets.open_at(1, &altered), None, "byte {i}");
        }
        for len in 0..ticket.len() {
            assert_eq!(tickets.open_at(1, &ticket[..len]), None);
        }
        assert_eq!(tickets.open_at(u64::MAX, &[0xff; 40]), None);
    }
}
