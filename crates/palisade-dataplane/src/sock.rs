//! Sockets for protected traffic: raw IP sockets for ESP (50) and AH (51), UDP
//! sockets for ESP-in-UDP, with SO_MARK so that the packets palisade sends are
//! not steered back into its own TUN device, and batched receive/send
//! (recvmmsg/sendmmsg) so that one system call moves many packets.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// IP protocol number of ESP (RFC 4303).
pub const IPPROTO_ESP: u8 = 50;
/// IP protocol number of AH (RFC 4302).
pub const IPPROTO_AH: u8 = 51;
// <linux/in6.h>; not exported by every libc version.
const IPV6_HDRINCL: libc::c_int = 36;

pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn setsockopt_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: value is a live c_int and its size is passed exactly.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before being owned.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "raw sockets need root or CAP_NET_RAW (run palisade as root)",
            ));
        }
        return Err(e);
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Convert a socket address to the kernel's representation.
pub(crate) fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Read a socket address the kernel filled in; `None` for families we do not use.
pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                0,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A raw IP socket for one protocol (ESP or AH) and one address family.
///
/// Sending always takes a complete IP packet (IP_HDRINCL / IPV6_HDRINCL),
/// because AH's ICV covers the outer header and tunnel mode builds it anyway.
/// Receiving on IPv4 yields the complete packet; on IPv6 the kernel strips the
/// fixed header, so [`RawSocket::recv`] returns the addresses separately and the
/// caller rebuilds the header it needs.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    v6: bool,
    proto: u8,
}

/// One datagram received on a [`RawSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecv {
    /// Bytes written to the buffer: the whole IPv4 packet, or the IPv6 payload.
    pub len: usize,
    /// Source address.
    pub src: IpAddr,
}

impl RawSocket {
    /// Open a raw socket for `proto` (50 or 51) on IPv4 or IPv6. `mark` sets
    /// SO_MARK on what it sends, so policy routing can let it bypass the TUN.
    pub fn open(v6: bool, proto: u8, mark: Option<u32>) -> io::Result<RawSocket> {
        let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        let fd = socket(domain, libc::SOCK_RAW, proto as libc::c_int)?;
        if v6 {
            setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IPV6, IPV6_HDRINCL, 1)?;
        } else {
            setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?;
        }
        if let Some(mark) = mark {
            setsockopt_int(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MARK,
                mark as libc::c_int,
            )?;
        }
        Ok(RawSocket { fd, v6, proto })
    }

    /// Receive only packets addressed to `local` (and send from it).
    pub fn bind(&self, local: IpAddr) -> io::Result<()> {
        let (sa, len) = to_sockaddr(SocketAddr::new(local, 0));
        // SAFETY: sa is a valid sockaddr of length len.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The IP protocol this socket carries.
    pub fn protocol(&self) -> u8 {
        self.proto
    }

    /// Whether this is an IPv6 socket.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// Send a complete IP packet (header included) to `dst`.
    pub fn send(&self, packet: &[u8], dst: IpAddr) -> io::Result<usize> {
        // The port is ignored for raw sockets; IPv6 raw sockets insist on it being 0.
        let (sa, len) = to_sockaddr(SocketAddr::new(dst, 0));
        // SAFETY: packet and sa are live for the call; lengths are exact.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr() as *const libc::c_void,
                packet.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Receive one datagram.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<RawRecv> {
        // SAFETY: sockaddr_storage is plain old data.
        let mut sa: libc::sockaddr_storage = unsafe { zeroed() };
        let mut sa_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buf and sa are live, writable and sized as passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
                &mut sa as *mut _ as *mut libc::sockaddr,
                &mut sa_len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let src = from_sockaddr(&sa).map(|s| s.ip()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "raw socket returned an unknown address family",
            )
        })?;
        Ok(RawRecv {
            len: n as usize,
            src,
        })
    }

    /// Switch between blocking and non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(self.fd.as_raw_fd(), on)
    }
}

