//! A Linux TUN device (layer 3, no packet-information header).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const TUN_PATH: &str = "/dev/net/tun";
// <linux/if_tun.h>
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Why a TUN device could not be created, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("TUN is unavailable: {TUN_PATH} does not exist (load the `tun` kernel module: `modprobe tun`)")]
    NoDevice,
    #[error(
        "cannot open {TUN_PATH}: permission denied (run palisade as root or give it CAP_NET_ADMIN)"
    )]
    PermissionDenied,
    #[error("TUN device name `{0}` is invalid (1 to 15 bytes, no `/`, whitespace or NUL)")]
    BadName(String),
    #[error("creating TUN device `{name}` failed: {source}")]
    Create { name: String, source: io::Error },
}

/// An open TUN device. The kernel removes the device (and every route through
/// it) when the last descriptor is closed, which is what makes clean shutdown
/// simple: dropping the `Tun` undoes it.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Create (or attach to) the TUN device `name`.
    pub fn open(name: &str) -> Result<Tun, TunError> {
        if name.is_empty()
            || name.len() > 15
            || name
                .bytes()
                .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
        {
            return Err(TunError::BadName(name.to_string()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => TunError::NoDevice,
                io::ErrorKind::PermissionDenied => TunError::PermissionDenied,
                _ => TunError::Create {
                    name: name.to_string(),
                    source: e,
                },
            })?;
        // struct ifreq: 16-byte name followed by a union whose first member we
        // use as the flags short; 40 bytes in all on Linux.
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        let flags = IFF_TUN | IFF_NO_PI;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: ifr is a valid, writable ifreq-sized buffer for TUNSETIFF.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
        if rc < 0 {
            let source = io::Error::last_os_error();
            return Err(match source.raw_os_error() {
                Some(libc::EPERM) => TunError::PermissionDenied,
                _ => TunError::Create {
                    name: name.to_string(),
                    source,
                },
            });
        }
        // The kernel may have rewritten the name (e.g. for a "%d" pattern).
        let end = ifr[..16].iter().position(|&b| b == 0).unwrap_or(16);
        let name = CStr::from_bytes_with_nul(&[&ifr[..end], &[0]].concat())
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_else(|_| name.to_string());
        Ok(Tun { file, name })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Switch the descriptor between blocking and non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        crate::sock::set_nonblocking(self.file.as_raw_fd(), on)
    }

    /// Read one packet (an IPv4 or IPv6 datagram) into `buf`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Write one packet to the kernel, as if it had arrived on this interface.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
