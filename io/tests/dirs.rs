//! Directories read in pieces (`Dir::read_dir_yielding`): every entry once,
//! with other tasks running between the pieces.

use percore_io::{Dir, Runtime};

/// A large directory read in pieces, yielding between them: every entry
/// once, the same as a read in one go, even with two reads of the same
/// `Dir` interleaved (each has its own position) and a task running
/// between the pieces.
#[test]
fn a_directory_read_in_pieces_lists_every_entry_once() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for i in 0..5000 {
        std::fs::write(tmp.path().join(format!("f{i:05}")), b"").unwrap();
    }
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let names = |entries: Vec<percore_io::DirEntry>| {
            let mut names: Vec<String> = entries.into_iter().map(|e| e.name.into_string().unwrap()).collect();
            names.sort();
            names
        };
        let whole = names(dir.read_dir().unwrap());
        assert_eq!(whole.len(), 5001);
        let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let ticker = {
            let ticks = ticks.clone();
            percore_io::spawn(async move {
                for _ in 0..10_000 {
                    ticks.set(ticks.get() + 1);
                    percore_io::yield_now().await;
                }
            })
        };
        let (a, b) = futures_join(dir.read_dir_yielding(), dir.read_dir_yielding()).await;
        assert_eq!(names(a.unwrap()), whole);
        assert_eq!(names(b.unwrap()), whole);
        assert!(ticks.get() >= 4, "other tasks ran between the pieces: {}", ticks.get());
        drop(ticker);
    });
}

/// Both futures, polled in turn until both are done.
async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    (ra.unwrap(), rb.unwrap())
}
