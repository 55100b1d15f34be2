//! TCP: listener with multishot accept, connect, recv, send, writev,
//! shutdown, close, and multishot recv from a provided-buffer ring.
//!
//! Sockets stay in blocking mode: io_uring polls them itself, and with
//! `O_NONBLOCK` set it would hand `EAGAIN` back instead of waiting.

use std::future::Future;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::{opcode, types};

use super::fs::close_fd;
use super::{maybe_short, transfer_all, Completable, Multishot, NoData, Op, Outgoing, Transfer};
use crate::buf::{IoBuf, IoBufMut};
use crate::bufring::{self, BufRing, RingBuf};
use crate::driver::slots::{Cqe, Orphan};
use crate::error::{cqe_result, syscall};
use crate::fault::OpKind;
use crate::fd::{close_now, Fd};

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected address family {family}"))),
    }
}

fn socket_name(fd: RawFd, peer: bool) -> io::Result<SocketAddr> {
    // SAFETY: plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ptr = (&mut storage as *mut libc::sockaddr_storage).cast();
    // SAFETY: `storage` and `len` are valid for writes of the given size.
    syscall(unsafe {
        if peer {
            libc::getpeername(fd, ptr, &mut len)
        } else {
            libc::getsockname(fd, ptr, &mut len)
        }
    })?;
    from_sockaddr(&storage)
}

fn new_socket(addr: &SocketAddr) -> io::Result<Fd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) takes no pointers; checked below.
    let fd = syscall(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    Ok(Fd::from_raw(fd))
}

fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its size.
    syscall(unsafe {
        libc::setsockopt(fd, level, name, (&value as *const i32).cast(), mem::size_of::<i32>() as libc::socklen_t)
    })
    .map(drop)
}

/// Options for [`TcpListener::bind_with`].
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// `SO_REUSEPORT`: several listeners (one per thread) on one port, with
    /// the kernel spreading connections over them.
    pub reuse_port: bool,
    /// The accept backlog.
    pub backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions { reuse_port: false, backlog: 4096 }
    }
}

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener {
    fd: Fd,
    local_addr: SocketAddr,
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl TcpListener {
    /// Binds with default options (`SO_REUSEADDR`, no `SO_REUSEPORT`).
    ///
    /// # Errors
    /// As socket(2), bind(2), listen(2).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind_with(addr, &ListenOptions::default())
    }

    /// Binds with `options`.
    ///
    /// # Errors
    /// As socket(2), setsockopt(2), bind(2), listen(2); the error names the
    /// address.
    pub fn bind_with(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
        let fd = new_socket(&addr).map_err(context)?;
        let raw = fd.as_raw_fd();
        set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).map_err(context)?;
        if options.reuse_port {
            set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).map_err(context)?;
        }
        let (storage, len) = to_sockaddr(&addr);
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
        syscall(unsafe { libc::bind(raw, (&storage as *const libc::sockaddr_storage).cast(), len) })
            .map_err(context)?;
        // SAFETY: listen(2) takes no pointers.
        syscall(unsafe { libc::listen(raw, options.backlog) }).map_err(context)?;
        let local_addr = socket_name(raw, false)?;
        Ok(TcpListener { fd, local_addr })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts one connection (single-shot accept).
    ///
    /// # Errors
    /// As accept4(2), e.g. `EMFILE` when out of file descriptors.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // SAFETY: plain data; all-zero is valid.
        let storage: Box<(libc::sockaddr_storage, libc::socklen_t)> =
            Box::new((unsafe { mem::zeroed() }, mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t));
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points into `addr`, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Accept, Accept { addr: storage }, |d, _| {
                let (storage, len) = &mut *d.addr;
                opcode::Accept::new(types::Fd(fd), (storage as *mut libc::sockaddr_storage).cast(), len)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
            })
        };
        op.await
    }

    /// A stream of accepted connections over one multishot accept, re-armed
    /// whenever the kernel ends it. An error (such as `EMFILE`, which ends the
    /// multishot) is yielded once; the next call to `next` re-arms, so the
    /// caller decides how long to back off.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self, op: Multishot::new(OpKind::Accept, AcceptOrphan) }
    }
}

struct Accept {
    addr: Box<(libc::sockaddr_storage, libc::socklen_t)>,
}

