//! The listening socket and its address.
//!
//! Patched for auth-service (src/vendor/README.md): TCP only (the Unix-socket listener and the
//! `Connection` wrapper are gone: a connection is one `TcpStream`, shared by reference between
//! its reader and its writer instead of being duplicated into two descriptors).

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};

/// Pending connections the kernel holds for `accept`.
const LISTEN_BACKLOG: i32 = 4096;

/// The listening socket.
pub struct Listener(TcpListener);

impl Listener {
    pub(crate) fn local_addr(&self) -> std::io::Result<ListenAddr> {
        self.0.local_addr().map(ListenAddr::from)
    }

    pub(crate) fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.0.accept()
    }
}

impl From<TcpListener> for Listener {
    fn from(s: TcpListener) -> Self {
        Self(s)
    }
}

#[derive(Debug, Clone)]
pub enum ConfigListenAddr {
    IP(Vec<SocketAddr>),
}

impl ConfigListenAddr {
    pub fn from_socket_addrs<A: ToSocketAddrs>(addrs: A) -> std::io::Result<Self> {
        addrs.to_socket_addrs().map(|it| Self::IP(it.collect()))
    }

    pub(crate) fn bind(&self) -> std::io::Result<Listener> {
        match self {
            Self::IP(a) => {
                let listener = TcpListener::bind(a.as_slice())?;
                // Patched for auth-service: std listens with a backlog of 128, which a burst of
                // new connections overflows while the accept loop starts their threads; a
                // connection dropped from a full backlog waits a whole SYN retransmission
                // (1 s). The kernel caps this at `net.core.somaxconn`.
                let _ = crate::sys::set_backlog(&listener, LISTEN_BACKLOG);
                Ok(Listener::from(listener))
            }
        }
    }
}

/// The address the server listens on.
#[derive(Debug, Clone)]
pub enum ListenAddr {
    IP(SocketAddr),
}

impl ListenAddr {
    pub fn to_ip(self) -> Option<SocketAddr> {
        match self {
            Self::IP(s) => Some(s),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(s: SocketAddr) -> Self {
        Self::IP(s)
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IP(s) => s.fmt(f),
        }
    }
}
