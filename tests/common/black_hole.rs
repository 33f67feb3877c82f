//! Destinations that never answer a SYN, on loopback and without root: a listener whose accept
//! queue is full and never drained. Linux then drops further SYNs to it, so a connection
//! attempt neither succeeds nor is refused until the caller's own timeout.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A listener with a backlog of 0 that has not been filled yet: it still accepts, so a
/// proxy's start-up probe finds it alive; `black_hole` then closes the door.
pub struct Doorway {
    listener: TcpListener,
    pub addr: SocketAddr,
}

pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Doorway {
    pub fn bind(addr: SocketAddr) -> Doorway {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // std's bind always listens with a large backlog; tokio's TcpSocket takes one.
        let listener = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(addr).unwrap();
            socket.listen(0).unwrap().into_std().unwrap()
        });
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        Doorway { listener, addr }
    }

    /// Waits, bounded by `limit`, for one connection and drops it (a proxy's start-up
    /// probe); false when none came.
    pub fn accept_one(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match self.listener.accept() {
                Ok(_) => return true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept on {}: {e}", self.addr),
            }
        }
        false
    }

    /// Fills the accept queue until a connection attempt times out: from now on the address
    /// is a black hole.
    pub fn black_hole(self) -> BlackHole {
        let mut queued = Vec::new();
        // Bounded: a backlog of 0 holds one connection; the second attempt must time out.
        for _ in 0..8 {
            match TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)) {
                Ok(s) => queued.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return BlackHole {
                        addr: self.addr,
                        _listener: self.listener,
                        _queued: queued,
                    };
                }
                Err(e) => panic!("filling the accept queue of {}: {e}", self.addr),
            }
        }
        panic!(
            "{} kept accepting {} connections with a backlog of 0",
            self.addr,
            queued.len()
        );
    }
}

/// A black hole at `addr` (port 0 for any).
pub fn black_hole(addr: SocketAddr) -> BlackHole {
    Doorway::bind(addr).black_hole()
}
