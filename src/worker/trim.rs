//! Handing memory freed after a burst back to the kernel.
//!
//! Two allocators hold a worker's heap: mimalloc, the global allocator (every allocation of
//! ours and of the Rust crates), and glibc's malloc, which the C libraries linked in still call
//! (aws-lc's TLS state, for one).
//!
//! mimalloc gives a page back (purges it: `MADV_DONTNEED`) once it has been free for its purge
//! delay, but only from inside its own calls: an empty page stays in the thread's heap until a
//! later allocation or a collection hands it to the arena, and the arena's free ranges are
//! purged from its allocation paths. A worker that goes quiet after a burst of connections makes
//! no such call, and would keep all it grew to. So every [`INTERVAL`] the worker collects
//! (`mi_collect(false)`): its thread's empty pages go back to the arena, and what has been free
//! there past the purge delay goes back to the kernel, so a burst's pages are given back within
//! two intervals. Not forced: a forced collection also purges the pages freed a moment ago,
//! which the next requests would fault in again. After loading a routes file, which freed its
//! text and parse tree all at once, the worker forces one ([`Collect::Now`]).
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

/// Which of mimalloc's free pages a collection gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collect {
    /// Those free for longer than its purge delay: the periodic give-back.
    Due,
    /// All of them, at once: after a load that freed a lot and will not be repeated.
    Now,
}

/// Gives back the free pages of both allocators: mimalloc's as `collect` says (the calling
/// thread's heap and the arenas), glibc's when it holds enough of them. Returns how far the
/// resident set went down: mimalloc's own count of what it has committed does not go down when
/// it purges on Linux (`MADV_DONTNEED` leaves the range usable), so the RSS is what tells.
pub(crate) fn give_back(collect: Collect) -> u64 {
    let before = super::watchdog::rss_bytes();
    mi_collect(collect == Collect::Now);
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
        let released = give_back(Collect::Due);
        if released > 0 {
            tracing::debug!(rss_bytes = released, "returned free pages to the kernel");
        }
    }
}

#[allow(unsafe_code)]
fn mi_collect(force: bool) {
    // SAFETY: mi_collect frees only blocks and pages already free, of the calling thread's heap
    // and of the arenas under their own synchronisation; no pointer this program holds is
    // invalidated.
    unsafe { libmimalloc_sys::mi_collect(force) };
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

    /// On the clock: mimalloc's purge delay is wall-clock time.
    #[tokio::test]
    async fn a_freed_burst_leaves_the_resident_set() {
        // 64 MiB in 16 KiB blocks with a small live block allocated between each pair, as a
        // burst of connections leaves the heap; then the periodic give-back, until the pages
        // are back with the kernel (within two purge delays).
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut released = 0;
        let after = loop {
            released += give_back(Collect::Due);
            let after = crate::worker::watchdog::rss_bytes().unwrap();
            if after + (48 << 20) < full || tokio::time::Instant::now() >= deadline {
                break after;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(after + (48 << 20) < full, "rss {full} -> {after}");
        assert!(released >= 48 << 20, "{released}");
        drop(live);
    }
}
