//! A global allocator that puts every block of 4 KiB or more on a 64-byte (cache-line) boundary.
//!
//! The products read a (B, F) activation in columns of `B` values: 256 bytes at batch 64, loaded as 32-byte
//! registers. The system allocator returns large blocks 16 bytes past a page boundary, so every column then
//! starts 16 bytes into a cache line and one load in two straddles two lines. On 64-byte boundaries no load
//! does: the c64-56 forward product at batch 64 takes 128 ms instead of 151 (`ALIGN=1
//! target/release/examples/pruned_time (dev/pruned_time.rs) c64-56 0` against the same without `ALIGN`, which places its buffers
//! as the system allocator does). Alignment changes no value and no bit.
//!
//! The command-line tool installs it (`src/main.rs`); a program using the library can install it likewise:
//! `#[global_allocator] static A: cnn_as_mlp::aligned_alloc::LineAligned = cnn_as_mlp::aligned_alloc::LineAligned;`

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator, with blocks of at least [`LARGE`] bytes aligned to [`LINE`] bytes.
pub struct LineAligned;

/// A cache line.
pub const LINE: usize = 64;

/// The smallest block that is line-aligned (smaller ones are left to the system allocator as asked).
pub const LARGE: usize = 4096;

/// The layout actually requested from the system for `layout`: the same, or line-aligned when large.
#[inline]
fn adjusted(layout: Layout) -> Layout {
    if layout.size() >= LARGE && layout.align() < LINE {
        // A power of two at least as large as the original alignment, and the size is unchanged, so this
        // cannot fail.
        Layout::from_size_align(layout.size(), LINE).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every block is allocated and freed by `System` with the same adjusted layout (`adjusted` depends only
// on the size and alignment the caller passes, which GlobalAlloc requires to be the same at allocation and
// deallocation); the adjusted alignment is never smaller than the requested one.
unsafe impl GlobalAlloc for LineAligned {
    /// # Safety
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout has a non-zero size; so has the adjusted one.
        unsafe { System.alloc(adjusted(layout)) }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`]: `layout` has a non-zero size.
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(adjusted(layout)) }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` was allocated by this allocator with `layout`.
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` with `adjusted(layout)`.
        unsafe { System.dealloc(ptr, adjusted(layout)) }
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`]: `ptr` was allocated by this allocator with `layout`, `new_size` is
    /// non-zero and, rounded up to `layout.align()`, does not overflow `isize`.
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = adjusted(layout);
        // SAFETY: the caller guarantees a valid layout for new_size with layout's alignment.
        let new = adjusted(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        if old.align() == new.align() {
            // SAFETY: `ptr` was allocated with `old`; System keeps the alignment of `old` on realloc.
            return unsafe { System.realloc(ptr, old, new_size) };
        }
        // Crossing the threshold: a new block with the new alignment, the common bytes copied.
        // SAFETY: `new` has a non-zero size; both blocks are valid for the copied bytes; `ptr` was allocated
        // with `old`.
        unsafe {
            let p = System.alloc(new);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                System.dealloc(ptr, old);
            }
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large blocks come back line-aligned through alloc, alloc_zeroed and realloc across the threshold,
    /// with their bytes kept; small ones keep working.
    #[test]
    fn large_blocks_are_line_aligned_and_keep_their_bytes() {
        let a = LineAligned;
        // SAFETY: every layout has a non-zero size and a power-of-two alignment; each block is freed once, with
        // the layout it was last allocated or reallocated with; bytes are read and written only inside the
        // current size of their block (100, then 3·LARGE and 10·LARGE, then 50). The test takes the
        // allocations (1 MiB at most) to succeed: it does not check for null before writing.
        unsafe {
            for size in [LARGE, LARGE + 4, 1 << 20] {
                let l = Layout::from_size_align(size, 4).unwrap();
                let p = a.alloc(l);
                assert_eq!(p as usize % LINE, 0, "alloc {size}");
                a.dealloc(p, l);
                let p = a.alloc_zeroed(l);
                assert_eq!(p as usize % LINE, 0, "alloc_zeroed {size}");
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                a.dealloc(p, l);
            }
            // Small to large and back, the bytes kept.
            let l = Layout::from_size_align(100, 4).unwrap();
            let p = a.alloc(l);
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            let q = a.realloc(p, l, 3 * LARGE);
            assert_eq!(q as usize % LINE, 0);
            assert!((0..100).all(|i| *q.add(i) == i as u8));
            let l2 = Layout::from_size_align(3 * LARGE, 4).unwrap();
            let r = a.realloc(q, l2, 10 * LARGE);
            assert_eq!(r as usize % LINE, 0);
            assert!((0..100).all(|i| *r.add(i) == i as u8));
            let l3 = Layout::from_size_align(10 * LARGE, 4).unwrap();
            let s = a.realloc(r, l3, 50);
            assert!((0..50).all(|i| *s.add(i) == i as u8));
            a.dealloc(s, Layout::from_size_align(50, 4).unwrap());
        }
    }
}
