//! One data-plane worker: a thread that owns a TUN device, the raw and UDP
//! sockets, and a [`Plane`], and moves packets between them. Control (install
//! or remove SAs and policies, read counters, stop) reaches it as closures over
//! a channel, with an eventfd to wake its `poll`, so the packet path takes no
//! lock at all.

use crate::plane::{rebuild_udp_outer, rebuild_v6_header, InVerdict, OutVerdict, Plane, Transmit};
use crate::sock::{RawSocket, RecvBatch};
use crate::tun::Tun;
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::time::Instant;

/// Bytes reserved in front of every packet for headers added in place
/// (outer IPv6 + UDP + ESP header + IV, with margin).
pub const HEADROOM: usize = 128;
/// Largest packet handled, plus room for ESP padding, trailer and ICV.
pub const BUF_SIZE: usize = HEADROOM + 9216 + 512;
/// Datagrams fetched per recvmmsg call.
pub const BATCH: usize = 32;

/// Work for the worker thread, run between packets.
pub enum Command {
    /// Change or inspect the plane (install/remove SAs and policies, read counters).
    Apply(Box<dyn FnOnce(&mut Plane) + Send>),
    /// Leave the loop.
    Stop,
}

/// A raw socket receiving one protocol at one local address.
pub struct RawEndpoint {
    pub local: IpAddr,
    pub sock: RawSocket,
}

/// A UDP socket for ESP-in-UDP (RFC 3948), bound to `local`.
pub struct UdpEndpoint {
    pub local: SocketAddr,
    pub sock: UdpSocket,
}

/// Packets moved and dropped for lack of a socket, as the worker saw them.
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCounters {
    pub tun_in: u64,
    pub tun_out: u64,
    pub wire_in: u64,
    pub wire_out: u64,
    pub send_errors: u64,
    pub ike_on_4500: u64,
}

/// The sending half of the control channel.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    wake: RawFd,
    _wake_owner: std::sync::Arc<OwnedFd>,
}

impl Handle {
    /// Queue a command and wake the worker. Fails only if the worker is gone.
    pub fn send(&self, cmd: Command) -> Result<(), WorkerGone> {
        self.tx.send(cmd).map_err(|_| WorkerGone)?;
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd we keep open.
        unsafe { libc::write(self.wake, &one as *const u64 as *const libc::c_void, 8) };
        Ok(())
    }

    /// Run `f` on the plane in the worker thread and return its result.
    pub fn query<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Plane) -> R + Send + 'static,
    ) -> Result<R, WorkerGone> {
        let (rtx, rrx) = mpsc::channel();
        self.send(Command::Apply(Box::new(move |p| {
            let _ = rtx.send(f(p));
        })))?;
        rrx.recv().map_err(|_| WorkerGone)
    }
}

/// The worker thread has exited.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the data-plane worker has stopped")]
pub struct WorkerGone;

pub struct Worker {
    pub plane: Plane,
    tun: Tun,
    raw: Vec<RawEndpoint>,
    udp: Vec<UdpEndpoint>,
    rx: mpsc::Receiver<Command>,
    wake: std::sync::Arc<OwnedFd>,
    start: Instant,
    pub io: IoCounters,
}

