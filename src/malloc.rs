//! glibc's malloc, kept from handing a Parquet copy's buffers back to the kernel between
//! batches.
//!
//! Every batch of a copy into Parquet builds and drops buffers of a megabyte or more: Arrow
//! columns, Parquet pages, compressed column chunks. glibc serves those from fresh `mmap`s (or
//! trims them off its heap once freed), so each batch faulted its pages in and zeroed them
//! again. Served from the heap and kept there, the same memory is reused batch after batch.
//! Measured on a 1,000,000-row `orders` copy (5 alternating runs with and without, the setting
//! given through `GLIBC_TUNABLES`): 44,000 page faults down to 14,000, and 1.94 s of CPU down
//! to 1.82 s, at a peak RSS of 63-84 MB against 55-62 MB.
//!
//! Copies into MySQL are left with glibc's defaults: the same setting gave them the same CPU
//! time (3.29 s either way, 3 alternating runs) and 15 MB more peak RSS (121-131 MB against
//! 103-119 MB); their time is the server's. mimalloc as the allocator was measured too: more
//! CPU and 155 MB peak for the Parquet copy.

/// Allocations of this size or more still get an `mmap` of their own (and give it back).
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of the heap kept for the next batch rather than given back.
const TRIM_THRESHOLD: i32 = 32 << 20;

/// Sets the parameters above. Called in `main` before the async runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt takes no pointer and only sets malloc's own parameters, under malloc's
    // own lock. A value it refused would leave glibc's default in place, which is still correct.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Other C libraries keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
