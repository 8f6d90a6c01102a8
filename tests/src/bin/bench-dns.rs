//! `cargo xtask bench dns`: queries per second from dnsperf against foobar's DNS, answered in
//! XDP and (XDP off) by its userspace server, and against NSD and Knot DNS (Debian's) serving
//! the same zone as their tuning guides say (one reuseport socket per core), one after the
//! other in the same run, from a client namespace to a server namespace joined by a veth pair.
//! Each load lasts `SECONDS`. Response rate limiting is off on all: the benchmark measures
//! answering, not refusing. dnsperf shares the machine: the CPU it used is printed per row.

use std::{path::Path, process::ExitCode, time::Duration};

use foobar::{
    config,
    dataplane::{
        Dataplane, Trust,
        dns::{DnsAnswers, Limits},
    },
    dns::{Dns, Settings, zone::Live},
    plan::Plan,
    xdp_mode::XdpMode,
};
use foobar_tests::{
    gate,
    netns::{Lab, Netns},
};

const SECONDS: u32 = 8;

/// CPU seconds this process's finished children (dnsperf) have used.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// dnsperf's "Queries per second" from a run against 192.0.2.53, and the cores dnsperf used.
fn dnsperf(client: &Netns, queries: &Path) -> (f64, f64) {
    let cpu = children_cpu();
    let out = client.exec(&[
        "dnsperf",
        "-s",
        "192.0.2.53",
        "-d",
        &queries.display().to_string(),
        "-l",
        &SECONDS.to_string(),
        "-c",
        "4",
        "-T",
        "1",
        "-q",
        "200",
    ]);
    let cores = (children_cpu() - cpu) / f64::from(SECONDS);
    let lost = out.lines().find(|l| l.contains("Queries lost:")).unwrap_or("").trim().to_owned();
    eprintln!("    {lost}; dnsperf used {cores:.2} cores");
    let qps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in dnsperf output:\n{out}"));
    (qps, cores)
}

