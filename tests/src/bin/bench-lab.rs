//! `cargo xtask bench lab`: the seeds' front end side by side, in one run, in the lab.
//!
//! The same wrk load from the client, `SECONDS` each, kept-alive requests and one request per
//! connection (`Connection: close`), against:
//! 1. the web servers directly (routed by the node's kernel; two wrk, one per server: the limit),
//! 2. HAProxy 2.6 (Debian) on the node, TCP mode, round-robin, same backends (`HAProxy 2.6`),
//! 3. foobar in `nat` mode and 4. in `dsr` mode (examples/lab.toml).
//!
//! Then a SYN flood from spoofed sources in 203.0.113.0/24 (bounded in time) while the
//! legitimate client makes new connections: its rate with and without the flood, behind foobar
//! and behind the same rules in nftables (netdev ingress filter + DNAT round-robin), with the
//! flood's prefix on the deny list, as an operator seeing it would put it.
//!
//! The per-source SYN limit is off throughout (`syn_rate_per_source = 0`): the benchmark's
//! client is one address opening thousands of connections a second, which the lab's 200/s
//! limit would rightly cut (to ~200/s: the limiter measured, not the balancer); and against a
//! flood spread over many spoofed sources a per-source limit admits rate × sources anyway.
//!
//! Prints the tables and writes `target/bench/lab.md` and `target/bench/lab.png` (gnuplot).

use std::{fmt::Write as _, path::Path, process::ExitCode, time::Instant};

use foobar_tests::{
    daemon::RunningDaemon,
    gate,
    netns::{Netns, Spawned},
    nginx,
    packet::{Frame, TcpFlags},
    raw,
    topology::*,
    wrk::{self, Load, Summary},
};

const SECONDS: u32 = 8;
/// The flood's rate: what the sending thread, the node and the client's wrk can share on a
/// small machine (unpaced, the sender alone fills a core and the veth queue).
const FLOOD_PER_SECOND: u64 = 100_000;
const CONNECTIONS: u32 = 16;
const LAB_TOML: &str = include_str!("../../../examples/lab.toml");

/// examples/lab.toml without the per-source SYN limit (see the top of this file).
fn lab() -> String {
    // Native XDP on the tuned lab (see `Offloads`): the path a NIC would run.
    LAB_TOML.replacen("syn_rate_per_source = 200", "syn_rate_per_source = 0", 1).replacen(
        r#"xdp_mode = "auto""#,
        r#"xdp_mode = "native""#,
        1,
    )
}