impl AsRawFd for RawSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Set SO_MARK on any socket (e.g. the ESP-in-UDP socket).
/// Of sockets bound to `local_of(item)`, the one to send from `src`:`port`
/// to `dst`: the one bound to that address, else a wildcard one, else (with
/// `src` unknown or unbound) any of that port and `dst`'s family.
pub fn pick_bound<T>(
    items: &[T],
    local_of: impl Fn(&T) -> SocketAddr,
    src: Option<IpAddr>,
    port: u16,
    dst: SocketAddr,
) -> Option<&T> {
    let fits = items.iter().filter(|i| {
        let l = local_of(i);
        l.port() == port && l.is_ipv6() == dst.is_ipv6()
    });
    src.and_then(|a| fits.clone().find(|i| local_of(i).ip() == a))
        .or_else(|| fits.clone().find(|i| local_of(i).ip().is_unspecified()))
        .or_else(|| fits.clone().next())
}

pub fn set_mark(fd: RawFd, mark: u32) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)
}

/// Set a socket's receive and send buffer sizes to `bytes` each, past the
/// `net.core.[rw]mem_max` limits when allowed (SO_RCVBUFFORCE needs
/// CAP_NET_ADMIN; without it the limited options are used). A burst of
/// sealed packets and the peer's bursts then queue instead of being dropped.
pub fn set_buffers(fd: RawFd, bytes: usize) -> io::Result<()> {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt_int(fd, libc::SOL_SOCKET, force, v).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, plain, v)?;
        }
    }
    Ok(())
}

/// Preallocated buffers for batched receive with `recvmmsg(2)`: one system
/// call fills up to `capacity` datagrams. Nothing is allocated per call.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    headroom: usize,
    lens: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Control-message space per datagram (UDP_GRO segment size, TOS).
    cmsgs: Vec<CmsgSpace>,
    segs: Vec<u16>,
    tos: Vec<u8>,
    count: usize,
}

/// Aligned room for the small control messages of one datagram (CMSG_SPACE
/// of an int is 24): the UDP_GRO segment size and the IP TOS / IPv6 traffic
/// class, with room to spare.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgSpace([u8; 64]);

/// `SOL_UDP` level, `UDP_SEGMENT` (GSO) and `UDP_GRO` options of <linux/udp.h>.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Most segments one UDP GSO send may carry (UDP_MAX_SEGMENTS).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes one UDP GSO send may carry (IPv6 header worst case).
const GSO_MAX_BYTES: usize = 65535 - 48;

/// Ask the kernel to hand a UDP socket coalesced datagrams (UDP GRO): one
/// receive then returns many same-size segments back to back, and
/// [`RecvBatch::segment_size`] says where to split them.
pub fn set_udp_gro(fd: RawFd, on: bool) -> io::Result<()> {
    setsockopt_int(fd, SOL_UDP, UDP_GRO, on as libc::c_int)
}

impl RecvBatch {
    /// `capacity` datagrams of at most `mtu` bytes each.
    pub fn new(capacity: usize, mtu: usize) -> RecvBatch {
        Self::with_headroom(capacity, mtu, 0)
    }

    /// Like [`RecvBatch::new`], but each datagram lands `headroom` bytes into
    /// its buffer, so that headers can be prepended in place (e.g. the IPv6
    /// header a raw socket stripped, or a tunnel's outer header).
    pub fn with_headroom(capacity: usize, mtu: usize, headroom: usize) -> RecvBatch {
        let capacity = capacity.max(1);
        RecvBatch {
            headroom,
            bufs: (0..capacity).map(|_| vec![0u8; headroom + mtu]).collect(),
            lens: vec![0; capacity],
            // SAFETY: plain old data, all-zero is valid.
            addrs: vec![unsafe { zeroed() }; capacity],
            // SAFETY: plain old data, all-zero is valid (null pointers are rewritten before use).
            iovs: vec![unsafe { zeroed() }; capacity],
            // SAFETY: as above.
            hdrs: vec![unsafe { zeroed() }; capacity],
            cmsgs: vec![CmsgSpace([0; 64]); capacity],
            segs: vec![0; capacity],
            tos: vec![0; capacity],
            count: 0,
        }
    }

