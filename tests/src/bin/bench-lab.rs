//! `cargo xtask bench lab`: the seeds' front end side by side, in one run, in the lab.
//!
//! The same wrk load from the client, `SECONDS` each, kept-alive requests and one request per
//! connection (`Connection: close`), against:
//! 1. the web servers directly (routed by the node's kernel; two wrk, one per server: the limit),
//! 2. HAProxy 2.6 (Debian) on the node, TCP mode, round-robin, same backends (`HAProxy 2.6`),
//! 3. foobar in `nat` mode and 4. in `dsr` mode (examples/lab.toml).
//!
//! Then a spoofed SYN flood, not denied: 60,960 distinct tuples from 203.0.113.0/24, bounded
//! in time, while the legitimate client makes new connections: its rate with and without the
//! flood, and the machine's CPU per flood packet (sent alone, sender included), behind foobar's
//! SYN proxy, behind HAProxy with the kernel's SYN cookies, and behind nftables (netdev ingress
//! filter + DNAT round-robin) with the web servers' SYN cookies.
//!
//! The per-source and per-/24 SYN limits are off throughout (`syn_rate_per_source = 0`,
//! `syn_rate_per_net = 0`): the benchmark's client is one address opening thousands of
//! connections a second, which the lab's limits would rightly cut (the limiter measured, not
//! the balancer); and a flood spread over enough prefixes gets past any per-prefix limit.
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
/// The floods' rates: the 60,000 SYNs in five seconds users saw deny all service, and ten
/// times that (about what one sending thread can pace on a small machine while wrk and nginx
/// run too; unpaced, it fills a core and the veth queue).
const FLOOD_RATES: [u64; 2] = [12_000, 120_000];
const CONNECTIONS: u32 = 16;
const LAB_TOML: &str = include_str!("../../../examples/lab.toml");

