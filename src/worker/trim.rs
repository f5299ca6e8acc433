//! Handing memory freed after a burst back to the kernel. glibc's malloc keeps what a burst of
//! connections or tunnels freed (their tasks, sockets' state, buffers past the free list's
//! cap) inside its heap, where it still counts as resident: it only returns the top of the
//! heap, and a burst's chunks are interleaved with live ones, so a worker kept all it grew to.
//! `malloc_trim` gives the free pages inside the heap back (`MADV_DONTNEED`); the allocator
//! reuses the addresses, refaulting pages as a later burst needs them. What it saves and costs
//! is measured in the benchmark record (benches/README.md, the "once they have closed" rows).

use std::time::Duration;

/// How often the worker looks at what malloc holds free.
pub(crate) const INTERVAL: Duration = Duration::from_secs(5);
/// Free bytes inside malloc's heap worth a trim: below this, the few dozen pages are left for
/// the next requests (a trim walks the whole heap, and each page given back costs a fault when
/// reused).
const WORTH_TRIMMING: usize = 4 << 20;

/// Whether `free` bytes held by malloc are worth a trim (pure).
pub(crate) fn worth_trimming(free: usize) -> bool {
    free >= WORTH_TRIMMING
}

/// Gives malloc's free pages back when it holds enough of them; returns the free bytes it held
/// then, if it trimmed. Elsewhere than glibc, nothing to do.
pub(crate) fn release_free_memory() -> Option<usize> {
    let free = malloc_free_bytes()?;
    if !worth_trimming(free) {
        return None;
    }
    malloc_trim();
    Some(free)
}

/// Trims every `INTERVAL`, forever (the worker's task set drops it when it drains).
pub(crate) async fn run() {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(free) = release_free_memory() {
            tracing::debug!(
                free_bytes = free,
                "returned malloc's free pages to the kernel"
            );
        }
    }
}

/// Bytes in malloc's free chunks (all arenas), glibc only.
fn malloc_free_bytes() -> Option<usize> {
    Some(malloc_bytes()?.free)
}

/// What malloc holds, glibc only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MallocBytes {
    /// Allocated and not freed, in its arenas and in blocks of their own (mmap).
    pub(crate) in_use: usize,
    /// Free inside its arenas (resident until trimmed or reused).
    pub(crate) free: usize,
}

/// What malloc holds (all arenas), glibc only.
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
    fn trims_only_past_a_few_mebibytes() {
        assert!(!worth_trimming(0));
        assert!(!worth_trimming((4 << 20) - 1));
        assert!(worth_trimming(4 << 20));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_freed_burst_leaves_the_resident_set() {
        // 64 MiB in 16 KiB blocks with a small live block between each pair, as a burst of
        // connections leaves the heap: freeing the big ones cannot shrink the heap's top.
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
        let released = release_free_memory();
        let after = crate::worker::watchdog::rss_bytes().unwrap();
        assert!(
            released.is_some_and(|free| free >= 60 << 20),
            "{released:?}"
        );
        assert!(after + (48 << 20) < full, "rss {full} -> {after}");
        drop(live);
    }
}