    /// How many datagrams one `recv` can return.
    pub fn capacity(&self) -> usize {
        self.bufs.len()
    }

    /// For datagram `i` of the last `recv`: the segment size if the kernel
    /// coalesced several datagrams into it (UDP GRO), else `None`. The
    /// segments are `segment_size` bytes each, the last one possibly shorter.
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        match self.segs.get(i) {
            Some(&s) if i < self.count && s > 0 => Some(s as usize),
            _ => None,
        }
    }

    /// For datagram `i` of the last `recv`: the TOS byte (IPv4) or traffic
    /// class (IPv6) it arrived with, if the socket reports it
    /// ([`set_recv_tos`]), else 0. A UDP GRO datagram has one: the kernel
    /// only coalesces packets whose TOS is the same.
    pub fn tos(&self, i: usize) -> u8 {
        match self.tos.get(i) {
            Some(&t) if i < self.count => t,
            _ => 0,
        }
    }

    /// Receive as many datagrams as are waiting (up to capacity) on `fd`.
    /// Returns how many arrived; with a non-blocking socket, `WouldBlock` when none.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..self.bufs.len() {
            let room = &mut self.bufs[i][self.headroom..];
            self.iovs[i] = libc::iovec {
                iov_base: room.as_mut_ptr() as *mut libc::c_void,
                iov_len: room.len(),
            };
            // SAFETY: plain old data.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.cmsgs[i].0.as_mut_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_controllen = self.cmsgs[i].0.len() as _;
            self.hdrs[i] = h;
        }
        // SAFETY: every pointer in hdrs points into self's vectors, which are not
        // moved or resized during the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                0,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        self.count = n as usize;
        for i in 0..self.count {
            self.lens[i] = self.hdrs[i].msg_len as usize;
            (self.segs[i], self.tos[i]) = recv_cmsgs(&self.hdrs[i].msg_hdr);
        }
        Ok(self.count)
    }

    /// The datagrams of the last `recv`: (source, bytes).
    pub fn iter(&self) -> impl Iterator<Item = (Option<SocketAddr>, &[u8])> + '_ {
        (0..self.count).map(move |i| {
            (
                from_sockaddr(&self.addrs[i]),
                &self.bufs[i][self.headroom..self.headroom + self.lens[i]],
            )
        })
    }

    /// Number of datagrams the last `recv` returned.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last `recv` returned nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last `recv` as (source, whole buffer, headroom,
    /// length): the datagram is `buf[headroom..headroom + length]` and the
    /// bytes before and after it are free for in-place processing.
    pub fn slot_mut(&mut self, i: usize) -> Option<(Option<SocketAddr>, &mut [u8], usize, usize)> {
        if i >= self.count {
            return None;
        }
        let src = from_sockaddr(&self.addrs[i]);
        Some((src, &mut self.bufs[i][..], self.headroom, self.lens[i]))
    }
}

/// Send many datagrams with one `sendmmsg(2)`. Returns how many were sent.
/// `scratch` avoids allocation: reuse one per worker.
pub fn send_batch(
    fd: RawFd,
    packets: &[(&[u8], SocketAddr)],
    scratch: &mut SendScratch,
) -> io::Result<usize> {
    scratch.addrs.clear();
    scratch.iovs.clear();
    scratch.hdrs.clear();
    for (pkt, dst) in packets {
        scratch.addrs.push(to_sockaddr(*dst));
        scratch.iovs.push(libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        });
    }
    for i in 0..packets.len() {
        // SAFETY: plain old data.
        let mut h: libc::mmsghdr = unsafe { zeroed() };
        h.msg_hdr.msg_name = &mut scratch.addrs[i].0 as *mut _ as *mut libc::c_void;
        h.msg_hdr.msg_namelen = scratch.addrs[i].1;
        h.msg_hdr.msg_iov = &mut scratch.iovs[i];
        h.msg_hdr.msg_iovlen = 1;
        scratch.hdrs.push(h);
    }
    if scratch.hdrs.is_empty() {
        return Ok(0);
    }
    // SAFETY: hdrs point into scratch's vectors (not resized after this point)
    // and into `packets`, which outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            scratch.hdrs.as_mut_ptr(),
            scratch.hdrs.len() as libc::c_uint,
            0,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reusable storage for [`send_batch`].