impl Completable for Accept {
    type Output = io::Result<(TcpStream, SocketAddr)>;
    fn complete(self, cqe: Cqe) -> Self::Output {
        let fd = Fd::from_raw(cqe_result(cqe.result)? as RawFd);
        let addr = from_sockaddr(&self.addr.0)?;
        Ok((TcpStream { fd }, addr))
    }
    fn release(&mut self, cqe: Cqe) {
        if cqe.result >= 0 {
            close_now(cqe.result);
        }
    }
}

/// Closes the fds that a multishot accept delivers after its stream is gone.
struct AcceptOrphan;

impl Orphan for AcceptOrphan {
    fn release(&mut self, cqe: Cqe) {
        if cqe.result >= 0 {
            close_now(cqe.result);
        }
    }
}

/// Connections accepted by one multishot accept. See [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    op: Multishot<AcceptOrphan>,
}

impl<'a> Incoming<'a> {
    /// The next connection, or the error that ended the multishot accept.
    #[allow(clippy::should_implement_trait, reason = "an async stream's next, not Iterator::next")]
    pub fn next(&mut self) -> impl Future<Output = io::Result<TcpStream>> + use<'_, 'a> {
        std::future::poll_fn(move |cx| self.poll_next(cx))
    }

    /// Polls for the next connection.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        loop {
            if !self.op.is_armed() {
                let fd = self.listener.fd.as_raw_fd();
                let entry = opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build();
                // SAFETY: a multishot accept SQE points at no memory.
                unsafe { self.op.arm(entry) };
            }
            match self.op.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                // Ended without an error (the kernel may end a multishot, e.g.
                // on CQ overflow): re-arm.
                Poll::Ready(None) => continue,
                Poll::Ready(Some(cqe)) => {
                    return Poll::Ready(cqe_result(cqe.result).map(|fd| TcpStream { fd: Fd::from_raw(fd as RawFd) }));
                }
            }
        }
    }
}

/// A connected TCP socket.
#[derive(Debug)]
pub struct TcpStream {
    fd: Fd,
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

struct Connect {
    addr: Box<(libc::sockaddr_storage, libc::socklen_t)>,
}

impl Completable for Connect {
    type Output = io::Result<()>;
    fn complete(self, cqe: Cqe) -> io::Result<()> {
        cqe_result(cqe.result).map(drop)
    }
}

struct Writev<B> {
    bufs: Vec<B>,
    iovecs: Vec<libc::iovec>,
}

impl<B: IoBuf> Completable for Writev<B> {
    type Output = (io::Result<usize>, Vec<B>);
    fn complete(self, cqe: Cqe) -> Self::Output {
        (cqe_result(cqe.result).map(|n| n as usize), self.bufs)
    }
}

/// Which halves of a connection to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more receives.
    Read,
    /// No more sends (the peer sees end of stream).
    Write,
    /// Both.
    Both,
}

