//! Byte buffers, lent to a connection only while bytes are moving, in a few sizes.
//!
//! An idle keep-alive connection holds no buffer (hyper's hold 16 KiB each, which is most of a
//! connection's memory). A busy one holds buffers sized for what moves: a request head starts
//! in `HEAD` bytes and an answer in `ANSWER` (nginx's 1 KiB client head buffer and 4–8 KiB
//! proxy buffer are the yardstick), and a buffer grows only when a read fills it, so a long
//! head or body gets room and a short exchange stays small. The worker keeps a few returned
//! buffers of each size warm so a busy connection does not go to the allocator per request.

use std::cell::RefCell;

/// Where a request head starts: most heads fit, a longer one grows the buffer.
pub(crate) const HEAD: usize = 2 * 1024;
/// Where a backend's answer starts (its head and its first body bytes): one page, as nginx's
/// `proxy_buffer_size`.
pub(crate) const ANSWER: usize = 4 * 1024;
/// Room for what a proxy adds to a head it rewrites (`X-Forwarded-*`, `Connection`, the
/// X-Debug fields, a sticky `Set-Cookie`), on top of the bytes it copies.
pub(crate) const FIELDS: usize = 512;
/// The largest size kept, and where reads of a long body stop growing.
pub(crate) const LARGE: usize = 16 * 1024;

/// The sizes kept, smallest first: each a power of two, `HEAD` to `LARGE`.
const CLASSES: usize = (LARGE / HEAD).trailing_zeros() as usize + 1;
/// Bytes kept for reuse per size and worker (a few dozen buffers of each); more are freed, so
/// a burst does not stay resident once it passed.
const KEPT_BYTES: usize = 256 * 1024;

thread_local! {
    static FREE: RefCell<[Vec<Vec<u8>>; CLASSES]> = const { RefCell::new([const { Vec::new() }; CLASSES]) };
}

/// The size class a buffer of `capacity` bytes can serve: the largest size not above it.
fn class_of(capacity: usize) -> Option<usize> {
    if capacity < HEAD {
        return None;
    }
    let class = (capacity / HEAD).ilog2() as usize;
    Some(class.min(CLASSES - 1))
}

/// The capacity of size class `class`.
fn size_of_class(class: usize) -> usize {
    HEAD << class
}

/// An empty buffer with room for at least `bytes` bytes: a kept one of the smallest size that
/// fits, or a new one of that size. Beyond `LARGE`, exactly `bytes`.
pub(crate) fn take(bytes: usize) -> Vec<u8> {
    let class = (0..CLASSES).find(|&class| size_of_class(class) >= bytes);
    let Some(class) = class else {
        return Vec::with_capacity(bytes);
    };
    FREE.with_borrow_mut(|free| free[class].pop())
        .unwrap_or_else(|| Vec::with_capacity(size_of_class(class)))
}

/// Gives `buf` back (what it held is dropped); one that grew past twice `LARGE` (a long head,
/// a replayed body) is freed, so the kept ones stay small.
pub(crate) fn give_back(mut buf: Vec<u8>) {
    if buf.capacity() > LARGE * 2 {
        return;
    }
    let Some(class) = class_of(buf.capacity()) else {
        return;
    };
    buf.clear();
    FREE.with_borrow_mut(|free| {
        let kept = &mut free[class];
        if kept.len() * size_of_class(class) < KEPT_BYTES {
            kept.push(buf);
        }
    });
}

/// Makes room for one more read into `buf` (which may hold unread bytes): a buffer less than a
/// quarter free doubles, so a head or body longer than the buffer still reads in a few calls.
pub(crate) fn reserve_read(buf: &mut Vec<u8>) {
    let spare = buf.capacity() - buf.len();
    let capacity = buf.capacity().max(HEAD);
    if spare < capacity / 4 {
        buf.reserve(capacity);
    }
}

/// Makes room for the next read of a body streaming through `buf`, whose bytes are passed on
/// as they come: the buffer doubles, up to `LARGE`, when the last read filled the room it had
/// (`filled`), so a long body moves in large reads while a short exchange keeps a small
/// buffer.
pub(crate) fn reserve_stream_read(buf: &mut Vec<u8>, filled: bool) {
    if filled && buf.capacity() < LARGE {
        buf.reserve((buf.capacity() * 2).clamp(HEAD, LARGE));
    }
    reserve_read(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_empty_by_size_and_big_ones_are_not_kept() {
        let mut buf = take(100);
        assert!(buf.capacity() >= HEAD && buf.capacity() < ANSWER && buf.is_empty());
        buf.extend_from_slice(b"data");
        let pointer = buf.as_ptr();
        give_back(buf);
        // A larger size does not get the small one; the small size does.
        let answer = take(ANSWER);
        assert!(answer.capacity() >= ANSWER);
        assert_ne!(answer.as_ptr(), pointer);
        let again = take(HEAD);
        assert_eq!((again.as_ptr(), again.len()), (pointer, 0));
        let mut big = Vec::with_capacity(LARGE * 4);
        big.push(1);
        give_back(big);
        give_back(again);
        give_back(answer);
        assert!(take(LARGE).capacity() <= LARGE * 2);
    }

    #[test]
    fn a_buffer_grown_by_reads_goes_back_to_the_size_it_can_serve() {
        let mut buf = take(HEAD);
        buf.resize(HEAD, b'x');
        reserve_read(&mut buf);
        assert!(buf.capacity() >= 2 * HEAD);
        let pointer = buf.as_ptr();
        give_back(buf);
        let grown = take(2 * HEAD);
        assert_eq!(grown.as_ptr(), pointer);
    }

    #[test]
    fn a_streamed_read_grows_only_after_a_read_filled_the_buffer() {
        let mut buf = take(ANSWER);
        let start = buf.capacity();
        reserve_stream_read(&mut buf, false);
        assert_eq!(buf.capacity(), start);
        for _ in 0..8 {
            reserve_stream_read(&mut buf, true);
        }
        assert!(buf.capacity() >= LARGE && buf.capacity() < LARGE * 2);
    }

    #[test]
    fn the_free_list_keeps_a_bounded_number_of_bytes() {
        let many: Vec<_> = (0..1000).map(|_| take(LARGE)).collect();
        many.into_iter().for_each(give_back);
        let kept = FREE.with_borrow(|free| free[CLASSES - 1].len());
        assert_eq!(kept, KEPT_BYTES / LARGE);
    }
}
