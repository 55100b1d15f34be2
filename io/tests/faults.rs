//! The fault-injection seam: chosen operations fail with chosen errno values
//! or transfer short, and the `*_all` helpers and multishot accept cope.
//!
//! Rules are process-wide, so these tests run one at a time in their own
//! process.

use std::sync::Mutex;

use percore_io::fault::{self, Fault, OpKind};
use percore_io::{Dir, OpenOptions, Runtime, TcpListener, TcpStream};

static SERIAL: Mutex<()> = Mutex::new(());

struct Faults(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Faults {
    fn new() -> Faults {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        fault::clear();
        Faults(guard)
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        fault::clear();
    }
}

fn rw_create() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    options
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

#[test]
fn enospc_and_eio_surface_with_their_errno_and_leave_data_intact() {
    let _faults = Faults::new();
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("f", &rw_create()).await.unwrap();
        let (r, _) = file.write_all_at(b"version one".to_vec(), 0).await;
        r.unwrap();
        fault::inject(OpKind::Write, Fault::Errno(libc::ENOSPC), 0, Some(1));
        let (r, buf) = file.write_all_at(b"VERSION TWO".to_vec(), 0).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(buf, b"VERSION TWO", "the buffer comes back on error");
        let (r, got) = file.read_at(Vec::with_capacity(32), 0).await;
        r.unwrap();
        assert_eq!(got, b"version one", "a failed write changes nothing");
        fault::inject(OpKind::Fdatasync, Fault::Errno(libc::EIO), 0, Some(1));
        assert_eq!(file.sync_data().await.unwrap_err().raw_os_error(), Some(libc::EIO));
        // Only the next one failed; fsync (a different kind) was never hit.
        file.sync_data().await.unwrap();
        file.sync_all().await.unwrap();
        // Skip counts: two renames pass, the third fails, the fourth passes.
        fault::inject(OpKind::Rename, Fault::Errno(libc::EIO), 2, Some(1));
        let names = ["f", "g", "h", "i", "j"];
        let mut current = 0;
        for (i, expect_ok) in [true, true, false, true].into_iter().enumerate() {
            let r = dir.rename(names[current], &dir, names[current + 1]).await;
            assert_eq!(r.is_ok(), expect_ok, "rename {i}: {r:?}");
            if r.is_ok() {
                current += 1;
            }
        }
        assert_eq!(current, 3);
    });
}

#[test]
fn short_writes_and_sends_are_completed_by_the_all_helpers() {
    let _faults = Faults::new();
    let tmp = tempdir();
    Runtime::new().unwrap().block_on(async {
        fault::inject(OpKind::Write, Fault::Short, 0, None);
        fault::inject(OpKind::Send, Fault::Short, 0, None);
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("f", &rw_create()).await.unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (r, _) = file.write_all_at(data.clone(), 10).await;
        r.unwrap();
        let (r, _) = file.write_at(vec![1u8; 1000], 200_000).await;
        assert_eq!(r.unwrap(), 500, "a single write really is short");
        let (r, got) = file.read_exact_at(Vec::with_capacity(100_000), 10).await;
        r.unwrap();
        assert!(got == data, "file content differs after short writes");

        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let reader = percore_io::spawn(async move {
            let mut got = Vec::new();
            loop {
                let (r, b) = client.recv(Vec::with_capacity(65536)).await;
                if r.unwrap() == 0 {
                    return got;
                }
                got.extend_from_slice(&b);
            }
        });
        let (r, _) = server.send_all(data.clone()).await;
        r.unwrap();
        let (r, _) = server.writev_all(vec![b"head:".to_vec(), data.clone()]).await;
        r.unwrap();
        drop(server);
        let got = reader.await;
        let mut expected = data.clone();
        expected.extend_from_slice(b"head:");
        expected.extend_from_slice(&data);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "stream content differs after short sends");
    });
}

#[test]
fn emfile_ends_a_multishot_accept_which_rearms_on_the_next_call() {
    let _faults = Faults::new();
    Runtime::new().unwrap().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr();
        fault::inject(OpKind::Accept, Fault::Errno(libc::EMFILE), 0, Some(1));
        let mut incoming = listener.incoming();
        let err = incoming.next().await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        let client = percore_io::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let accepted = incoming.next().await.unwrap();
        let client = client.await;
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    });
}

#[test]
fn eagain_and_ecanceled_reach_the_caller_as_errors() {
    let _faults = Faults::new();
    let tmp = tempdir();
    std::fs::write(tmp.path().join("f"), b"data").unwrap();
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("f", &OpenOptions::new()).await.unwrap();
        fault::inject(OpKind::Read, Fault::Errno(libc::EAGAIN), 0, Some(1));
        fault::inject(OpKind::Recv, Fault::Errno(libc::ECANCELED), 0, Some(1));
        let (r, _) = file.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EAGAIN));
        let (r, buf) = file.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"data");
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, _) = server.recv(Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
        fault::inject(OpKind::Open, Fault::Errno(libc::EMFILE), 0, Some(1));
        assert_eq!(dir.open_file("f", &OpenOptions::new()).await.unwrap_err().raw_os_error(), Some(libc::EMFILE));
    });
}

/// A multishot recv that the kernel ends with a transient error (EINTR,
/// EAGAIN, ECANCELED) is armed again and the data still arrives; a run of
/// them longer than the retry bound reaches the caller instead of spinning.
#[test]
fn a_multishot_recv_rearms_after_transient_errors() {
    let _faults = Faults::new();
    Runtime::new().unwrap().block_on(async {
        let ring = percore_io::BufRing::new(8, 4096).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = TcpStream::connect(listener.local_addr()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        for errno in [libc::EINTR, libc::EAGAIN, libc::ECANCELED] {
            fault::inject(OpKind::Recv, Fault::Errno(errno), 0, Some(1));
        }
        let (r, _) = client.send_all(b"hello".to_vec()).await;
        r.unwrap();
        let mut incoming = server.recv_multi(&ring);
        let got = incoming.next().await.unwrap().unwrap();
        assert_eq!(&got[..], b"hello");
        drop(incoming);
        fault::inject(OpKind::Recv, Fault::Errno(libc::EAGAIN), 0, Some(100));
        let mut incoming = server.recv_multi(&ring);
        let err = incoming.next().await.unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
    });
}
