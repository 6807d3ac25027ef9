//! An eventfd: a 64-bit counter the kernel keeps behind a file descriptor, which `poll`,
//! `epoll` and every event loop built on them see as readable while the counter is not zero.
//!
//! [`EventFd::signal`] adds one (the descriptor becomes readable), [`EventFd::drain`] reads
//! the counter back to zero (it stops being readable). The descriptor is non-blocking and
//! close-on-exec. All of it is safe: rustix wraps the system calls.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd whose counter is zero (not readable).
    pub(crate) fn new() -> io::Result<EventFd> {
        Ok(EventFd(eventfd(
            0,
            EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK,
        )?))
    }

    /// Adds one to the counter: the descriptor is readable from now on, until drained.
    pub(crate) fn signal(&self) {
        loop {
            match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
                // EAGAIN would need a counter at 2^64 - 2: it is readable already. EBADF and
                // friends cannot happen to a descriptor we own.
                Ok(_) | Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Reads the counter back to zero: the descriptor is not readable until the next
    /// [`EventFd::signal`].
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                // EAGAIN: it was zero already.
                Ok(_) | Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(_) => return,
            }
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, Timespec, poll};

    fn readable(fd: &EventFd) -> bool {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn signal_makes_it_readable_and_drain_clears_it() {
        let fd = EventFd::new().unwrap();
        assert!(!readable(&fd));
        fd.signal();
        fd.signal();
        assert!(readable(&fd));
        fd.drain();
        assert!(!readable(&fd));
        fd.drain(); // draining an empty counter is fine
        assert!(!readable(&fd));
    }
}