/// [`lab`] with the flood's prefix on the deny list.
fn lab_denying_flood() -> String {
    lab().replacen(r#"deny_sources = ["192.0.2.66/32"]"#, r#"deny_sources = ["192.0.2.66/32", "203.0.113.0/24"]"#, 1)
}

fn load(close: bool) -> Load {
    Load { seconds: SECONDS, connections: CONNECTIONS, threads: 2, close }
}

/// Keep-alive and new-connection results for one way of serving the site.
struct Row {
    name: &'static str,
    keepalive: Summary,
    close: Summary,
}

fn measure(name: &'static str, client: &Netns, url: &str) -> Row {
    eprintln!("==> {name}: {SECONDS} s kept-alive, {SECONDS} s one request per connection");
    let keepalive = wrk::run(client, url, load(false));
    let close = wrk::run(client, url, load(true));
    eprintln!("    {:.0} req/s kept alive, {:.0} connections/s", keepalive.per_second, close.per_second);
    Row { name, keepalive, close }
}

/// Both web servers at once, half the connections each; rates add up, latencies are the worse.
fn measure_direct(client: &Netns) -> Row {
    eprintln!("==> direct to web1 and web2");
    let both = |close: bool| {
        let half = Load { connections: CONNECTIONS / 2, threads: 1, ..load(close) };
        let a = wrk::start(client, &format!("http://{WEB1}/"), half);
        let b = wrk::start(client, &format!("http://{WEB2}/"), half);
        let (a, b) = (wrk::finish(a, half), wrk::finish(b, half));
        Summary {
            requests: a.requests + b.requests,
            per_second: a.per_second + b.per_second,
            socket_errors: a.socket_errors + b.socket_errors,
            non_2xx: a.non_2xx + b.non_2xx,
            p50_ms: a.p50_ms.max(b.p50_ms),
            p90_ms: a.p90_ms.max(b.p90_ms),
            p99_ms: a.p99_ms.max(b.p99_ms),
            text: format!("{}\n{}", a.text, b.text),
        }
    };
    let row = Row { name: "direct", keepalive: both(false), close: both(true) };
    eprintln!("    {:.0} req/s kept alive, {:.0} connections/s", row.keepalive.per_second, row.close.per_second);
    row
}

/// HAProxy in TCP mode on the node's VIP, round-robin over the two web servers.
fn haproxy(node: &Netns) -> Spawned {
    let dir = node.scratch("haproxy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("haproxy dir");
    let conf = format!(
        "global\n  maxconn 8000\n  nbthread 2\n\ndefaults\n  mode tcp\n  timeout connect 2s\n  \
         timeout client 30s\n  timeout server 30s\n\nfrontend www\n  bind {VIP}:80\n  default_backend web\n\n\
         backend web\n  balance roundrobin\n  server web1 {WEB1}:80\n  server web2 {WEB2}:80\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("haproxy.cfg");
    let p = node.spawn(&["haproxy", "-db", "-f", path.to_str().expect("UTF-8")], &dir.join("haproxy.log"));
    nginx::wait_listening(node, 80);
    p
}

/// [`lab_denying_flood`]'s firewall and load balancing, written for nftables: deny list and
/// allow rules at ingress on `front` (the earliest hook, as XDP), DNAT round-robin to the web
/// servers with masquerade on `back` (as foobar's NAT mode).
const NFT_RULES: &str = "table netdev foobar_bench {
  chain front_in {
    type filter hook ingress device \"front\" priority -500; policy drop;
    meta protocol arp accept
    meta protocol ip6 accept
    ip saddr { 192.0.2.66, 203.0.113.0/24 } drop
    ip daddr 192.0.2.10 tcp dport { 80, 443 } accept
    ip daddr 192.0.2.53 udp dport 53 accept
    ip daddr 192.0.2.53 tcp dport 53 accept
    icmp type { echo-reply, destination-unreachable, time-exceeded } accept
  }
}
table ip foobar_bench_nat {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr 192.0.2.10 tcp dport { 80, 443 } dnat to numgen inc mod 2 map { 0 : 198.51.100.11, 1 : 198.51.100.12 }
  }
  chain post {
    type nat hook postrouting priority srcnat;
    oifname \"back\" ip daddr { 198.51.100.11, 198.51.100.12 } masquerade
  }
}
";

/// Loads [`NFT_RULES`] in the node's namespace until dropped.
struct Nft(Netns);

impl Nft {
    fn load(node: &Netns) -> Nft {
        let path = node.scratch("bench.nft");
        std::fs::write(&path, NFT_RULES).expect("nft rules");
        node.exec(&["nft", "-f", path.to_str().expect("UTF-8")]);
        Nft(node.clone())
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        let _ = self.0.output(&["nft", "flush", "ruleset"]);
    }
}

/// The legitimate client's new connections/s without and with a spoofed SYN flood, and the
/// flood's rate as sent.
struct Flooded {
    name: &'static str,
    quiet: Summary,
    flooded: Summary,
    flood_pps: f64,
}

fn under_flood(name: &'static str, stack: &Stack) -> Flooded {
    eprintln!("==> {name}: legitimate new connections, {SECONDS} s quiet then {SECONDS} s under a SYN flood");
    let url = format!("http://{VIP}/");
    let legit = Load { connections: 8, ..load(true) };
    let quiet = wrk::run(&stack.client, &url, legit);
    let node_mac = stack.node.mac("front");
    let client_mac = stack.client.mac("eth0");
    let frames: Vec<Vec<u8>> = (0..4064u32)
        .map(|i| {
            let src = [203, 0, 113, 1 + (i % 254) as u8];
            let mut f = Frame::tcp4(src, 1024 + (i / 254) as u16, [192, 0, 2, 10], 80);
            f.src_mac = client_mac;
            f.dst_mac = node_mac;
            f.flags(TcpFlags::SYN).build()
        })
        .collect();
    let started = Instant::now();
    let until = started + std::time::Duration::from_secs(u64::from(SECONDS) + 1);
    let client = stack.client.clone();
    let sender = std::thread::spawn(move || raw::flood(&client, "eth0", &frames, FLOOD_PER_SECOND, until));
    let flooded = wrk::run(&stack.client, &url, legit);
    let sent = sender.join().expect("flood thread").expect("flood");
    let flood_pps = sent as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "    {:.0} connections/s quiet, {:.0} under {:.0} spoofed SYN/s",
        quiet.per_second, flooded.per_second, flood_pps
    );
    Flooded { name, quiet, flooded, flood_pps }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn report(rows: &[Row], floods: &[Flooded]) -> String {
    let (direct, haproxy) = (&rows[0], &rows[1]);
    let mut md = String::new();
    let date = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output();
    let date = date.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    let _ = writeln!(md, "Measured {date} on {} (`cargo xtask bench lab`).\n", machine());
    let _ = writeln!(
        md,
        "wrk from the client, {SECONDS} s per run, {CONNECTIONS} connections on 2 threads, nginx on web1 and web2.\n"
    );
    let _ = writeln!(
        md,
        "| setup | kept-alive req/s | × direct | × HAProxy | p50 / p99 ms | new conn/s | × direct | × HAProxy | p50 / p99 ms | failed |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {:.0} | {:.2} | {:.2} | {:.2} / {:.2} | {} |",
            r.name,
            r.keepalive.per_second,
            r.keepalive.per_second / direct.keepalive.per_second,
            r.keepalive.per_second / haproxy.keepalive.per_second,
            r.keepalive.p50_ms,
            r.keepalive.p99_ms,
            r.close.per_second,
            r.close.per_second / direct.close.per_second,
            r.close.per_second / haproxy.close.per_second,
            r.close.p50_ms,
            r.close.p99_ms,
            r.keepalive.failed() + r.close.failed(),
        );
    }
    let _ = writeln!(
        md,
        "\nSYN flood from spoofed 203.0.113.0/24 (254 sources, on the deny list) while the client opens \
         new connections (8 connections, one request each):\n"
    );
    let _ =
        writeln!(md, "| rules in | quiet conn/s | under flood conn/s | kept | flood SYN/s sent | p99 ms under flood |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for f in floods {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
            f.name,
            f.quiet.per_second,
            f.flooded.per_second,
            f.flooded.per_second / f.quiet.per_second,
            f.flood_pps,
            f.flooded.p99_ms
        );
    }
    md
}