#[derive(Default)]
pub struct SendScratch {
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

/// From a received message's control data: the UDP_GRO segment size (0 if
/// none) and the TOS / traffic class (0 if not reported).
fn recv_cmsgs(m: &libc::msghdr) -> (u16, u8) {
    let (mut seg, mut tos) = (0, 0);
    if m.msg_controllen == 0 || m.msg_control.is_null() {
        return (seg, tos);
    }
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // well-formed cmsgs; CMSG_FIRSTHDR/NXTHDR stay inside that range, and
    // each data read stays inside its cmsg_len.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            let len =
                ((*c).cmsg_len as usize).saturating_sub(data.offset_from(c as *const u8) as usize);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (SOL_UDP, UDP_GRO) if len >= size_of::<libc::c_int>() => {
                    let v = std::ptr::read_unaligned(data as *const libc::c_int);
                    seg = u16::try_from(v).unwrap_or(0);
                }
                // IPv4: one byte; IPv6: an int.
                (libc::IPPROTO_IP, libc::IP_TOS) if len >= 1 => tos = *data,
                (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) if len >= size_of::<libc::c_int>() => {
                    let v = std::ptr::read_unaligned(data as *const libc::c_int);
                    tos = u8::try_from(v).unwrap_or(0);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    (seg, tos)
}

/// One queued packet of a [`SendRing`].
#[derive(Clone, Copy)]
struct Queued {
    fd: RawFd,
    start: usize,
    len: usize,
    dst: SocketAddr,
    gso: bool,
    /// TOS / traffic class for this datagram; 0 = the socket's (also 0).
    tos: u8,
}

/// What one [`SendRing::flush`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Packets the kernel accepted.
    pub sent: u64,
    /// Packets dropped because their send failed.
    pub failed: u64,
    /// System calls made.
    pub calls: u64,
    /// UDP GSO messages the kernel refused, sent again datagram by datagram
    /// (three in a row pause GSO for a while).
    pub gso_fallbacks: u64,
}

/// Owned, reused send buffers and the `sendmmsg(2)` state to send them: fill
/// the next buffer in place ([`SendRing::next_buf`]), [`SendRing::commit`] it
/// with its socket and destination, and [`SendRing::flush`] the lot. Runs of
/// same-size UDP datagrams to one destination go out as one UDP GSO message
/// (UDP_SEGMENT): the kernel, or the receiver's GRO, splits them. Nothing is
/// allocated after construction.
pub struct SendRing {
    bufs: Vec<Box<[u8]>>,
    queued: Vec<Queued>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Packets in each message of `hdrs`.
    counts: Vec<usize>,
    cmsgs: Vec<CmsgSpace>,
    /// GSO wanted ([`SendRing::set_gso`]) and in use: the ring pauses it
    /// after [`GSO_PAUSE_AFTER`] refusals in a row and tries again after
    /// [`GSO_PAUSE_FLUSHES`] flushes (a path MTU that shrank below the
    /// segment size refuses GSO until packets shrink too).
    gso_wanted: bool,
    gso: bool,
    gso_failures: u32,
    paused_flushes: u32,
}

/// GSO refusals in a row that pause GSO.
const GSO_PAUSE_AFTER: u32 = 3;
/// Flushes without GSO before it is tried again.
const GSO_PAUSE_FLUSHES: u32 = 4096;

impl SendRing {
    /// `capacity` buffers of `buf_size` bytes.
    pub fn new(capacity: usize, buf_size: usize) -> SendRing {
        let capacity = capacity.max(1);
        SendRing {
            bufs: (0..capacity)
                .map(|_| vec![0u8; buf_size].into_boxed_slice())
                .collect(),
            queued: Vec::with_capacity(capacity),
            // SAFETY: plain old data, all-zero is valid.
            addrs: vec![(unsafe { zeroed() }, 0); capacity],
            // SAFETY: as above; pointers are rewritten before use.
            iovs: vec![unsafe { zeroed() }; capacity],
            hdrs: Vec::with_capacity(capacity),
            counts: Vec::with_capacity(capacity),
            cmsgs: vec![CmsgSpace([0; 64]); capacity],
            gso_wanted: true,
            gso: true,
            gso_failures: 0,
            paused_flushes: 0,
        }
    }

