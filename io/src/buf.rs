//! Owned buffers: what the kernel reads from or writes into while an
//! operation is in flight.
//!
//! Operations take buffers by value and give them back with the result, as
//! `(io::Result<T>, B)`, so the caller has the buffer again on error too.
//! While the operation is in flight the buffer belongs to the operation (or,
//! if its future is dropped, to the driver's slot table).
//!
//! **Invariant:** the memory behind `stable_ptr` does not move when the buffer
//! value moves. That holds for heap buffers (`Vec`, `BytesMut`, `Bytes`,
//! `Box<[u8]>`, [`AlignedBuf`]), which are the only types implementing the
//! traits.

use std::alloc::{self, Layout};
use std::ops::{Bound, RangeBounds};

use bytes::{Bytes, BytesMut};

/// A buffer the kernel may read from (writes, sends).
///
/// # Safety
/// `stable_ptr()` must point at `bytes_init()` initialized bytes that stay at
/// the same address while the value is moved, until it is dropped.
pub unsafe trait IoBuf: Unpin + 'static {
    /// Start of the buffer.
    fn stable_ptr(&self) -> *const u8;
    /// Initialized bytes (the ones a write sends).
    fn bytes_init(&self) -> usize;
    /// Total capacity.
    fn bytes_total(&self) -> usize;

    /// The initialized bytes, to read from user space (to encrypt them, say).
    fn init_bytes(&self) -> &[u8] {
        // SAFETY: the trait's contract: `stable_ptr()` points at
        // `bytes_init()` initialized bytes, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), self.bytes_init()) }
    }

    /// A view of part of the initialized bytes, for partial writes.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(begin <= end && end <= self.bytes_total(), "slice {begin}..{end} out of bounds");
        Slice { buf: self, begin, end }
    }
}

/// A buffer the kernel may write into (reads, receives).
///
/// # Safety
/// As [`IoBuf`]; in addition `stable_mut_ptr()` must be valid for writes of
/// `bytes_total()` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer, writable.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Marks the first `len` bytes initialized (after the kernel wrote them).
    ///
    /// # Safety
    /// The first `len` bytes must be initialized and `len <= bytes_total()`.
    unsafe fn set_init(&mut self, len: usize);
}

// SAFETY: a Vec's heap allocation does not move with the Vec.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; the spare capacity is writable.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        if self.len() < len {
            // SAFETY: caller's contract: `len` bytes are initialized and within capacity.
            unsafe { self.set_len(len) };
        }
    }
}

// SAFETY: BytesMut's storage is on the heap and does not move with the handle.
unsafe impl IoBuf for BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as above; BytesMut's spare capacity is writable.
unsafe impl IoBufMut for BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        if self.len() < len {
            // SAFETY: caller's contract.
            unsafe { self.set_len(len) };
        }
    }
}

// SAFETY: Bytes is an immutable view of heap (or static) memory that does not
// move with the handle and is not freed while the handle lives.
unsafe impl IoBuf for Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves or goes away.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: a boxed slice's heap allocation does not move with the box.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as above; every byte of a boxed slice is initialized and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _len: usize) {}
}

/// A range of a buffer. Returned by [`IoBuf::slice`]; gives the buffer back
/// with [`Slice::into_inner`].
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// The whole buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
    /// Start offset within the buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// End offset within the buffer.
    pub fn end(&self) -> usize {
        self.end
    }
    /// The underlying buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }
}

// SAFETY: a sub-range of a stable buffer is stable.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: `begin <= bytes_total` was checked when the slice was made.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: a sub-range of a stable writable buffer is stable and writable.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: as in `stable_ptr`.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, len: usize) {
        // Only bytes that join the buffer's initialized prefix may be marked:
        // a slice that starts past it (`Vec::with_capacity(8).slice(4..8)`)
        // leaves a gap nobody wrote, and marking `begin + len` would pass
        // that gap off as initialized. Such a read's bytes stay unmarked.
        if self.buf.bytes_init() >= self.begin {
            // SAFETY: caller's contract, shifted by `begin`; the bytes before
            // `begin` are initialized already (checked above).
            unsafe { self.buf.set_init(self.begin + len) };
        }
    }
}

/// A zeroed heap buffer with a chosen alignment, for `O_DIRECT` I/O (which
/// needs the memory, the file offset and the length aligned to the device's
/// logical block size; 4096 is safe everywhere).
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: Layout,
    len: usize,
}

// SAFETY: AlignedBuf uniquely owns its allocation, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only read.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `capacity` bytes aligned to `align` (a power of
    /// two), with length 0.
    ///
    /// # Panics
    /// If `align` is not a power of two or `capacity` is 0.
    pub fn new(capacity: usize, align: usize) -> AlignedBuf {
        assert!(capacity > 0, "AlignedBuf needs a capacity");
        let layout = Layout::from_size_align(capacity, align).expect("alignment must be a power of two");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = std::ptr::NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, layout, len: 0 }
    }

    /// The initialized bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the allocation holds `capacity >= len` zeroed-or-written bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole capacity, writable (all of it is initialized: zeroed at
    /// allocation).
    pub fn as_mut_capacity(&mut self) -> &mut [u8] {
        // SAFETY: as above, for the whole capacity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Sets the length (at most the capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.layout.size());
        self.len = len;
    }

    /// The length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).field("capacity", &self.layout.size()).finish()
    }
}

// SAFETY: the allocation does not move with the value.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.layout.size()
    }
}

// SAFETY: as above; the whole capacity is allocated and writable.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, len: usize) {
        self.len = self.len.max(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reports_its_part() {
        let buf = b"hello world".to_vec();
        let slice = buf.slice(6..);
        assert_eq!(slice.bytes_init(), 5);
        // SAFETY: reading 5 initialized bytes of a live Vec.
        let s = unsafe { std::slice::from_raw_parts(slice.stable_ptr(), slice.bytes_init()) };
        assert_eq!(s, b"world");
        assert_eq!(slice.into_inner().len(), 11);
    }

    #[test]
    fn aligned_buf_is_aligned() {
        let buf = AlignedBuf::new(8192, 4096);
        assert_eq!(buf.stable_ptr() as usize % 4096, 0);
        assert_eq!(buf.bytes_total(), 8192);
    }
}