impl TcpStream {
    /// Connects to `addr`.
    ///
    /// # Errors
    /// As connect(2), e.g. `ECONNREFUSED`.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let fd = new_socket(&addr)?;
        let raw = fd.as_raw_fd();
        let data = Connect { addr: Box::new(to_sockaddr(&addr)) };
        // SAFETY: the SQE points into `addr`, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Connect, data, |d, _| {
                let (storage, len) = &*d.addr;
                opcode::Connect::new(types::Fd(raw), (storage as *const libc::sockaddr_storage).cast(), *len).build()
            })
        };
        op.await?;
        Ok(TcpStream { fd })
    }

    /// Disables (true) or enables Nagle's algorithm.
    ///
    /// # Errors
    /// As setsockopt(2).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        set_int_option(self.fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(nodelay))
    }

    /// The local address.
    ///
    /// # Errors
    /// As getsockname(2).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.fd.as_raw_fd(), false)
    }

    /// The peer's address.
    ///
    /// # Errors
    /// As getpeername(2).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        socket_name(self.fd.as_raw_fd(), true)
    }

    /// Receives into `buf` (from its start, up to its capacity). 0 means the
    /// peer closed its side.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at the buffer, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Recv, Transfer { buf }, |d, shorten| {
                let len = maybe_short(d.buf.bytes_total(), shorten);
                opcode::Recv::new(types::Fd(fd), d.buf.stable_mut_ptr(), len).build()
            })
        };
        op.await
    }

    /// Sends `buf`'s initialized bytes; returns how many were sent.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.send_flags(buf, libc::MSG_NOSIGNAL).await
    }

    async fn send_flags<B: IoBuf>(&self, buf: B, flags: i32) -> (io::Result<usize>, B) {
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at the buffer, heap memory owned by the op.
        let op = unsafe {
            Op::submit(OpKind::Send, Outgoing { buf }, |d, shorten| {
                let len = maybe_short(d.buf.bytes_init(), shorten);
                opcode::Send::new(types::Fd(fd), d.buf.stable_ptr(), len).flags(flags).build()
            })
        };
        op.await
    }

    /// Sends all of `buf` with `MSG_MORE`: the kernel holds a partial
    /// segment back for the bytes the caller sends next (a head before a
    /// spliced body), even with `TCP_NODELAY`. The next send without it
    /// pushes everything out.
    ///
    /// # Errors
    /// As send(2); `WriteZero` if the kernel accepts no bytes.
    pub async fn send_all_more<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let flags = libc::MSG_NOSIGNAL | libc::MSG_MORE;
        transfer_all(buf, total, io::ErrorKind::WriteZero, |rest, _| self.send_flags(rest, flags)).await
    }

    /// Sends all of `buf`, continuing after short sends.
    ///
    /// # Errors
    /// As send(2); `WriteZero` if the kernel accepts no bytes.
    pub async fn send_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        transfer_all(buf, total, io::ErrorKind::WriteZero, |rest, _| self.send(rest)).await
    }

    /// Sends several buffers in one operation (a header and a body, say);
    /// returns the bytes sent, which may be fewer than all of them.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        self.writev_from(bufs, 0).await
    }

    async fn writev_from<B: IoBuf>(&self, bufs: Vec<B>, skip: usize) -> (io::Result<usize>, Vec<B>) {
        let mut skip = skip;
        let mut iovecs = Vec::with_capacity(bufs.len());
        for buf in &bufs {
            let len = buf.bytes_init();
            if skip >= len {
                skip -= len;
                continue;
            }
            iovecs.push(libc::iovec {
                // SAFETY: `skip < len`, so the pointer stays inside the buffer.
                iov_base: unsafe { buf.stable_ptr().add(skip) } as *mut libc::c_void,
                iov_len: len - skip,
            });
            skip = 0;
        }
        let fd = self.fd.as_raw_fd();
        // SAFETY: the SQE points at `iovecs` (a heap Vec owned by the op) whose
        // entries point into `bufs` (heap buffers owned by the op).
        let op = unsafe {
            Op::submit(OpKind::Send, Writev { bufs, iovecs }, |d, shorten| {
                if shorten {
                    if let Some(last) = d.iovecs.last_mut() {
                        last.iov_len = (last.iov_len / 2).max(1);
                    }
                }
                opcode::Writev::new(types::Fd(fd), d.iovecs.as_ptr(), d.iovecs.len() as u32).build()
            })
        };
        op.await
    }

    /// Sends every byte of every buffer, continuing after short writes.
    ///
    /// # Errors
    /// As writev(2); `WriteZero` if the kernel accepts no bytes.
    pub async fn writev_all<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<()>, Vec<B>) {
        let total: usize = bufs.iter().map(IoBuf::bytes_init).sum();
        let mut done = 0;
        let mut bufs = bufs;
        while done < total {
            let (result, back) = self.writev_from(bufs, done).await;
            bufs = back;
            match result {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), bufs),
                Ok(n) => done += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return (Err(err), bufs),
            }
        }
        (Ok(()), bufs)
    }

    /// Shuts down one or both directions.
    ///
    /// # Errors
    /// As shutdown(2).
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        let fd = self.fd.as_raw_fd();
        // SAFETY: the shutdown SQE points at no memory.
        let op =
            unsafe { Op::submit(OpKind::Shutdown, NoData, |_, _| opcode::Shutdown::new(types::Fd(fd), how).build()) };
        op.await.map(drop)
    }

    /// Closes the connection and reports the result.
    ///
    /// # Errors
    /// As close(2).
    pub async fn close(self) -> io::Result<()> {
        close_fd(self.fd).await
    }

    /// A stream of received data over one multishot recv that picks buffers
    /// from `ring` only when data arrives.
    pub fn recv_multi(&self, ring: &BufRing) -> RecvStream<'_> {
        RecvStream {
            stream: self,
            ring: ring.inner.clone(),
            op: Multishot::new(OpKind::Recv, RecvOrphan { ring: ring.inner.clone() }),
            eof: false,
            starved: false,
            transient: 0,
            halted: false,
        }
    }
}