    /// Turn UDP GSO on or off (it is on by default and pauses itself while
    /// the kernel keeps refusing it).
    pub fn set_gso(&mut self, on: bool) {
        self.gso_wanted = on;
        self.gso = on;
        self.gso_failures = 0;
        self.paused_flushes = 0;
    }

    /// Whether runs of datagrams go out as GSO messages now.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Whether every buffer is queued (flush before the next `next_buf`).
    pub fn is_full(&self) -> bool {
        self.queued.len() == self.bufs.len()
    }

    /// Packets queued and not yet flushed.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The next free buffer (the one after the last committed). When the
    /// ring is full this is the last buffer again; check [`SendRing::is_full`].
    pub fn next_buf(&mut self) -> &mut [u8] {
        let i = self.queued.len().min(self.bufs.len() - 1);
        &mut self.bufs[i]
    }

    /// Queue `next_buf()[start..start + len]` for `fd` to `dst`. `udp` says
    /// that `fd` is a UDP socket, whose datagrams may be merged into one GSO
    /// send; `tos` (IPv4 TOS / IPv6 traffic class: DSCP and ECN) goes into
    /// the IP header the kernel writes for a UDP datagram, from an `IP_TOS` /
    /// `IPV6_TCLASS` control message (0 = the socket's own, also 0), and a
    /// GSO run holds datagrams of one `tos` only. Ignored (returns false)
    /// when full or out of range.
    pub fn commit(
        &mut self,
        fd: RawFd,
        start: usize,
        len: usize,
        dst: SocketAddr,
        udp: bool,
        tos: u8,
    ) -> bool {
        let i = self.queued.len();
        if i >= self.bufs.len()
            || !matches!(start.checked_add(len), Some(e) if e <= self.bufs[i].len())
        {
            return false;
        }
        self.queued.push(Queued {
            fd,
            start,
            len,
            dst,
            gso: udp,
            tos,
        });
        true
    }

    /// Send everything queued, as few system calls as the kernel allows.
    pub fn flush(&mut self) -> Flushed {
        let mut done = Flushed::default();
        if self.gso_wanted && !self.gso {
            self.paused_flushes += 1;
            if self.paused_flushes >= GSO_PAUSE_FLUSHES {
                self.gso = true;
                self.gso_failures = 0;
                self.paused_flushes = 0;
            }
        }
        let mut i = 0;
        while i < self.queued.len() {
            // One sendmmsg per run of packets for the same socket.
            let fd = self.queued[i].fd;
            let mut j = i;
            while j < self.queued.len() && self.queued[j].fd == fd {
                j += 1;
            }
            self.send_run(i, j, self.gso, &mut done);
            i = j;
        }
        self.queued.clear();
        done
    }

