//! One data-plane worker: a thread that owns a TUN device, the raw and UDP
//! sockets, and a [`Plane`], and moves packets between them. Control (install
//! or remove SAs and policies, read counters, stop) reaches it as closures over
//! a channel, with an eventfd to wake its `poll`, so the packet path takes no
//! lock at all.

use crate::plane::{
    rebuild_v6_header, FlowHint, InVerdict, KeepaliveTransmit, OutVerdict, Plane, Transmit,
    NAT_KEEPALIVE,
};
use crate::sock::{
    recv_path_mtu, set_buffers, set_recv_tos, set_recverr, set_udp_gro, RawSocket, RecvBatch,
    SendRing,
};
use crate::tun::{Coalescer, Offload, Tun, OFFLOAD_READ_MAX};
use crate::wake::{pollin as pollfd, Waker};
use palisade_sa::buf::PacketBuf;
use palisade_sa::lifetime::Timestamp;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::time::Instant;

/// Bytes reserved in front of every packet for headers added in place
/// (outer IPv6 + UDP + ESP header + IV, with margin).
pub const HEADROOM: usize = 128;
/// Largest packet handled, plus room for ESP padding, trailer and ICV.
pub const BUF_SIZE: usize = HEADROOM + 9216 + 512;
/// Datagrams fetched per recvmmsg call.
pub const BATCH: usize = 32;
/// Packets read from the TUN device before the sealed batch is sent.
pub const TUN_BATCH: usize = 64;
/// Coalesced (UDP GRO) datagrams fetched per recvmmsg call, each up to
/// [`GRO_BUF`] bytes: one call may bring hundreds of packets.
pub const GRO_BATCH: usize = 8;
/// Room for one coalesced datagram.
pub const GRO_BUF: usize = 65536;
/// Receive and send buffer of every wire socket.
const SOCKET_BUFFER: usize = 4 << 20;
/// Batches taken from one descriptor per wakeup before the others get a turn.
const TUN_ROUNDS: usize = 4;
const WIRE_ROUNDS: usize = 4;

/// Work for the worker thread, run between packets.
pub enum Command {
    /// Change or inspect the plane (install/remove SAs and policies, read counters).
    Apply(Box<dyn FnOnce(&mut Plane) + Send>),
    /// Change the worker's sockets (a reload that needs a new local address
    /// or UDP port): the closure may add to (or remove from) the lists; the
    /// poll set is rebuilt after it, and new sockets made non-blocking, with
    /// large buffers and UDP GRO like those given at start.
    Sockets(SocketsFn),
    /// Read the worker's own counters (for status).
    Io(Box<dyn FnOnce(&IoCounters) + Send>),
    /// Leave the loop.
    Stop,
}

/// See [`Command::Sockets`].
pub type SocketsFn = Box<dyn FnOnce(&mut Vec<RawEndpoint>, &mut Vec<UdpEndpoint>) + Send>;

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
    /// Reads from an offloading TUN that could not be cut into packets.
    pub tun_bad_offload: u64,
    /// NAT-keepalives (RFC 3948 4) sent.
    pub keepalives_sent: u64,
    /// UDP GSO sends the kernel refused and that went out datagram by
    /// datagram instead; three in a row pause GSO for a while (4096
    /// flushes), so a non-zero value explains a throughput drop.
    pub gso_fallbacks: u64,
}

/// The sending half of the control channel.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    wake: Waker,
}

impl Handle {
    /// Queue a command and wake the worker. Fails only if the worker is gone.
    pub fn send(&self, cmd: Command) -> Result<(), WorkerGone> {
        self.tx.send(cmd).map_err(|_| WorkerGone)?;
        self.wake.wake();
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

    /// The worker's packet counters ([`IoCounters`]), as of now.
    pub fn io_counters(&self) -> Result<IoCounters, WorkerGone> {
        let (rtx, rrx) = mpsc::channel();
        self.send(Command::Io(Box::new(move |io| {
            let _ = rtx.send(*io);
        })))?;
        rrx.recv().map_err(|_| WorkerGone)
    }

    /// Run `f` on the worker's socket lists in the worker thread and return
    /// its result (see [`Command::Sockets`]).
    pub fn with_sockets<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<RawEndpoint>, &mut Vec<UdpEndpoint>) -> R + Send + 'static,
    ) -> Result<R, WorkerGone> {
        let (rtx, rrx) = mpsc::channel();
        self.send(Command::Sockets(Box::new(move |raw, udp| {
            let _ = rtx.send(f(raw, udp));
        })))?;
        rrx.recv().map_err(|_| WorkerGone)
    }
}

