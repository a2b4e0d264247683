//! Routes through rtnetlink (RFC 3549; `man 7 rtnetlink`) instead of running
//! `ip`: a CHILD_SA's routes are installed while its peer waits for the
//! answer, and starting a process per route costs milliseconds where a netlink
//! request costs microseconds.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
/// What `ip route add` marks its routes with (RTPROT_BOOT).
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RT_TABLE_MAIN: u32 = 254;

/// A device route: `dst/len dev oif [table t] [src s]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: IpAddr,
    pub len: u8,
    pub oif: u32,
    pub table: Option<u32>,
    pub src: Option<IpAddr>,
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    // Attributes are aligned to 4 bytes.
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The request for `route` (`new`: add, else delete).
fn message(route: &Route, new: bool, seq: u32) -> Vec<u8> {
    let table = route.table.unwrap_or(RT_TABLE_MAIN);
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(&[0; 16]); // nlmsghdr, filled in below
                                   // struct rtmsg
    m.push(if route.dst.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    });
    m.push(route.len);
    m.push(0); // src_len
    m.push(0); // tos
    m.push(if table < 256 { table as u8 } else { 0 });
    m.push(if new { RTPROT_BOOT } else { 0 });
    m.push(RT_SCOPE_LINK);
    m.push(RTN_UNICAST);
    m.extend_from_slice(&0u32.to_ne_bytes()); // flags
    push_attr(&mut m, RTA_DST, &addr_bytes(route.dst));
    push_attr(&mut m, RTA_OIF, &route.oif.to_ne_bytes());
    push_attr(&mut m, RTA_TABLE, &table.to_ne_bytes());
    if let Some(src) = route.src {
        push_attr(&mut m, RTA_PREFSRC, &addr_bytes(src));
    }
    let flags = NLM_F_REQUEST | NLM_F_ACK | if new { NLM_F_CREATE | NLM_F_EXCL } else { 0 };
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&(if new { RTM_NEWROUTE } else { RTM_DELROUTE }).to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// Add (`new`) or delete `route`, waiting for the kernel's answer.
pub fn change(route: &Route, new: bool) -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let msg = message(route, new, 1);
    // SAFETY: sending a live buffer of its own length; the kernel is the
    // default destination of an unbound netlink socket's send.
    let sent = unsafe {
        libc::send(
            sock.as_raw_fd(),
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: receiving into a live buffer of its own length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let reply = &buf[..n as usize];
        // nlmsghdr, then for NLMSG_ERROR an i32 errno (0 = the ACK).
        if reply.len() >= 20 && u16::from_ne_bytes([reply[4], reply[5]]) == NLMSG_ERROR {
            let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
            return if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-errno))
            };
        }
        if reply.len() < 16 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short netlink reply",
            ));
        }
    }
}

/// The index of network device `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "device name with NUL"))?;
    // SAFETY: a valid NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request `ip -4 route add 10.2.0.0/16 dev <7> table 1441 src
    /// 10.1.0.1` sends, byte for byte (rtmsg + attributes, host order).
    #[test]
    fn route_request_layout() {
        let r = Route {
            dst: "10.2.0.0".parse().unwrap(),
            len: 16,
            oif: 7,
            table: Some(0x5a1),
            src: Some("10.1.0.1".parse().unwrap()),
        };
        let m = message(&r, true, 9);
        assert_eq!(m.len(), 16 + 12 + 8 + 8 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWROUTE);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 0x605);
        // rtmsg: AF_INET, /16, table in the attribute only (> 255), boot, link, unicast
        assert_eq!(&m[16..24], &[2, 16, 0, 0, 0, 3, 253, 1]);
        // RTA_DST
        assert_eq!(&m[28..36], &[8, 0, 1, 0, 10, 2, 0, 0]);
        // RTA_OIF, RTA_TABLE, RTA_PREFSRC
        assert_eq!(&m[36..40], &[8, 0, 4, 0]);
        assert_eq!(u32::from_ne_bytes(m[40..44].try_into().unwrap()), 7);
        assert_eq!(u32::from_ne_bytes(m[48..52].try_into().unwrap()), 0x5a1);
        assert_eq!(&m[52..60], &[8, 0, 7, 0, 10, 1, 0, 1]);
        let d = message(
            &Route {
                src: None,
                table: None,
                ..r
            },
            false,
            9,
        );
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), RTM_DELROUTE);
        assert_eq!(d[20], 254, "main table in the header");
    }
}
