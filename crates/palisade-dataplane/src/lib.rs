//! palisade-dataplane: the I/O half of the userspace IPsec data plane.
//!
//! The hosts palisade targets may have no kernel ESP/AH, so packets are carried
//! in user space: cleartext traffic enters and leaves through a TUN device, and
//! protected traffic through raw IP sockets (protocols 50 and 51) or a UDP socket
//! (RFC 3948 ESP-in-UDP). This crate owns those file descriptors and the routes
//! and rules that steer traffic into them; `palisade-sa` does the transforms.
//!
//! Everything here is plain blocking/non-blocking Linux I/O through `libc`, so a
//! worker thread per core can own its descriptors without locks.

pub mod manual;
pub mod netcfg;
pub mod plane;
pub mod rtnl;
pub mod sock;
pub mod tun;
pub mod wake;
pub mod worker;

pub use tun::Tun;
