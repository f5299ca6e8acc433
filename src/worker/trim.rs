//! Handing memory freed after a burst back to the kernel.
//!
//! Two allocators hold a worker's heap: mimalloc, the global allocator (every allocation of
//! ours and of the Rust crates), and glibc's malloc, which the C libraries linked in still call
//! (aws-lc's TLS state, for one).
//!
//! mimalloc (its v2 line) gives a page back (purges it: `MADV_DONTNEED`) once it has been free
//! for its purge delay, but only when it next works on the 32 MiB segment holding it, or on a
//! forced collection: an empty page goes back to its segment when the thread's heap is next
//! collected, and the segment's free spans are purged when that segment is next used. After a
//! burst, the segments also hold pages still in use (whatever was allocated meanwhile), so they
//! stay, and a worker that goes quiet, or whose traffic lands in other segments, would keep all
//! it grew to. So every [`INTERVAL`] the worker forces a collection (`mi_collect(true)`): its
//! thread's empty pages go back to their segments and every free span to the kernel. What that
//! costs a busy worker: the spans freed in the last interval that its next requests would have
//! reused are faulted in again, a few pages every 5 s; the collection itself walks the thread's
//! pages once.
//!
//! glibc's malloc keeps what it freed inside its heap, where it still counts as resident (it
//! only returns the top of the heap), so it is trimmed (`malloc_trim`) when it holds a few
//! mebibytes free. What this saves and costs is measured in the benchmark record
//! (benches/README.md, "The allocator", and the "once they have closed" rows).

use std::time::Duration;

/// How often the worker gives back what its allocators hold free.
pub(crate) const INTERVAL: Duration = Duration::from_secs(5);
/// Free bytes inside glibc's heap worth a trim: below this, the few dozen pages are left for
/// the next allocations (a trim walks the whole heap, and each page given back costs a fault
/// when reused).
const WORTH_TRIMMING: usize = 4 << 20;

/// Whether `free` bytes held by glibc's malloc are worth a trim (pure).
pub(crate) fn worth_trimming(free: usize) -> bool {
    free >= WORTH_TRIMMING
}

/// Gives back the free pages of both allocators: all of mimalloc's (the calling thread's heap,
/// its segments and the arenas), glibc's when it holds enough of them. Returns how far the
/// resident set went down: mimalloc's own count of what it has committed does not go down when
/// it purges on Linux (`MADV_DONTNEED` leaves the range usable), so the RSS is what tells.
pub(crate) fn give_back() -> u64 {
    let before = super::watchdog::rss_bytes();
    mi_collect_forced();
    if let Some(malloc) = malloc_bytes() {
        if worth_trimming(malloc.free) {
            malloc_trim();
        }
    }
    let after = super::watchdog::rss_bytes();
    match (before, after) {
        (Some(before), Some(after)) => before.saturating_sub(after),
        _ => 0,
    }
}

/// Gives back every `INTERVAL`, forever (the worker's task set drops it when it drains). Runs
/// on the worker's thread, whose heap is the one collected.
pub(crate) async fn run() {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let released = give_back();
        if released > 0 {
            tracing::debug!(rss_bytes = released, "returned free pages to the kernel");
        }
    }
}

#[allow(unsafe_code)]
fn mi_collect_forced() {
    // SAFETY: mi_collect frees only blocks and pages already free, of the calling thread's heap
    // and of the segments and arenas under their own synchronisation; no pointer this program
    // holds is invalidated.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// What glibc's malloc holds: the C libraries' allocations, not ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MallocBytes {
    /// Allocated and not freed, in its arenas and in blocks of their own (mmap).
    pub(crate) in_use: usize,
    /// Free inside its arenas (resident until trimmed or reused).
    pub(crate) free: usize,
}

/// What glibc's malloc holds (all arenas), glibc only.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn malloc_bytes() -> Option<MallocBytes> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value; glibc takes
    // each arena's lock while it counts, so it is safe to call while other threads allocate.
    let info = unsafe { libc::mallinfo2() };
    Some(MallocBytes {
        in_use: info.uordblks + info.hblkhd,
        free: info.fordblks,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn malloc_bytes() -> Option<MallocBytes> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn malloc_trim() {
    // SAFETY: malloc_trim(0) only releases free memory of malloc's own arenas under their
    // locks; it invalidates no pointer this program holds (allocated chunks are untouched).
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_glibc_only_past_a_few_mebibytes() {
        assert!(!worth_trimming(0));
        assert!(!worth_trimming((4 << 20) - 1));
        assert!(worth_trimming(4 << 20));
    }

    #[test]
    fn a_freed_burst_leaves_the_resident_set() {
        // 64 MiB in 16 KiB blocks with a small live block allocated between each pair, as a
        // burst of connections leaves the heap: the segments keep pages in use, so freeing the
        // big blocks alone gives nothing back.
        let mut big = Vec::new();
        let mut live = Vec::new();
        for _ in 0..4096 {
            let mut block = vec![1u8; 16 * 1024];
            block[0] = 2;
            big.push(block);
            live.push(vec![3u8; 64]);
        }
        let full = crate::worker::watchdog::rss_bytes().unwrap();
        drop(big);
        let released = give_back();
        let after = crate::worker::watchdog::rss_bytes().unwrap();
        assert!(after + (48 << 20) < full, "rss {full} -> {after}");
        assert!(released >= 48 << 20, "{released}");
        drop(live);
    }
}
