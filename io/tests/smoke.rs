use percore_io::*;
#[test]
fn smoke() {
    let rt = Runtime::new().unwrap();
    println!("{:?}", rt.features());
    rt.block_on(async {
        let h = spawn(async { 1 + 1 });
        assert_eq!(h.await, 2);
        time::sleep(std::time::Duration::from_millis(20)).await;
        let dir = Dir::open("/tmp").await.unwrap();
        let mut o = OpenOptions::new(); o.write(true).create(true).truncate(true);
        let f = dir.open_file("percore-smoke.txt", &o).await.unwrap();
        let (r, _) = f.write_all_at(b"hello".to_vec(), 0).await; r.unwrap();
        f.sync_data().await.unwrap();
        let (r, b) = f.read_at(Vec::with_capacity(16), 0).await;
        println!("read {:?} {:?}", r, b);
        let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr();
        let h = spawn(async move { let s = TcpStream::connect(addr).await.unwrap(); let (r,_) = s.send_all(b"ping".to_vec()).await; r.unwrap(); });
        let mut inc = l.incoming();
        let s = inc.next().await.unwrap();
        let ring = BufRing::new(16, 4096).unwrap();
        let mut rs = s.recv_multi(&ring);
        let b = rs.next().await.unwrap().unwrap();
        assert_eq!(&*b, b"ping");
        h.await;
        println!("{:?}", stats());
    });
}
