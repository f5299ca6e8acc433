//! Read buffers, lent to a connection only while it has a request in hand.
//!
//! An idle keep-alive connection holds no buffer (hyper's hold 16 KiB each, which is most of a
//! connection's memory); the worker keeps a few returned ones warm so a busy connection does not
//! go to the allocator for every request.

use std::cell::RefCell;

/// Capacity of a lent buffer: a whole head, or a good slice of a body, per read.
pub(crate) const SIZE: usize = 16 * 1024;
/// Buffers kept for reuse per worker; more are freed.
const KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `SIZE` bytes.
pub(crate) fn take() -> Vec<u8> {
    FREE.with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(SIZE))
}

/// Gives `buf` back; one that grew past `SIZE` (a long head, a replayed body) is freed, so the
/// kept ones stay small.
pub(crate) fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() < SIZE || buf.capacity() > SIZE * 2 {
        return;
    }
    buf.clear();
    FREE.with_borrow_mut(|free| {
        if free.len() < KEPT {
            free.push(buf);
        }
    });
}

/// Makes room for one more read of at least `SIZE / 4` bytes.
pub(crate) fn reserve_read(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() < SIZE / 4 {
        buf.reserve(SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty_and_big_ones_are_not_kept() {
        let mut buf = take();
        assert!(buf.capacity() >= SIZE && buf.is_empty());
        buf.extend_from_slice(b"data");
        let pointer = buf.as_ptr();
        give_back(buf);
        let again = take();
        assert_eq!((again.as_ptr(), again.len()), (pointer, 0));
        let mut big = Vec::with_capacity(SIZE * 4);
        big.push(1);
        give_back(big);
        give_back(again);
        assert!(take().capacity() <= SIZE * 2);
    }
}
