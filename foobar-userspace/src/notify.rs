//! systemd's readiness protocol (sd_notify): under `Type=notify` the daemon tells the
//! service manager when it is ready (XDP attached and DNS answering), when a reload starts
//! and ends, and when it stops, by one datagram each to `$NOTIFY_SOCKET`. Outside systemd
//! (no such variable) it says nothing.

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// Sends `state` (e.g. `READY=1\nSTATUS=serving`) to the service manager, if there is one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket: its name follows the '@'.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        debug!(error = %e, state, "cannot notify the service manager");
    }
}
