//! A TCP server that accepts connections and never answers: the worst kind of sick server,
//! for showing that a check gives up after its timeout and costs nobody else anything.

use crate::netns::{Netns, Spawned};

/// Starts it in `ns` on every address at `port` and waits until it listens; ended on drop.
pub fn start(ns: &Netns, port: u16) -> Spawned {
    let program = format!(
        "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
         s.bind(('0.0.0.0', {port})); s.listen(128); held = []\nwhile True: held.append(s.accept())"
    );
    let log = ns.scratch(&format!("hung-{port}.txt"));
    let process = ns.spawn(&["/usr/bin/python3", "-c", &program], &log);
    crate::nginx::wait_listening(ns, port);
    process
}