impl Worker {
    /// Build a worker from already-opened descriptors, and the handle that controls it.
    pub fn new(
        plane: Plane,
        tun: Tun,
        raw: Vec<RawEndpoint>,
        udp: Vec<UdpEndpoint>,
    ) -> io::Result<(Worker, Handle)> {
        // SAFETY: eventfd(2) with constant flags; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nothing else.
        let wake = std::sync::Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        tun.set_nonblocking(true)?;
        for r in &raw {
            r.sock.set_nonblocking(true)?;
        }
        for u in &udp {
            u.sock.set_nonblocking(true)?;
        }
        let (tx, rx) = mpsc::channel();
        let handle = Handle {
            tx,
            wake: wake.as_raw_fd(),
            _wake_owner: wake.clone(),
        };
        Ok((
            Worker {
                plane,
                tun,
                raw,
                udp,
                rx,
                wake,
                start: Instant::now(),
                io: IoCounters::default(),
            },
            handle,
        ))
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.start.elapsed().as_nanos() as u64)
    }

    /// Run until [`Command::Stop`] or until every [`Handle`] is dropped.
    pub fn run(mut self) -> io::Result<Worker> {
        let mut out_storage = vec![0u8; BUF_SIZE];
        let mut batch = RecvBatch::with_headroom(BATCH, BUF_SIZE - HEADROOM - 512, HEADROOM);
        loop {
            let mut fds = Vec::with_capacity(2 + self.raw.len() + self.udp.len());
            fds.push(pollfd(self.wake.as_raw_fd()));
            fds.push(pollfd(self.tun.as_raw_fd()));
            fds.extend(self.raw.iter().map(|r| pollfd(r.sock.as_raw_fd())));
            fds.extend(self.udp.iter().map(|u| pollfd(u.sock.as_raw_fd())));
            // SAFETY: fds is a live array of pollfd of the given length.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[0].revents != 0 && !self.drain_commands() {
                return Ok(self);
            }
            if fds[1].revents != 0 {
                self.from_tun(&mut out_storage);
            }
            for i in 0..self.raw.len() {
                if fds[2 + i].revents != 0 {
                    self.from_raw(i, &mut batch);
                }
            }
            for i in 0..self.udp.len() {
                if fds[2 + self.raw.len() + i].revents != 0 {
                    self.from_udp(i, &mut batch);
                }
            }
        }
    }

    /// Run queued commands; false when the worker should stop.
    fn drain_commands(&mut self) -> bool {
        let mut counter = [0u8; 8];
        // SAFETY: reading 8 bytes into a live buffer from our eventfd.
        unsafe {
            libc::read(
                self.wake.as_raw_fd(),
                counter.as_mut_ptr() as *mut libc::c_void,
                8,
            )
        };
        loop {
            match self.rx.try_recv() {
                Ok(Command::Apply(f)) => f(&mut self.plane),
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Cleartext from the TUN: seal and send, up to a batch at a time.
    fn from_tun(&mut self, storage: &mut [u8]) {
        for _ in 0..BATCH {
            let n = match self.tun.recv(&mut storage[HEADROOM..BUF_SIZE - 512]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("reading the TUN device failed: {e}");
                    return;
                }
            };
            self.io.tun_in += 1;
            let now = self.now();
            let Ok(mut buf) = PacketBuf::new(storage, HEADROOM, n) else {
                continue;
            };
            match self.plane.outbound(now, &mut buf) {
                OutVerdict::Send(t) => self.transmit(t, buf.data()),
                OutVerdict::Drop(_) => {}
            }
        }
    }

    fn transmit(&mut self, t: Transmit, packet: &[u8]) {
        let result = match t {
            Transmit::Raw { dst, proto } => {
                match self
                    .raw
                    .iter()
                    .find(|r| r.sock.protocol() == proto && r.local.is_ipv6() == dst.is_ipv6())
                {
                    Some(r) => r.sock.send(packet, dst).map(|_| ()),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no raw socket for this protocol and family",
                    )),
                }
            }
            Transmit::Udp {
                dst,
                src_port,
                offset,
            } => {
                match self
                    .udp
                    .iter()
                    .find(|u| u.local.port() == src_port && u.local.is_ipv6() == dst.is_ipv6())
                {
                    Some(u) => u
                        .sock
                        .send_to(packet.get(offset..).unwrap_or(&[]), dst)
                        .map(|_| ()),
                    None => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        "no UDP socket for this port and family",
                    )),
                }
            }
        };
        match result {
            Ok(()) => self.io.wire_out += 1,
            Err(e) => {
                self.io.send_errors += 1;
                tracing::debug!("sending a protected packet failed: {e}");
            }
        }
    }

    fn deliver(&mut self, verdict: InVerdict, packet: &[u8]) {
        match verdict {
            InVerdict::Deliver => match self.tun.send(packet) {
                Ok(_) => self.io.tun_out += 1,
                Err(e) => tracing::debug!("writing to the TUN device failed: {e}"),
            },
            InVerdict::Ike => self.io.ike_on_4500 += 1,
            InVerdict::Consumed | InVerdict::Drop(_) => {}
        }
    }

    fn from_raw(&mut self, i: usize, batch: &mut RecvBatch) {
        let fd = self.raw[i].sock.as_raw_fd();
        let (local, proto, v6) = (
            self.raw[i].local,
            self.raw[i].sock.protocol(),
            self.raw[i].sock.is_v6(),
        );
        while let Ok(n) = batch.recv(fd) {
            for k in 0..n {
                let Some((src, storage, head, len)) = batch.slot_mut(k) else {
                    break;
                };
                self.io.wire_in += 1;
                let Ok(mut buf) = PacketBuf::new(storage, head, len) else {
                    continue;
                };
                if v6 {
                    // The kernel stripped the IPv6 header; put back the fields AH
                    // and transport mode need (addresses and next header).
                    let (Some(SocketAddr::V6(s)), IpAddr::V6(d)) = (src, local) else {
                        continue;
                    };
                    if rebuild_v6_header(&mut buf, *s.ip(), d, proto).is_err() {
                        continue;
                    }
                }
                let now = self.now();
                let verdict = self.plane.inbound(now, &mut buf);
                self.deliver(verdict, buf.data());
            }
            if n < BATCH {
                break;
            }
        }
    }

    fn from_udp(&mut self, i: usize, batch: &mut RecvBatch) {
        let fd = self.udp[i].sock.as_raw_fd();
        let local = self.udp[i].local;
        while let Ok(n) = batch.recv(fd) {
            for k in 0..n {
                let Some((Some(src), storage, head, len)) = batch.slot_mut(k) else {
                    continue;
                };
                self.io.wire_in += 1;
                let Ok(mut buf) = PacketBuf::new(storage, head, len) else {
                    continue;
                };
                if rebuild_udp_outer(&mut buf, src, local).is_err() {
                    continue;
                }
                let now = self.now();
                let verdict = self.plane.inbound(now, &mut buf);
                self.deliver(verdict, buf.data());
            }
            if n < BATCH {
                break;
            }
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
