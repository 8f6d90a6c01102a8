//! Support for foobar's integration tests: everything a test needs to build the lab and the
//! packets it sends, so that the tests themselves read as scenarios.
//!
//! # Layout
//! - [`packet`]: a builder for Ethernet/VLAN/IPv4/IPv6/TCP/UDP/ICMP frames with correct checksums.
//! - [`checksum`]: the Internet checksum, for building frames and verifying rewritten ones.
//! - [`netns`]: an RAII lab of network namespaces and veth pairs (cleanup on drop and panic).
//! - [`raw`]: sending crafted frames out of an interface with an `AF_PACKET` socket.
//! - [`router`]: a one-namespace node with fixed FIB answers, for fixtures and benchmarks.
//! - [`tls`]: the lab's certificate authority and the web servers' certificate.
//! - [`topology`]: the seeds' whole stack (client, node, web1/web2, app, db1/db2) in namespaces.
//! - [`cluster`]: the cluster lab: a router spreading the VIP over foobar nodes by ECMP.
//! - [`bird`]: BIRD 2 routing daemons for the cluster lab.
//! - [`nginx`]: real nginx web servers inside the lab.
//! - [`app`]: the lab's demo application server behind the web servers' `/app`.
//! - [`wrk`]: bounded wrk runs from a lab namespace and their summaries.
//! - [`hung`]: a TCP server that accepts and never answers.
//! - [`http`]: a kept-alive HTTP connection for tests that hold one open across a change.
//! - [`daemon`]: the real daemon serving in a lab namespace, steered over its control socket.
//! - [`mariadb`]: real MariaDB primary and replica in the lab, replicating by GTID.
//! - [`table`]: synthetic connection-table entries for a full table.
//! - [`prometheus`]: promtool on the exposition and the alert rules.
//! - [`gate`]: deciding whether a root-only or BPF test can run here, and saying why not.

pub mod app;
pub mod bird;
pub mod checksum;
pub mod cluster;
pub mod daemon;
pub mod gate;
pub mod http;
pub mod hung;
pub mod mariadb;
pub mod netns;
pub mod nginx;
pub mod packet;
pub mod prometheus;
pub mod raw;
pub mod router;
pub mod table;
pub mod tls;
pub mod topology;
pub mod wrk;