/// examples/lab.toml without the per-source and per-/24 SYN limits (see the top of this file).
fn lab() -> String {
    // Native XDP on the tuned lab (see `Offloads`): the path a NIC would run.
    LAB_TOML
        .replacen("syn_rate_per_source = 200", "syn_rate_per_source = 0", 1)
        .replacen("syn_rate_per_net = 5000", "syn_rate_per_net = 0", 1)
        .replacen(r#"xdp_mode = "auto""#, r#"xdp_mode = "native""#, 1)
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

/// [`lab`]'s firewall and load balancing, written for nftables: deny list and allow rules at
/// ingress on `front` (the earliest hook, as XDP), DNAT round-robin to the web servers with
/// masquerade on `back` (as foobar's NAT mode).
const NFT_RULES: &str = "table netdev foobar_bench {
  chain front_in {
    type filter hook ingress device \"front\" priority -500; policy drop;
    meta protocol arp accept
    meta protocol ip6 accept
    ip saddr 192.0.2.66 drop
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

/// Turns on the kernel's SYN cookies where connections end (the default, 1, sends them only
/// once the listen queue overflows: what a flood does).
fn syncookies(ns: &Netns) {
    ns.exec(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=1"]);
}

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

/// The legitimate client's new connections/s without and with a spoofed SYN flood, the
/// flood's rate as sent, and the machine's CPU per flood packet.
struct Flooded {
    name: &'static str,
    quiet: Summary,
    flooded: Summary,
    flood_pps: f64,
    cpu_us_per_packet: f64,
}

/// Seconds of the flood sent alone, to time what it costs.
const FLOOD_ALONE: u64 = 4;

/// CPU seconds all cores spent busy since boot (user, system, interrupts, softirq).
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("cpu line");
    let ticks: Vec<f64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    // SAFETY: sysconf only reads a constant.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The MAC of the flood's way in: the router upstream, through which replies to the spoofed
/// sources leave.
const UPSTREAM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];

/// Where every front end's replies to the spoofed sources go, as they would go to the
/// internet: the node routes 203.0.113.0/24 to the upstream router's MAC, and the switch
/// delivers that MAC back to the node's own port, which drops the frame (nobody's receive
/// path pays for them, the sender's transmit path does).
fn upstream_sink(stack: &Stack) {
    let mac = UPSTREAM_MAC.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    stack.node.ip(&["neigh", "replace", "192.0.2.254", "lladdr", &mac, "dev", "front", "nud", "permanent"]);
    stack.node.ip(&["route", "replace", "203.0.113.0/24", "via", "192.0.2.254", "dev", "front"]);
    let inet = &stack.inet;
    inet.exec(&["bridge", "link", "set", "dev", "p-client", "learning", "off"]);
    inet.exec(&["bridge", "fdb", "replace", &mac, "dev", "p-node", "master", "static"]);
}

/// 254 spoofed sources in 203.0.113.0/24, 240 ports each: tuples no table has seen.
fn flood_frames(stack: &Stack) -> Vec<Vec<u8>> {
    let node_mac = stack.node.mac("front");
    (0..254 * 240u32)
        .map(|i| {
            let src = [203, 0, 113, 1 + (i % 254) as u8];
            let mut f = Frame::tcp4(src, 1024 + (i / 254) as u16, [192, 0, 2, 10], 80);
            f.src_mac = UPSTREAM_MAC;
            f.dst_mac = node_mac;
            f.flags(TcpFlags::SYN).tcp_numbers(i.wrapping_mul(2_654_435_761), 0, 64240).build()
        })
        .collect()
}

/// Sends `frames` from the client at `rate` for `seconds`, in a thread of its own.
fn flood(
    stack: &Stack,
    frames: &std::sync::Arc<Vec<Vec<u8>>>,
    rate: u64,
    seconds: u64,
) -> std::thread::JoinHandle<u64> {
    let (client, frames) = (stack.client.clone(), frames.clone());
    let until = Instant::now() + std::time::Duration::from_secs(seconds);
    std::thread::spawn(move || raw::flood(&client, "eth0", &frames, rate, until).expect("flood"))
}

/// The legitimate client's new connections quiet, then under each of [`FLOOD_RATES`].
fn under_floods(name: &'static str, stack: &Stack) -> Vec<Flooded> {
    eprintln!("==> {name}: legitimate new connections, {SECONDS} s quiet then {SECONDS} s under each SYN flood");
    let url = format!("http://{VIP}/");
    let legit = Load { connections: 8, ..load(true) };
    let quiet = wrk::run(&stack.client, &url, legit);
    upstream_sink(stack);
    let frames = std::sync::Arc::new(flood_frames(stack));
    FLOOD_RATES
        .iter()
        .map(|&rate| {
            let busy = busy_seconds();
            let alone = flood(stack, &frames, rate, FLOOD_ALONE).join().expect("flood thread");
            let cpu_us_per_packet = (busy_seconds() - busy) / alone as f64 * 1e6;
            let started = Instant::now();
            let sender = flood(stack, &frames, rate, u64::from(SECONDS) + 1);
            let flooded = wrk::run(&stack.client, &url, legit);
            let sent = sender.join().expect("flood thread");
            let flood_pps = sent as f64 / started.elapsed().as_secs_f64();
            eprintln!(
                "    {:.0} connections/s quiet, {:.0} under {:.0} spoofed SYN/s, {:.2} us CPU per SYN",
                quiet.per_second, flooded.per_second, flood_pps, cpu_us_per_packet
            );
            Flooded { name, quiet: quiet.clone(), flooded, flood_pps, cpu_us_per_packet }
        })
        .collect()
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
        "\nSYN flood from spoofed 203.0.113.0/24 (254 sources × 240 ports, not denied) while the client \
         opens new connections (8 connections, one request each); CPU per flood packet is the whole \
         machine's busy time while the flood is sent alone ({FLOOD_ALONE} s), the sender's own included:\n"
    );
    let _ = writeln!(
        md,
        "| front end | flood SYN/s sent | quiet conn/s | under flood conn/s | kept | p99 ms under flood | failed | CPU µs per flood SYN |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for f in floods {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            f.name,
            f.flood_pps,
            f.quiet.per_second,
            f.flooded.per_second,
            f.flooded.per_second / f.quiet.per_second,
            f.flooded.p99_ms,
            f.flooded.failed(),
            f.cpu_us_per_packet
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
        let label = format!("{}, {:.0}k SYN/s", f.name, f.flood_pps / 1000.0);
        let _ = writeln!(flood, "\"{label}\" {:.0} {:.0}", f.quiet.per_second, f.flooded.per_second);
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
            let foobar = RunningDaemon::start(&stack.node, &lab());
            let rows = under_floods("foobar nat, SYN proxy", stack);
            let moved: Vec<String> = foobar
                .status()
                .counters
                .into_iter()
                .filter(|(name, n)| *n > 0 && (name.starts_with("lb_") || name.starts_with("firewall_")))
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            eprintln!("    foobar's counters: {}", moved.join(", "));
            rows
        }),
        fresh(|stack| {
            syncookies(&stack.node);
            let _haproxy = haproxy(&stack.node);
            under_floods("HAProxy + SYN cookies", stack)
        }),
        fresh(|stack| {
            for web in [&stack.web1, &stack.web2] {
                syncookies(web);
            }
            let _nft = Nft::load(&stack.node);
            under_floods("nftables + SYN cookies", stack)
        }),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();

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
