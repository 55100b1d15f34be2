//! Buffers the kernel writes into: what safe code can mark as initialized.

use percore_io::{Dir, IoBuf, OpenOptions, Runtime};

/// A read into a slice that starts past the buffer's initialized bytes must
/// not pass the gap before it off as initialized (it once marked
/// `begin + len`: bytes 0..4 of `Vec::with_capacity(8)` became readable
/// without ever being written).
#[test]
fn a_read_into_a_slice_past_the_initialized_bytes_marks_no_gap() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), b"abcdefgh").unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("f", &OpenOptions::new()).await.unwrap();
        let (read, slice) = file.read_at(Vec::<u8>::with_capacity(8).slice(4..8), 0).await;
        assert_eq!(read.unwrap(), 4);
        let buf = slice.into_inner();
        assert_eq!(buf.len(), 0, "nothing before the slice was written, so nothing is initialized");

        // A slice that continues the initialized bytes extends them.
        let mut buf = Vec::with_capacity(8);
        buf.extend_from_slice(b"xyzw");
        let (read, slice) = file.read_at(buf.slice(4..8), 2).await;
        assert_eq!(read.unwrap(), 4);
        assert_eq!(slice.into_inner(), b"xyzwcdef");
    });
}
