//! The control socket: how `foobar status`, `foobar backend …` and `foobar firewall …` talk to
//! a running daemon. One JSON request line in, one JSON response line out, per connection.
//!
//! - `protocol`: the typed requests and responses.
//! - `server`: the socket the daemon listens on (mode 0600, so only root may steer it).
//! - `client`: what the CLI uses, with errors that say what to do.

pub mod client;
pub mod protocol;
pub mod server;