    /// Build the messages for queued[from..to] (same fd) and send them.
    fn send_run(&mut self, from: usize, to: usize, gso: bool, done: &mut Flushed) {
        self.hdrs.clear();
        self.counts.clear();
        let fd = self.queued[from].fd;
        let mut k = from;
        while k < to {
            let first = self.queued[k];
            let m = self.hdrs.len();
            self.addrs[m] = to_sockaddr(first.dst);
            let mut n = 1;
            let mut bytes = first.len;
            if gso && first.gso {
                // Same destination, every segment but the last exactly the
                // first one's size.
                while k + n < to && n < GSO_MAX_SEGMENTS {
                    let q = self.queued[k + n];
                    if q.dst != first.dst
                        || q.tos != first.tos
                        || q.len > first.len
                        || bytes + q.len > GSO_MAX_BYTES
                    {
                        break;
                    }
                    bytes += q.len;
                    n += 1;
                    if q.len < first.len {
                        break;
                    }
                }
            }
            for (t, q) in self.queued[k..k + n].iter().enumerate() {
                let b = &mut self.bufs[k + t][q.start..q.start + q.len];
                self.iovs[k + t] = libc::iovec {
                    iov_base: b.as_mut_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                };
            }
            // SAFETY: plain old data.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = &mut self.addrs[m].0 as *mut _ as *mut libc::c_void;
            h.msg_hdr.msg_namelen = self.addrs[m].1;
            h.msg_hdr.msg_iov = &mut self.iovs[k];
            h.msg_hdr.msg_iovlen = n as _;
            let segment = (n > 1).then_some(first.len as u16);
            let tos = (first.tos != 0).then_some((first.dst.is_ipv6(), first.tos));
            if segment.is_some() || tos.is_some() {
                let c = &mut self.cmsgs[m];
                // Zeroed: CMSG_NXTHDR reads the next header's length.
                c.0 = [0; 64];
                h.msg_hdr.msg_control = c.0.as_mut_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_controllen = c.0.len() as _;
                // SAFETY: the control buffer is 64 bytes, more than
                // CMSG_SPACE(2) + CMSG_SPACE(4) (48); CMSG_FIRSTHDR/NXTHDR/
                // DATA stay inside it, and msg_controllen is trimmed to what
                // was written.
                unsafe {
                    let mut used = 0;
                    let mut cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    if let Some(size) = segment {
                        (*cm).cmsg_level = SOL_UDP;
                        (*cm).cmsg_type = UDP_SEGMENT;
                        (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                        std::ptr::write_unaligned(libc::CMSG_DATA(cm) as *mut u16, size);
                        used += libc::CMSG_SPACE(2) as usize;
                        cm = libc::CMSG_NXTHDR(&h.msg_hdr, cm);
                    }
                    if let Some((v6, tos)) = tos {
                        let (level, kind) = if v6 {
                            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
                        } else {
                            (libc::IPPROTO_IP, libc::IP_TOS)
                        };
                        (*cm).cmsg_level = level;
                        (*cm).cmsg_type = kind;
                        (*cm).cmsg_len = libc::CMSG_LEN(4) as _;
                        let v = libc::c_int::from(tos);
                        std::ptr::write_unaligned(libc::CMSG_DATA(cm) as *mut libc::c_int, v);
                        used += libc::CMSG_SPACE(4) as usize;
                    }
                    h.msg_hdr.msg_controllen = used as _;
                }
            }
            self.hdrs.push(h);
            self.counts.push(n);
            k += n;
        }
        let mut sent_msgs = 0;
        let mut waited = false;
        let mut retried = false;
        while sent_msgs < self.hdrs.len() {
            let rest = &mut self.hdrs[sent_msgs..];
            // SAFETY: every pointer in hdrs points into self's buffers and
            // vectors, which are neither moved nor resized during the call.
            let rc =
                unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
            done.calls += 1;
            if rc > 0 {
                for c in &self.counts[sent_msgs..sent_msgs + rc as usize] {
                    done.sent += *c as u64;
                    if *c > 1 {
                        // A GSO message went through: refusals are not in a row.
                        self.gso_failures = 0;
                    }
                }
                sent_msgs += rc as usize;
                retried = false;
                continue;
            }
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if err.kind() == io::ErrorKind::WouldBlock && !waited {
                // Socket buffer full: give the kernel a moment, once per run.
                waited = true;
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one live pollfd.
                unsafe { libc::poll(&mut p, 1, 5) };
                continue;
            }
            // The first remaining message failed. An error the socket held
            // for an earlier datagram (an ICMP error, with IP_RECVERR on) is
            // reported once, by whatever send comes next, so the message is
            // tried again once as it is. If it fails again, a GSO message
            // goes out segment by segment; anything else is dropped.
            let n = self.counts[sent_msgs];
            if !retried {
                retried = true;
                continue;
            }
            if n > 1 {
                done.gso_fallbacks += 1;
                self.gso_failures += 1;
                if self.gso_failures >= GSO_PAUSE_AFTER {
                    self.gso = false;
                    self.paused_flushes = 0;
                }
                tracing::debug!("UDP GSO send failed ({err}); sending the segments one by one");
                let start: usize = from + self.counts[..sent_msgs].iter().sum::<usize>();
                // Resend this message's packets and the ones after it
                // without GSO.
                self.send_run(start, to, false, done);
                return;
            }
            tracing::debug!("sending {n} packet(s) failed: {err}");
            done.failed += n as u64;
            sent_msgs += 1;
            retried = false;
        }
    }
}

/// Ask for ICMP errors about what this socket sent (IP_RECVERR /
/// IPV6_RECVERR) on its error queue, so that "fragmentation needed" /
/// "packet too big" for a protected packet reach [`recv_path_mtu`].
pub fn set_recverr(fd: RawFd, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    }
}

/// Ask the kernel to report the TOS byte (IPv4) or traffic class (IPv6) of
/// every datagram received on `fd` ([`RecvBatch::tos`]): the outer ECN of
/// ESP-in-UDP, which decapsulation passes on (RFC 6040). A v6 socket asks for
/// both, as it may receive IPv4-mapped traffic.
pub fn set_recv_tos(fd: RawFd, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, 1)?;
        // Dual-stack sockets only; a v6-only one refuses, which is fine.
        let _ = setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1);
        Ok(())
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVTOS, 1)
    }
}

