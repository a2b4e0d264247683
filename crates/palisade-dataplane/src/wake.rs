//! Waking a thread that sleeps in `poll(2)` when work was queued for it on a
//! channel: an eventfd that the sender bumps and the thread reads back to
//! zero. The data-plane worker and the daemon's IKE thread use one each.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// A cloneable handle on one eventfd.
#[derive(Clone)]
pub struct Waker(Arc<OwnedFd>);

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd(2) with constant flags; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned by nothing else.
        Ok(Waker(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Make the descriptor readable (after queueing work).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64 to an eventfd we keep open.
        unsafe { libc::write(self.fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    /// Reset it (before draining the queue), so `poll` sleeps again.
    pub fn clear(&self) {
        let mut counter = [0u8; 8];
        // SAFETY: reading 8 bytes into a live buffer from our eventfd.
        unsafe { libc::read(self.fd(), counter.as_mut_ptr() as *mut libc::c_void, 8) };
    }

    /// The descriptor to `poll` for reading.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A `poll(2)` entry waiting for `fd` to become readable.
pub fn pollin(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