/// Waits until something at 192.0.2.53 answers www (a server just started).
fn wait_answering(client: &Netns, what: &str, log: &Path) {
    for _ in 0..50 {
        if client
            .output(&["dig", "@192.0.2.53", "+short", "+time=1", "+tries=1", "www.foobar.com"])
            .stdout
            .starts_with(b"192.0.2.10")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn main() -> ExitCode {
    if !gate::is_root() {
        eprintln!("bench-dns needs root (network namespaces): run `sudo -E cargo xtask bench dns`");
        return ExitCode::FAILURE;
    }
    let text = include_str!("../../../examples/lab.toml");
    let cfg = config::parse(Path::new("examples/lab.toml"), text, &|_| true).expect("lab config");
    let spec = Plan::compile(cfg).expect("lab plan").zone.expect("dns section");
    let live = Live { services: ["www".to_owned()].into(), databases: None };

    let mut lab = Lab::new();
    let client = lab.ns("client");
    let server = lab.ns("server");
    lab.veth(&client, "eth0", &server, "eth0");
    client.addr("eth0", "192.0.2.100/24");
    server.addr("eth0", "192.0.2.53/24");
    let dir = server.scratch("bench-dns");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let queries = dir.join("queries.txt");
    std::fs::write(
        &queries,
        "www.foobar.com A\ndb-write.foobar.com A\ndb-read.foobar.com A\nfoobar.com SOA\nnothere.foobar.com A\nwww.foobar.com AAAA\n",
    )
    .expect("queries");

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // foobar: its DNS server on a two-worker runtime inside the server namespace, first with
    // XDP answering on the server's interface, then without.
    let mut foobar = Vec::new();
    for xdp in [true, false] {
        eprintln!("==> foobar DNS, XDP {}, {SECONDS} s of dnsperf", if xdp { "on" } else { "off" });
        let _inside = server.enter();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let settings = Settings {
            listen: vec!["192.0.2.53:53".parse().expect("addr")],
            responses_per_second: 0,
            slip: 0,
            allow_axfr: false,
            tcp_connections: 100,
            tcp_idle_timeout: Duration::from_secs(5),
        };
        let dns = runtime.block_on(Dns::start(&spec, &settings, live.clone())).expect("foobar DNS starts");
        let mut dataplane = None;
        if xdp {
            let mut dp = Dataplane::load().expect("data plane loads");
            dp.attach("eth0", Trust::Trusted, XdpMode::Auto).expect("XDP attaches");
            let rendered = dns.answers().borrow().clone();
            DnsAnswers::default()
                .publish(&mut dp, &settings.listen, &rendered, Limits::default())
                .expect("answers published");
            dataplane = Some(dp);
        }
        std::thread::sleep(Duration::from_millis(200));
        let before = dataplane.as_ref().map(|d| d.counters().expect("counters"));
        let (qps, client_cores) = dnsperf(&client, &queries);
        if let (Some(dp), Some(before)) = (&dataplane, &before) {
            let after = dp.counters().expect("counters");
            let (answered, passed) = (
                after.since(before, foobar_common::counters::Counter::DnsXdpAnswered),
                after.since(before, foobar_common::counters::Counter::DnsXdpPassed),
            );
            eprintln!("    answered in XDP {answered}, passed to userspace {passed}");
        }
        drop(dataplane);
        drop(dns);
        runtime.shutdown_timeout(Duration::from_secs(2));
        foobar.push((qps, client_cores));
    }

    // The same records as a zone file, for NSD and Knot.
    let records = spec.build(&live);
    let zone: String = records
        .values()
        .flat_map(|rs| rs.records_without_rrsigs().map(|r| format!("{r}\n")).collect::<Vec<_>>())
        .collect();
    std::fs::write(dir.join("foobar.com.zone"), zone).expect("zone file");

    // NSD: one server process per core sharing the port (`reuseport`), no rate limit.
    eprintln!("==> NSD, {SECONDS} s of dnsperf");
    let conf = format!(
        "server:\n  ip-address: 192.0.2.53\n  port: 53\n  server-count: {cores}\n  reuseport: yes\n  username: \"\"\n  database: \"\"\n  \
         zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         rrl-ratelimit: 0\n  logfile: \"{d}/nsd.log\"\nremote-control:\n  control-enable: no\nzone:\n  name: foobar.com\n  zonefile: foobar.com.zone\n",
        d = dir.display()
    );
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf).expect("nsd.conf");
    let nsd = server.spawn(&["nsd", "-d", "-c", &conf_path.display().to_string()], &dir.join("nsd.out"));
    wait_answering(&client, "NSD", &dir.join("nsd.out"));
    let nsd_run = dnsperf(&client, &queries);
    drop(nsd);

    // Knot DNS: one UDP worker per core (it binds one reuseport socket each), no rate limit
    // (Knot has none unless its rrl module is loaded).
    eprintln!("==> Knot DNS, {SECONDS} s of dnsperf");
    let conf = format!(
        "server:\n  rundir: \"{d}\"\n  listen: 192.0.2.53@53\n  udp-workers: {cores}\n  tcp-workers: 1\n  background-workers: 1\n\
         database:\n  storage: \"{d}/knot-db\"\nlog:\n  - target: stderr\n    any: warning\n\
         zone:\n  - domain: foobar.com\n    storage: \"{d}\"\n    file: foobar.com.zone\n    journal-content: none\n",
        d = dir.display()
    );
    let knot_conf = dir.join("knot.conf");
    std::fs::write(&knot_conf, conf).expect("knot.conf");
    let knot = server.spawn(&["knotd", "-c", &knot_conf.display().to_string()], &dir.join("knot.out"));
    wait_answering(&client, "Knot", &dir.join("knot.out"));
    let knot_run = dnsperf(&client, &queries);
    drop(knot);

    let fastest = nsd_run.0.max(knot_run.0);
    println!(
        "\nDNS, queries per second (dnsperf, {SECONDS} s each, 4 clients, same zone and query mix, {cores} cores)"
    );
    println!("  {:<34} {:>10}  {:>14}  {:>10}", "server", "q/s", "dnsperf cores", "/ fastest");
    let rows = [
        ("foobar, answered in XDP", foobar[0]),
        ("foobar, XDP off (userspace)", foobar[1]),
        (&*format!("NSD, reuseport, {cores} servers"), nsd_run),
        (&*format!("Knot DNS, {cores} UDP workers"), knot_run),
    ];
    for (name, (qps, used)) in rows {
        println!("  {name:<34} {qps:>10.0}  {used:>14.2}  {:>10.2}", qps / fastest);
    }
    ExitCode::SUCCESS
}
