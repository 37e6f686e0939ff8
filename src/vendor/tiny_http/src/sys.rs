//! Patched for auth-service (src/vendor/README.md): the two socket calls std does not offer,
//! a `send` that never blocks (whatever the socket's mode, which other threads share) and
//! `poll`. The only unsafe code of the crate; nothing else here.

#![allow(unsafe_code)]

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Sends what the socket buffer takes now; `WouldBlock` when it takes nothing.
pub(crate) fn send_now(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes, and the descriptor stays
        // open while `socket` is borrowed. MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE.
        let sent = unsafe {
            libc::send(
                socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One descriptor to watch: readable (`POLLIN`) or writable (`POLLOUT`).
pub(crate) fn watch(fd: RawFd, writable: bool) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: if writable { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    }
}

/// True when the descriptor is ready or in error (either way the caller should look at it).
pub(crate) fn ready(watched: &libc::pollfd) -> bool {
    watched.revents != 0
}

/// Waits until one of `fds` is ready or `timeout` passed.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    let millis = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
    let result = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
    if result < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// Sets the listen backlog of a socket that already listens (Linux updates it in place).
pub(crate) fn set_backlog(listener: &std::net::TcpListener, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) on a descriptor `listener` owns; no memory is passed.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
