//! The HTTP/1.1 WebSocket handshake (RFC 6455 §4) a front end sends to the backend for a
//! WebSocket its client opened another way (an extended CONNECT over HTTP/2 or HTTP/3), and the
//! check of the backend's answer: our key, and the `Sec-WebSocket-Accept` it calls for.

use http::header::{self, HeaderMap, HeaderValue};

use crate::wire::response::ResponseHead;

/// Turns an extended CONNECT's fields (already prepared for the backend) into the HTTP/1.1
/// handshake HTTP/2 leaves out (RFC 8441 §5, RFC 9220 §3), and returns the key it sends: the backend answers
/// our key, and its answer to it is ours to check, not the client's.
pub(crate) fn as_upgrade(headers: &mut HeaderMap) -> String {
    headers.remove(header::CONNECTION);
    headers.remove(header::SEC_WEBSOCKET_KEY);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let key = handshake_key();
    if let Ok(value) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, value);
    }
    key
}

/// Whether the backend's answer opens the WebSocket asked for with `key`: a 101 to `websocket`
/// whose `Sec-WebSocket-Accept` is the one `key` calls for (RFC 6455 §4.2.2), which proves the
/// backend read our handshake rather than answering something else with a 101.
pub(crate) fn is_accepted(head: &ResponseHead, buf: &[u8], key: &str) -> bool {
    let upgrade = head.upgrade(buf);
    if head.status != 101 || !upgrade.is_some_and(|u| u.eq_ignore_ascii_case(b"websocket")) {
        return false;
    }
    let expected = accept_for(key);
    let mut accepts = head.fields.iter().filter(|field| {
        field
            .name(buf)
            .eq_ignore_ascii_case(header::SEC_WEBSOCKET_ACCEPT.as_str().as_bytes())
    });
    // One field, with exactly the value: two could be read two ways.
    match (accepts.next(), accepts.next()) {
        (Some(field), None) => field.value(buf) == expected.as_bytes(),
        _ => false,
    }
}

/// The `Sec-WebSocket-Accept` a server answers `key` with: base64 of the SHA-1 of the key and
/// the protocol's GUID (RFC 6455 §4.2.2).
fn accept_for(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut context =
        crate::crypto::digest::Context::new(&crate::crypto::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(GUID.as_bytes());
    base64(context.finish().as_ref())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1).
fn handshake_key() -> String {
    let bytes: [u8; 16] = rand::random();
    base64(&bytes)
}

/// `bytes` in base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut key = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                key.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                key.push('=');
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_keys_are_sixteen_random_bytes_in_base64() {
        let key = handshake_key();
        assert_eq!(key.len(), 24, "{key}");
        assert!(key.ends_with("=="), "{key}");
        assert!(key[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_ne!(key, handshake_key());
    }

    #[test]
    fn the_accept_value_is_the_one_of_rfc_6455() {
        // RFC 6455 §1.3's example.
        let accept = accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