/// Bar charts of both tables, drawn by gnuplot into `dir/lab.png`.
fn plot(dir: &Path, rows: &[Row], floods: &[Flooded]) -> Result<(), String> {
    let mut data = String::new();
    for r in rows {
        let _ = writeln!(data, "\"{}\" {:.0} {:.0}", r.name, r.keepalive.per_second, r.close.per_second);
    }
    let mut flood = String::new();
    for f in floods {
        let _ = writeln!(flood, "\"{}\" {:.0} {:.0}", f.name, f.quiet.per_second, f.flooded.per_second);
    }
    std::fs::write(dir.join("lab.dat"), data).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("lab-flood.dat"), flood).map_err(|e| e.to_string())?;
    let script = "set terminal pngcairo size 1100,450 font 'sans,10'\nset output 'lab.png'\n\
        set multiplot layout 1,2\nset style data histogram\nset style histogram cluster gap 1\n\
        set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\nset yrange [0:*]\nset key below\n\
        set title 'wrk through each front end'\nset ylabel 'per second'\n\
        plot 'lab.dat' using 2:xtic(1) title 'kept-alive requests', '' using 3 title 'new connections'\n\
        set title 'legitimate new connections under a spoofed SYN flood'\n\
        plot 'lab-flood.dat' using 2:xtic(1) title 'quiet', '' using 3 title 'under flood'\nunset multiplot\n";
    std::fs::write(dir.join("lab.gnuplot"), script).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("gnuplot").arg("lab.gnuplot").current_dir(dir).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Err(format!("gnuplot: {e}")),
    }
}

/// Runs `f` on a lab of its own with nginx on both web servers. Each setup gets fresh web
/// servers: TIME_WAIT sockets left by an earlier setup's connections, carrying another
/// sender's TCP timestamps, would make the web servers refuse reused source ports (PAWS) and
/// cost the next setup one-second SYN retransmits.
fn fresh<T>(f: impl FnOnce(&Stack) -> T) -> T {
    let stack = Stack::build_with(Offloads::TunedForNativeXdp);
    let _web1 = nginx::start(&stack.web1, "web1");
    let _web2 = nginx::start(&stack.web2, "web2");
    f(&stack)
}

fn main() -> ExitCode {
    if !gate::is_root() {
        eprintln!("bench-lab needs root (network namespaces, XDP): run `sudo -E cargo xtask bench lab`");
        return ExitCode::FAILURE;
    }
    let vip = format!("http://{VIP}/");
    let dsr = lab().replacen(r#"mode = "nat""#, r#"mode = "dsr""#, 1);
    let rows = vec![
        fresh(|stack| measure_direct(&stack.client)),
        fresh(|stack| {
            let _haproxy = haproxy(&stack.node);
            measure("HAProxy 2.6", &stack.client, &vip)
        }),
        fresh(|stack| {
            let _foobar = RunningDaemon::start(&stack.node, &lab());
            measure("foobar nat", &stack.client, &vip)
        }),
        fresh(|stack| {
            let _foobar = RunningDaemon::start(&stack.node, &dsr);
            measure("foobar dsr", &stack.client, &vip)
        }),
    ];
    let floods = vec![
        fresh(|stack| {
            let _foobar = RunningDaemon::start(&stack.node, &lab_denying_flood());
            under_flood("foobar", stack)
        }),
        fresh(|stack| {
            let _nft = Nft::load(&stack.node);
            under_flood("nftables", stack)
        }),
    ];

    let md = report(&rows, &floods);
    println!("\n{md}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("lab.md"), &md);
    match plot(&dir, &rows, &floods) {
        Ok(()) => println!("wrote {0}/lab.md and {0}/lab.png", dir.display()),
        Err(e) => eprintln!("no plot: {e}"),
    }
    let (direct, haproxy, nat) = (&rows[0], &rows[1], &rows[2]);
    println!(
        "targets: foobar nat new connections/s {:.2}x direct (>= 0.9), {:.2}x HAProxy (>= 1.8)",
        nat.close.per_second / direct.close.per_second,
        nat.close.per_second / haproxy.close.per_second
    );
    ExitCode::SUCCESS
}