/// One entry of `fd`'s error queue: `Ok(Some((dst, mtu)))` for a "message
/// too long" error (ICMP fragmentation needed / packet too big, or local)
/// about a packet sent to `dst`, `Ok(None)` for any other error (consumed),
/// `Err(WouldBlock)` when the queue is empty.
pub fn recv_path_mtu(fd: RawFd) -> io::Result<Option<(IpAddr, u32)>> {
    // struct sock_extended_err: errno u32, origin u8, type u8, code u8,
    // pad u8, info u32, data u32; the offender address follows.
    let mut data = [0u8; 256];
    let mut control = [0u64; 64];
    // SAFETY: plain old data.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: plain old data; the pointers are set below.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = &mut name as *mut _ as *mut libc::c_void;
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    // SAFETY: every pointer in msg points to a live local of the given size.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: msg was filled by recvmsg; CMSG_* walk its control buffer
    // within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is a header inside the control buffer.
        let c = unsafe { &*cmsg };
        let ours = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
            || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
        if ours && c.cmsg_len as usize >= size_of::<libc::cmsghdr>() + 16 {
            // SAFETY: the payload holds at least the 16-byte sock_extended_err.
            let p = unsafe { std::slice::from_raw_parts(libc::CMSG_DATA(cmsg), 16) };
            let errno = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
            let info = u32::from_ne_bytes([p[8], p[9], p[10], p[11]]);
            if errno == libc::EMSGSIZE as u32 && info > 0 {
                return Ok(from_sockaddr(&name).map(|a| (a.ip(), info)));
            }
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(None)
}
