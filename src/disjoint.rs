//! A slice that parallel tasks write at disjoint places.
//!
//! The tied kernels write each output column from exactly one task (the row groups partition the rows, an
//! invariant of [`crate::tied::TiedMatrix::check_structure`]); the direct engine's gather tasks each own a
//! block of destination channels. This wrapper lets those tasks share the buffer.

pub(crate) struct Disjoint<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: tasks write disjoint places only (the contract of `slice`), so sharing the pointer is sound.
unsafe impl<T: Send> Send for Disjoint<T> {}
// SAFETY: a shared `&Disjoint` only hands out `&mut` sub-slices through the unsafe `slice`, whose callers
// keep them disjoint, so tasks on different threads never reach the same element; `T: Send` lets each
// element be written from the thread that owns its place.
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    pub(crate) fn new(s: &mut [T]) -> Self {
        Disjoint { ptr: s.as_mut_ptr(), len: s.len() }
    }

    /// The start of the whole slice, for kernels that write through raw pointers at disjoint places.
    pub(crate) fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// The sub-slice `[start, start + len)`.
    ///
    /// # Safety
    /// No two live sub-slices obtained from one `Disjoint` may overlap. The slice given to [`Disjoint::new`]
    /// must outlive every sub-slice and must not be read or written other than through them while they live
    /// (`Disjoint` carries no lifetime, so the borrow checker does not hold this).
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "Disjoint::slice: [{start}, {}) outside {}", start + len, self.len);
        // SAFETY: `[start, start + len)` lies inside the `len` elements of the slice `ptr` came from (asserted
        // above); the caller keeps that slice alive and otherwise untouched, and the live sub-slices from
        // overlapping, so this `&mut` aliases no other reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