/// The worker thread has exited.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the data-plane worker has stopped")]
pub struct WorkerGone;

/// Where IKE messages that arrive on an ESP-in-UDP socket (RFC 3948: port
/// 4500, after the non-ESP marker) are handed: `(local, remote, datagram)`,
/// the datagram as received, marker included.
pub type IkeSink = Box<dyn FnMut(SocketAddr, SocketAddr, &[u8]) + Send>;

/// Where trap hits ([`crate::plane::Acquire`]) go: the key manager.
pub type AcquireSink = Box<dyn FnMut(crate::plane::Acquire) + Send>;
/// Where SAs that reached a lifetime limit ([`crate::plane::LifetimeHit`]) are reported.
pub type LifetimeSink = Box<dyn FnMut(crate::plane::LifetimeHit) + Send>;

pub struct Worker {
    pub plane: Plane,
    ike_sink: Option<IkeSink>,
    acquire_sink: Option<AcquireSink>,
    lifetime_sink: Option<LifetimeSink>,
    tun: Tun,
    raw: Vec<RawEndpoint>,
    udp: Vec<UdpEndpoint>,
    rx: mpsc::Receiver<Command>,
    wake: Waker,
    start: Instant,
    pub io: IoCounters,
    /// A [`Command::Sockets`] ran: rebuild the poll set.
    sockets_changed: bool,
}