/// Gives back the provided buffers that a multishot recv receives after its
/// stream is gone.
struct RecvOrphan {
    ring: Rc<bufring::Inner>,
}

impl Orphan for RecvOrphan {
    fn release(&mut self, cqe: Cqe) {
        if let Some(bid) = io_uring::cqueue::buffer_select(cqe.flags) {
            drop(self.ring.take(bid, 0));
        }
    }
}

/// Data received by one multishot recv. See [`TcpStream::recv_multi`].
pub struct RecvStream<'a> {
    stream: &'a TcpStream,
    ring: Rc<bufring::Inner>,
    op: Multishot<RecvOrphan>,
    eof: bool,
    /// The ring ran dry (`ENOBUFS`): re-arm when a buffer comes back.
    starved: bool,
    /// Transient errors (`EINTR`, `EAGAIN`, `ECANCELED`) in a row since the
    /// last data: each ends the multishot, which is re-armed, up to
    /// `TRANSIENT_RETRIES_MAX` times before the error is passed on.
    transient: u32,
    /// [`RecvStream::halt`] was called: never re-armed again.
    halted: bool,
}

/// Re-arms after this many transient errors in a row, then gives up (so a
/// persistent one cannot spin through the ring for ever).
const TRANSIENT_RETRIES_MAX: u32 = 8;

impl<'a> RecvStream<'a> {
    /// The next filled buffer; `None` once the peer has closed its side.
    #[allow(clippy::should_implement_trait, reason = "an async stream's next, not Iterator::next")]
    pub fn next(&mut self) -> impl Future<Output = Option<io::Result<RingBuf>>> + use<'_, 'a> {
        std::future::poll_fn(move |cx| self.poll_next(cx))
    }

    /// Stops receiving, losing nothing: the multishot is cancelled and
    /// never re-armed. `next` then yields what the kernel had already
    /// received into the ring, then `None` once the request has ended
    /// (bytes that arrive later stay in the socket, for whoever reads it
    /// next: another thread's ring, say). A peer that closed meanwhile also
    /// ends it with `None`.
    pub fn halt(&mut self) {
        self.halted = true;
        self.op.cancel();
    }

    /// Polls for the next filled buffer.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<RingBuf>>> {
        loop {
            if self.eof {
                return Poll::Ready(None);
            }
            if !self.op.is_armed() {
                if self.halted {
                    return Poll::Ready(None);
                }
                if self.starved {
                    if self.ring.available() == 0 {
                        self.ring.wait_for_buffer(cx.waker());
                        return Poll::Pending;
                    }
                    self.starved = false;
                }
                let entry = opcode::RecvMulti::new(types::Fd(self.stream.fd.as_raw_fd()), self.ring.bgid()).build();
                // SAFETY: the SQE points into the buffer ring, which the op's
                // orphan (`RecvOrphan`) keeps registered and mapped until the
                // request's final completion.
                unsafe { self.op.arm(entry) };
            }
            match self.op.poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => continue,
                Poll::Ready(Some(cqe)) => {
                    let buf = io_uring::cqueue::buffer_select(cqe.flags)
                        .map(|bid| self.ring.take(bid, cqe.result.max(0) as usize));
                    match cqe.result {
                        0 => {
                            self.eof = true;
                            drop(buf);
                            return Poll::Ready(None);
                        }
                        n if n > 0 => {
                            self.transient = 0;
                            let buf = buf.expect("a multishot recv with data reports its buffer");
                            return Poll::Ready(Some(Ok(buf)));
                        }
                        n if self.halted
                            && matches!(-n, libc::EINTR | libc::EAGAIN | libc::ECANCELED | libc::ENOBUFS) =>
                        {
                            // The end `halt` asked for (or one that came
                            // first): no re-arm; `None` once the slot is done.
                            continue;
                        }
                        n if matches!(-n, libc::EINTR | libc::EAGAIN | libc::ECANCELED)
                            && self.transient < TRANSIENT_RETRIES_MAX =>
                        {
                            // Ended by something other than `halt` (or a
                            // dropped stream): arm it again.
                            self.transient += 1;
                            continue;
                        }
                        n if -n == libc::ENOBUFS => {
                            self.starved = true;
                            continue;
                        }
                        n => return Poll::Ready(Some(Err(io::Error::from_raw_os_error(-n)))),
                    }
                }
            }
        }
    }
}
