//! Connection slots: each listener (DNS over TCP, /metrics, the control socket) serves at
//! most a fixed number of connections at once and closes the rest as it accepts them, so no
//! client can hold enough file descriptors to starve the others or the health checks.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// A listener's connection budget and what it turned away.
#[derive(Debug)]
pub struct Slots {
    what: &'static str,
    limit: usize,
    free: Arc<Semaphore>,
    refused: AtomicU64,
}

impl Slots {
    pub fn new(what: &'static str, limit: usize) -> Arc<Slots> {
        Arc::new(Slots { what, limit, free: Arc::new(Semaphore::new(limit)), refused: AtomicU64::new(0) })
    }

    /// A slot for one more connection, or `None` (counted) when all are taken.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.free.clone().try_acquire_owned().ok();
        if permit.is_none() && self.refused.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
            warn!(listener = self.what, limit = self.limit, "connection limit reached; closing new connections");
        }
        permit
    }

    /// Connections open now.
    pub fn in_use(&self) -> usize {
        self.limit - self.free.available_permits()
    }

    /// Connections closed on accept because every slot was taken.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Accepts on `listener` forever, serving each connection with `serve` in its own task
    /// while a slot is free and closing it at once otherwise. An accept error (out of file
    /// descriptors, say) is logged and retried after a pause rather than spun on.
    pub async fn serve<L: Listener, F, Fut>(self: Arc<Self>, listener: L, serve: F)
    where
        F: Fn(L::Connection, std::net::SocketAddr) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            match listener.next().await {
                Ok((connection, peer)) => {
                    let Some(permit) = self.take() else { continue };
                    let task = serve(connection, peer);
                    tokio::spawn(async move {
                        task.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(listener = self.what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A listening socket whose connections [`Slots::serve`] hands out.
pub trait Listener {
    type Connection;
    /// The next connection and its peer (unspecified for a Unix socket).
    fn next(&self) -> impl Future<Output = std::io::Result<(Self::Connection, std::net::SocketAddr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Connection = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<(Self::Connection, std::net::SocketAddr)> {
        self.accept().await
    }
}

impl Listener for tokio::net::UnixListener {
    type Connection = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<(Self::Connection, std::net::SocketAddr)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, std::net::SocketAddr::from(([0, 0, 0, 0], 0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_refuse_past_the_limit_and_come_back() {
        let slots = Slots::new("test", 2);
        let a = slots.take().expect("first");
        let _b = slots.take().expect("second");
        assert!(slots.take().is_none());
        assert_eq!((slots.in_use(), slots.refused()), (2, 1));
        drop(a);
        assert!(slots.take().is_some(), "a freed slot is taken again");
    }
}
