//! `server.stickySessions`: the `hipache_backend` cookie that keeps a client on one backend.
//!
//! Its value is a token, not an address: the first 128 bits of HMAC-SHA256 over the request
//! host and the backend's URL, keyed by the node's secret (`server.stickySecret`, or one drawn
//! at random by the master and shared by its workers). A token is only ever resolved against
//! the backends the frontend lists now, by computing theirs: whatever a client writes into its
//! cookie, the worst it gets is a backend the frontend would have picked anyway, and without the
//! key nobody can tell which address a token stands for. Stale tokens (a backend removed, a
//! new secret) simply match nothing, and the client gets a fresh pick and a new cookie.

use crate::crypto::hmac;

use crate::routes::{Backend, BackendUrl};

/// The cookie's name.
pub(crate) const COOKIE_NAME: &str = "hipache_backend";
const TOKEN_BYTES: usize = 16;

/// What a `hipache_backend` cookie carries.
pub(crate) type Token = [u8; TOKEN_BYTES];

/// The node's key for tokens.
#[derive(Clone)]
pub(crate) struct StickyKey(hmac::Key);

impl StickyKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn token(&self, host: &str, url: &BackendUrl) -> Token {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(host.as_bytes());
        // A separator, so that no host/URL pair reads as another.
        context.update(&[0]);
        context.update(url.as_str().as_bytes());
        let tag = context.sign();
        let mut token = [0u8; TOKEN_BYTES];
        token.copy_from_slice(&tag.as_ref()[..TOKEN_BYTES]);
        token
    }

    /// The index of the backend of `backends` that `token` names for `host`, if any. A plain
    /// comparison is enough: a client learns nothing from timing it could not read in the
    /// cookie it was given, and no token can name a backend that is not listed.
    pub(crate) fn backend_of(
        &self,
        token: &Token,
        host: &str,
        backends: &[Backend],
    ) -> Option<usize> {
        backends
            .iter()
            .find(|backend| self.token(host, &backend.url) == *token)
            .map(|backend| backend.index)
    }

    /// The `Set-Cookie` value that sends `host`'s later requests to `url`.
    pub(crate) fn set_cookie(&self, host: &str, url: &BackendUrl) -> String {
        let mut value = format!("{COOKIE_NAME}=");
        for byte in self.token(host, url) {
            value.push_str(&format!("{byte:02x}"));
        }
        value.push_str("; Path=/; HttpOnly");
        value
    }
}

/// The first well-formed `hipache_backend` token among the request's `Cookie` values.
pub(crate) fn token_in<'a>(cookie_values: impl IntoIterator<Item = &'a [u8]>) -> Option<Token> {
    cookie_values
        .into_iter()
        .flat_map(|value| value.split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let (name, value) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (name == COOKIE_NAME.as_bytes()).then(|| decode(&value[1..]))?
        })
        .next()
}

fn decode(hex: &[u8]) -> Option<Token> {
    let hex = hex
        .strip_prefix(b"\"")
        .and_then(|h| h.strip_suffix(b"\""))
        .unwrap_or(hex);
    if hex.len() != TOKEN_BYTES * 2 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut token = [0u8; TOKEN_BYTES];
    for (byte, pair) in token.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(urls: &[&str]) -> Vec<Backend> {
        urls.iter()
            .enumerate()
            .map(|(index, url)| Backend {
                index,
                url: BackendUrl::parse(url).unwrap(),
            })
            .collect()
    }

    fn cookie_token(set_cookie: &str) -> Token {
        let pair = set_cookie.split(';').next().unwrap();
        token_in([pair.as_bytes()]).unwrap()
    }

    #[test]
    fn a_cookie_names_its_backend_and_hides_the_address() {
        let key = StickyKey::new(b"secret");
        let list = backends(&["http://10.0.0.1:8080", "http://10.0.0.2:8080"]);
        let set = key.set_cookie("a.test", &list[1].url);
        assert!(set.starts_with("hipache_backend="), "{set}");
        assert!(set.ends_with("; Path=/; HttpOnly"), "{set}");
        assert!(!set.contains("10.0.0") && !set.contains("8080"), "{set}");
        let token = cookie_token(&set);
        assert_eq!(key.backend_of(&token, "a.test", &list), Some(1));
        // Another host, another key, or a backend no longer listed: no match.
        assert_eq!(key.backend_of(&token, "b.test", &list), None);
        assert_eq!(
            StickyKey::new(b"other").backend_of(&token, "a.test", &list),
            None
        );
        assert_eq!(key.backend_of(&token, "a.test", &list[..1]), None);
    }

    #[test]
    fn the_token_is_found_among_other_cookies_and_garbage_is_ignored() {
        let token = [0xab; TOKEN_BYTES];
        let hex = "ab".repeat(TOKEN_BYTES);
        let header = format!("a=1; hipache_backend={hex}; b=2");
        assert_eq!(token_in([header.as_bytes()]), Some(token));
        let quoted = format!("hipache_backend=\"{hex}\"");
        assert_eq!(token_in([&b"x=y"[..], quoted.as_bytes()]), Some(token));
        assert_eq!(token_in([&b"hipache_backend=zz"[..]]), None);
        assert_eq!(token_in([&b"hipache_backend=abab"[..]]), None);
        assert_eq!(token_in([&b"other_hipache_backend=1"[..], b"; ;="]), None);
        assert_eq!(token_in(std::iter::empty()), None);
    }
}
