//! DNS over TCP (RFC 7766), with the limits hickory's own listener lacks: a fixed number of
//! connections (NSD's `tcp-count`; the rest are closed as they are accepted), an idle timeout
//! that each query restarts but that cannot stretch a connection past [`LIFETIME`] or
//! [`QUERIES`], and a bounded time to take each reply.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{FutureExt, StreamExt};
use hickory_server::{
    net::{BufDnsStreamHandle, runtime::TokioTime, xfer::Protocol},
    server::{Request, RequestHandler, ResponseHandle},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::{Instant, timeout_at},
};

use super::guard::Guard;
use crate::slots::Slots;

/// The longest a client may keep one connection, however busy.
pub const LIFETIME: Duration = Duration::from_secs(60);
/// The most queries answered on one connection.
pub const QUERIES: u32 = 1000;
/// Replies queued per connection (an AXFR is several messages).
const OUTBOUND: usize = 256;

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, guard: Guard, slots: Arc<Slots>, idle: Duration) {
    slots.serve(listener, move |stream, peer| connection(stream, peer, guard.clone(), idle)).await;
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, guard: Guard, idle: Duration) {
    let end = Instant::now() + LIFETIME;
    let (handle, mut replies) = BufDnsStreamHandle::with_buffer_size(peer, OUTBOUND);
    for _ in 0..QUERIES {
        let by = end.min(Instant::now() + idle);
        let Ok(Ok(query)) = timeout_at(by, read_message(&mut stream)).await else { return };
        let mut out = Vec::new();
        let bad = formerr(&query);
        match Request::from_bytes(query, peer, Protocol::Tcp) {
            Ok(request) => {
                let response = ResponseHandle::new(peer, handle.clone(), Protocol::Tcp);
                guard.handle_request::<_, TokioTime>(&request, response).await;
                while let Some(Some(reply)) = replies.next().now_or_never() {
                    frame(&mut out, &reply.into_parts().0);
                }
            }
            // Not a DNS message: FORMERR if it has a header to answer, else hang up.
            Err(_) => match bad {
                Some(reply) => frame(&mut out, &reply),
                None => return,
            },
        }
        let by = end.min(Instant::now() + idle);
        if !matches!(timeout_at(by, stream.write_all(&out)).await, Ok(Ok(()))) {
            return;
        }
    }
}

/// One length-prefixed message.
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

fn frame(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}

/// A FORMERR reply to a message with a readable header: its ID and opcode, no sections.
fn formerr(query: &[u8]) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let mut reply = vec![0; 12];
    reply[..2].copy_from_slice(&header[..2]);
    reply[2] = 0x80 | (header[2] & 0x78);
    reply[3] = 1;
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formerr_keeps_id_and_opcode_and_nothing_else() {
        let query = [0xab, 0xcd, 0x29, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        assert_eq!(formerr(&query), Some(vec![0xab, 0xcd, 0xa8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(formerr(&query[..11]), None);
    }
}
