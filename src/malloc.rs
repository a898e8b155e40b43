//! glibc's malloc, kept from handing a copy's buffers back to the kernel between batches.
//!
//! Every batch of a first copy builds and drops buffers of a megabyte or more: Arrow columns,
//! Parquet pages, compressed column chunks. glibc serves those from fresh `mmap`s (or trims
//! them off its heap once freed), so each batch faulted its pages in and zeroed them again:
//! 40,000-80,000 page faults and 12% of highwater's CPU in a 1,000,000-row copy to Parquet.
//! Served from the heap and kept there, the same memory is reused batch after batch: 14,000
//! faults, the same peak RSS (68 MB). Other allocators were measured too: mimalloc used more
//! CPU and twice the memory (155 MB).

/// Allocations of this size or more still get an `mmap` of their own (and give it back).
const MMAP_THRESHOLD: i32 = 4 << 20;
/// Free memory at the top of the heap kept for the next batch rather than given back.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Sets the parameters above. Called first thing in `main`, before any thread starts; the
/// measurements they rest on are in the module's doc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only sets malloc's own parameters, under malloc's own lock, and takes no
    // pointer; a value it refuses leaves the default in place (it returns 0, which changes
    // nothing we rely on).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Other C libraries keep their own defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