impl Worker {
    /// Build a worker from already-opened descriptors, and the handle that controls it.
    pub fn new(
        plane: Plane,
        tun: Tun,
        raw: Vec<RawEndpoint>,
        udp: Vec<UdpEndpoint>,
    ) -> io::Result<(Worker, Handle)> {
        let wake = Waker::new()?;
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
            wake: wake.clone(),
        };
        Ok((
            Worker {
                plane,
                ike_sink: None,
                acquire_sink: None,
                lifetime_sink: None,
                tun,
                raw,
                udp,
                rx,
                wake,
                start: Instant::now(),
                io: IoCounters::default(),
                sockets_changed: false,
            },
            handle,
        ))
    }

    /// Report SAs that reach a soft or hard lifetime limit to `sink`.
    pub fn set_lifetime_sink(&mut self, sink: LifetimeSink) {
        self.lifetime_sink = Some(sink);
    }

    /// Hand the plane's acquires and lifetime hits to their sinks.
    fn report(&mut self) {
        if let Some(sink) = self.acquire_sink.as_mut() {
            for a in self.plane.take_acquires() {
                sink(a);
            }
        }
        if let Some(sink) = self.lifetime_sink.as_mut() {
            for h in self.plane.take_lifetime_hits() {
                sink(h);
            }
        }
    }

    /// Report packets that hit a trap policy to `sink`.
    pub fn set_acquire_sink(&mut self, sink: AcquireSink) {
        self.acquire_sink = Some(sink);
    }

    /// Hand IKE messages received on the UDP sockets to `sink` instead of
    /// counting and dropping them.
    pub fn set_ike_sink(&mut self, sink: IkeSink) {
        self.ike_sink = Some(sink);
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.start.elapsed().as_nanos() as u64)
    }

    /// Run until [`Command::Stop`] or until every [`Handle`] is dropped.
    pub fn run(mut self) -> io::Result<Worker> {
        // Everything the packet path touches is allocated here, once.
        let mut ring = SendRing::new(TUN_BATCH, BUF_SIZE);
        // An offloading TUN's reads (up to 64 KiB) and how far one is cut.
        let mut big = vec![
            0u8;
            if self.tun.offload() {
                OFFLOAD_READ_MAX
            } else {
                0
            }
        ];
        let mut pending = (0usize, 0usize);
        // Decrypted TCP segments merged into super-packets for an offloading TUN.
        let mut coalescer = Coalescer::new();
        let mut raw_batch = RecvBatch::with_headroom(BATCH, BUF_SIZE - HEADROOM - 512, HEADROOM);
        let (mut fds, mut udp_batch) = self.prepare_sockets();
        let mut keepalives = Vec::new();
        loop {
            for f in fds.iter_mut() {
                f.revents = 0;
            }
            let timeout = self.send_keepalives(&mut keepalives);
            // SAFETY: fds is a live array of pollfd of the given length.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if fds[0].revents != 0 {
                if !self.drain_commands() {
                    return Ok(self);
                }
                if self.sockets_changed {
                    self.sockets_changed = false;
                    (fds, udp_batch) = self.prepare_sockets();
                    // The revents were for the old set.
                    continue;
                }
            }
            if fds[1].revents != 0 {
                self.on_tun(&mut ring, &mut big, &mut pending);
            }
            for (i, f) in fds[2..].iter().enumerate() {
                if f.revents & libc::POLLERR != 0 {
                    self.on_socket_error(f.fd);
                }
                if f.revents & !libc::POLLERR == 0 {
                    continue;
                }
                if i < self.raw.len() {
                    self.on_raw(i, &mut raw_batch, &mut coalescer);
                } else {
                    self.on_udp(i - self.raw.len(), &mut udp_batch, &mut coalescer);
                }
            }
            self.report();
        }
    }

    /// Make every socket ready (non-blocking, large buffers, UDP GRO) and
    /// build the poll set and the UDP receive batch for them. At start and
    /// after a [`Command::Sockets`].
    fn prepare_sockets(&mut self) -> (Vec<libc::pollfd>, RecvBatch) {
        for fd in self
            .raw
            .iter()
            .map(|r| r.sock.as_raw_fd())
            .chain(self.udp.iter().map(|u| u.sock.as_raw_fd()))
        {
            if let Err(e) = crate::sock::set_nonblocking(fd, true) {
                tracing::warn!("cannot make a socket non-blocking: {e}");
            }
            if let Err(e) = set_buffers(fd, SOCKET_BUFFER) {
                tracing::debug!("cannot enlarge socket buffers: {e}");
            }
        }
        // ICMP too-big about protected packets, for the path MTU.
        for (fd, v6) in self
            .raw
            .iter()
            .map(|r| (r.sock.as_raw_fd(), r.sock.is_v6()))
            .chain(
                self.udp
                    .iter()
                    .map(|u| (u.sock.as_raw_fd(), u.local.is_ipv6())),
            )
        {
            if let Err(e) = set_recverr(fd, v6) {
                tracing::debug!("cannot ask for ICMP errors on a socket: {e}");
            }
        }
        // The outer ECN of ESP-in-UDP, for RFC 6040 decapsulation.
        for u in &self.udp {
            if let Err(e) = set_recv_tos(u.sock.as_raw_fd(), u.local.is_ipv6()) {
                tracing::debug!("cannot ask for the TOS of received datagrams: {e}");
            }
        }
        let gro = self
            .udp
            .iter()
            .all(|u| set_udp_gro(u.sock.as_raw_fd(), true).is_ok());
        let udp_batch = if self.udp.is_empty() {
            RecvBatch::new(1, 1)
        } else if gro {
            RecvBatch::with_headroom(GRO_BATCH, GRO_BUF, HEADROOM)
        } else {
            RecvBatch::with_headroom(BATCH, BUF_SIZE - HEADROOM - 512, HEADROOM)
        };
        let mut fds = Vec::with_capacity(2 + self.raw.len() + self.udp.len());
        fds.push(pollfd(self.wake.fd()));
        fds.push(pollfd(self.tun.as_raw_fd()));
        fds.extend(self.raw.iter().map(|r| pollfd(r.sock.as_raw_fd())));
        fds.extend(self.udp.iter().map(|u| pollfd(u.sock.as_raw_fd())));
        (fds, udp_batch)
    }

    /// The UDP socket to send from `src`:`port` to `dst`: the one bound to
    /// that address, else a wildcard one, else (with `src` unknown or
    /// unbound) any of the port and family.
    fn udp_socket(&self, src: Option<IpAddr>, port: u16, dst: SocketAddr) -> Option<&UdpEndpoint> {
        crate::sock::pick_bound(&self.udp, |u| u.local, src, port, dst)
    }

    /// Drain a socket's error queue; "message too long" errors (ICMP
    /// fragmentation needed / packet too big about a protected packet) set
    /// the path MTU towards that peer.
    fn on_socket_error(&mut self, fd: RawFd) {
        let now = self.now();
        for _ in 0..64 {
            match recv_path_mtu(fd) {
                Ok(Some((dst, mtu))) => {
                    let mtu = mtu as usize;
                    if self.plane.path_mtu(now, dst) != Some(mtu) {
                        tracing::info!("path MTU towards {dst} is {mtu}");
                    }
                    self.plane.note_path_mtu(now, dst, mtu);
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    }

    /// Send the NAT-keepalives that are due and return how long `poll` may
    /// sleep (ms) before the next one: at most a second.
    fn send_keepalives(&mut self, due: &mut Vec<KeepaliveTransmit>) -> libc::c_int {
        let now = self.now();
        due.clear();
        self.plane.poll_keepalives(now, due);
        for k in due.iter() {
            let sock = self.udp_socket(k.src, k.src_port, k.dst);
            match sock.map(|u| u.sock.send_to(&NAT_KEEPALIVE, k.dst)) {
                Some(Ok(_)) => self.io.keepalives_sent += 1,
                Some(Err(e)) => {
                    self.io.send_errors += 1;
                    tracing::debug!("NAT-keepalive to {} failed: {e}", k.dst);
                }
                None => {
                    self.io.send_errors += 1;
                    tracing::debug!("no UDP socket on port {} for a NAT-keepalive", k.src_port);
                }
            }
        }
        match self.plane.next_keepalive(now) {
            // Round up, so the wake-up is never early (a busy loop).
            Some(t) => {
                let ms = t.0.saturating_sub(now.0).div_ceil(1_000_000);
                ms.min(1000) as libc::c_int
            }
            None => 1000,
        }
    }

    /// Run queued commands; false when the worker should stop.
    fn drain_commands(&mut self) -> bool {
        self.wake.clear();
        loop {
            match self.rx.try_recv() {
                Ok(Command::Apply(f)) => f(&mut self.plane),
                Ok(Command::Sockets(f)) => {
                    f(&mut self.raw, &mut self.udp);
                    self.sockets_changed = true;
                }
                Ok(Command::Io(f)) => f(&self.io),
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Cleartext from the TUN: read up to a ring's worth, seal each in its own
    /// buffer, send the lot with one sendmmsg (runs of same-size ESP-in-UDP
    /// datagrams as one UDP GSO message); a few rounds per wakeup.
    fn on_tun(&mut self, ring: &mut SendRing, big: &mut [u8], pending: &mut (usize, usize)) {
        // The SPD's answer for the super-packet being cut (asked afresh on
        // each call: commands may have changed the SPD since the last).
        let mut flow = FlowHint::default();
        for _ in 0..TUN_ROUNDS {
            let now = self.now();
            let mut drained = false;
            while !ring.is_full() {
                let storage = ring.next_buf();
                let room = &mut storage[HEADROOM..BUF_SIZE - 512];
                let n = if self.tun.offload() {
                    // A super-packet is cut into ring buffers, as many per
                    // round as fit; `pending` = (bytes read, next segment).
                    if pending.1 == 0 {
                        flow = FlowHint::default();
                    }
                    if pending.0 == 0 {
                        match self.tun.recv(big) {
                            Ok(n) => *pending = (n, 0),
                            Err(e) => {
                                if e.kind() != io::ErrorKind::WouldBlock {
                                    tracing::warn!("reading the TUN device failed: {e}");
                                }
                                drained = true;
                                break;
                            }
                        }
                    }
                    let Some(o) = Offload::parse(&big[..pending.0]) else {
                        *pending = (0, 0);
                        self.io.tun_bad_offload += 1;
                        continue;
                    };
                    let seg = o.segment(pending.1, room);
                    pending.1 += 1;
                    if pending.1 >= o.count() {
                        *pending = (0, 0);
                    }
                    match seg {
                        Some(n) => n,
                        None => {
                            self.io.tun_bad_offload += 1;
                            continue;
                        }
                    }
                } else {
                    flow = FlowHint::default();
                    match self.tun.recv(room) {
                        Ok(n) => n,
                        Err(e) => {
                            if e.kind() != io::ErrorKind::WouldBlock {
                                tracing::warn!("reading the TUN device failed: {e}");
                            }
                            drained = true;
                            break;
                        }
                    }
                };
                self.io.tun_in += 1;
                let Ok(mut buf) = PacketBuf::new(storage, HEADROOM, n) else {
                    continue;
                };
                let verdict = self.plane.outbound_in_flow(now, &mut buf, &mut flow);
                let (start, len) = (buf.offset(), buf.len());
                match verdict {
                    OutVerdict::Send(t) => self.queue(ring, t, start, len),
                    OutVerdict::TooBig { .. } => {
                        if let Err(e) = self.tun.send(buf.data()) {
                            tracing::debug!("writing an ICMP too-big to the TUN failed: {e}");
                        }
                    }
                    OutVerdict::Drop(_) => {}
                }
            }
            let f = ring.flush();
            self.io.gso_fallbacks += f.gso_fallbacks;
            self.io.wire_out += f.sent;
            self.io.send_errors += f.failed;
            if drained {
                return;
            }
        }
    }

    /// Queue the sealed packet at `start..start + len` of the ring's next
    /// buffer for the socket `t` names.
    fn queue(&mut self, ring: &mut SendRing, t: Transmit, start: usize, len: usize) {
        let queued = match t {
            Transmit::Raw { dst, proto } => self
                .raw
                .iter()
                .find(|r| r.sock.protocol() == proto && r.local.is_ipv6() == dst.is_ipv6())
                .map(|r| {
                    // The packet carries its own IP header (and TOS).
                    ring.commit(
                        r.sock.as_raw_fd(),
                        start,
                        len,
                        SocketAddr::new(dst, 0),
                        false,
                        0,
                    )
                }),
            Transmit::Udp {
                dst,
                src,
                offset,
                tos,
            } => {
                let sock = self.udp_socket(Some(src.ip()), src.port(), dst);
                sock.map(|u| {
                    offset <= len
                        && ring.commit(
                            u.sock.as_raw_fd(),
                            start + offset,
                            len - offset,
                            dst,
                            true,
                            tos,
                        )
                })
            }
        };
        if queued != Some(true) {
            self.io.send_errors += 1;
            tracing::debug!("no socket for a protected packet ({t:?})");
        }
    }

    fn deliver(&mut self, gro: &mut Coalescer, verdict: InVerdict, packet: &[u8]) {
        match verdict {
            InVerdict::Deliver => match gro.push(&self.tun, packet) {
                Ok(()) => self.io.tun_out += 1,
                Err(e) => tracing::debug!("writing to the TUN device failed: {e}"),
            },
            InVerdict::Ike => self.io.ike_on_4500 += 1,
            InVerdict::Consumed | InVerdict::Drop(_) => {}
        }
    }

    fn on_raw(&mut self, i: usize, batch: &mut RecvBatch, gro: &mut Coalescer) {
        let fd = self.raw[i].sock.as_raw_fd();
        let (local, proto, v6) = (
            self.raw[i].local,
            self.raw[i].sock.protocol(),
            self.raw[i].sock.is_v6(),
        );
        for _ in 0..WIRE_ROUNDS {
            let Ok(n) = batch.recv(fd) else { break };
            let now = self.now();
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
                let verdict = self.plane.inbound(now, &mut buf);
                self.deliver(gro, verdict, buf.data());
            }
            if let Err(e) = gro.flush(&self.tun) {
                tracing::debug!("writing to the TUN device failed: {e}");
            }
            if n < batch.capacity() {
                break;
            }
        }
    }

    /// ESP-in-UDP from the wire. With UDP GRO one datagram may hold many
    /// same-size segments back to back: each is opened in place (when the
    /// general path needs an outer header, it is rebuilt in the bytes of the
    /// segment before it, already done).
    fn on_udp(&mut self, i: usize, batch: &mut RecvBatch, gro: &mut Coalescer) {
        let fd = self.udp[i].sock.as_raw_fd();
        let local = self.udp[i].local;
        for _ in 0..WIRE_ROUNDS {
            let Ok(n) = batch.recv(fd) else { break };
            let now = self.now();
            for k in 0..n {
                let seg = batch.segment_size(k);
                let tos = batch.tos(k);
                let Some((Some(src), storage, head, len)) = batch.slot_mut(k) else {
                    continue;
                };
                let step = seg.unwrap_or(len).max(1);
                let end = head + len;
                let mut at = head;
                while at < end {
                    let seg_end = (at + step).min(end);
                    let this = at;
                    at = seg_end;
                    self.io.wire_in += 1;
                    let Some(room) = storage.get_mut(..seg_end) else {
                        break;
                    };
                    let Ok(mut buf) = PacketBuf::new(room, this, seg_end - this) else {
                        continue;
                    };
                    let verdict = self
                        .plane
                        .inbound_udp(now, &mut buf, &src, &local, tos & 0x03);
                    if let (InVerdict::Ike, Some(sink)) = (&verdict, self.ike_sink.as_mut()) {
                        sink(local, src, buf.data());
                        continue;
                    }
                    self.deliver(gro, verdict, buf.data());
                }
            }
            if let Err(e) = gro.flush(&self.tun) {
                tracing::debug!("writing to the TUN device failed: {e}");
            }
            if n < batch.capacity() {
                break;
            }
        }
    }
}
