//! The foobar daemon and its command-line interface, as a library so that integration
//! tests drive the same code the binary runs.
//!
//! # Layout
//! - [`announce`]: gating the BIRD protocols that announce this node's VIPs.
//! - [`addresses`]: making sure VIPs and DNS addresses are local, removing only our own.
//! - [`cli`]: the `foobar` command line, one file per subcommand.
//! - [`config`]: the TOML config, its schema and whole-file validation.
//! - [`plan`]: a config compiled once into what the daemon runs, and reloads diff.
//! - [`control`]: the control socket's protocol, server and client.
//! - [`dns`]: the authoritative DNS server whose answers follow health.
//! - [`health`]: backend health checks with rise/fall hysteresis.
//! - [`daemon`]: the daemon's lifecycle (start, serve until shutdown, stop).
//! - [`dataplane`]: the embedded eBPF object, loading it, attaching XDP, reading its maps.
//! - [`logging`]: tracing setup (human or JSON).
//! - [`metrics`]: the Prometheus endpoint and its text format.
//! - [`notify`]: telling systemd when the daemon is ready, reloading and stopping.
//! - [`net`]: CIDR prefixes and the address form the maps use.
//! - [`netlink`]: interface addresses over rtnetlink, foobar's marked as such.
//! - [`slots`]: connection caps shared by every listener.
//! - [`privileges`]: dropping the capabilities serving does not use.
//! - [`status_page`]: the HTML status page on the metrics listener.
//! - [`replication`]: the MariaDB/MySQL replication monitor behind `db-write` and `db-read`.
//! - [`sync`]: NAT flow sync between a cluster's nodes (signed UDP datagrams).
//! - [`xdp_mode`]: the operator-facing attach mode (`native | generic | auto`).

pub mod addresses;
pub mod announce;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod dns;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod netlink;
pub mod notify;
pub mod plan;
pub mod privileges;
pub mod replication;
pub mod slots;
pub mod status_page;
pub mod sync;
pub mod xdp_mode;
