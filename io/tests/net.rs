//! Socket sends as the peer sees them: a head sent with `MSG_MORE` waits for
//! the body and leaves with it (the client is woken once, not for a head
//! alone), and the whole answer arrives while the connection is open.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use percore_io::{Dir, OpenOptions, Runtime, TcpListener};

#[test]
fn a_head_sent_with_more_leaves_with_the_spliced_body() {
    let tmp = tempfile::tempdir().unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(tmp.path().join("body"), &body).unwrap();
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n".to_vec();
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = listener.local_addr();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done_by_client = done.clone();
    let total = head.len() + body.len();
    let client = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        // The server sends its head, then waits 300 ms before the body: a
        // head sent on its own would arrive within that time.
        stream.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
        let mut first = [0u8; 64];
        let early = stream.read(&mut first);
        assert!(
            matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the head left alone: {early:?}"
        );
        // All of it arrives while the connection stays open. (This does not
        // tell a pushed last piece from one the kernel sends later on its
        // own: with SPLICE_F_MORE on the last piece too it still arrives,
        // about 200 ms late, within this timeout.)
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = vec![0; total];
        stream.read_exact(&mut got).expect("the whole answer before the connection closes");
        done_by_client.store(true, std::sync::atomic::Ordering::SeqCst);
        got
    });
    Runtime::new().unwrap().block_on(async {
        let dir = Dir::open(tmp.path()).await.unwrap();
        let file = dir.open_file("body", &OpenOptions::new()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        server.set_nodelay(true).unwrap();
        let (sent, _) = server.send_all_more(head.clone()).await;
        sent.unwrap();
        percore_io::time::sleep(Duration::from_millis(300)).await;
        let pipe = percore_io::Pipe::new(64 * 1024).unwrap();
        let sent = percore_io::send_file(&server, &file, 0, body.len() as u64, &pipe, false).await.unwrap();
        assert_eq!(sent, body.len() as u64);
        for _ in 0..300 {
            if done.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            percore_io::time::sleep(Duration::from_millis(10)).await;
        }
        drop(server);
    });
    let got = client.join().unwrap();
    assert_eq!(got.len(), head.len() + body.len());
    assert!(got[..head.len()] == head[..] && got[head.len()..] == body[..]);
}
