//! `cargo xtask bench dns`: queries per second from dnsperf against foobar's DNS server and
//! against NSD (Debian's) serving the same zone, one after the other in the same run, from a
//! client namespace to a server namespace joined by a veth pair. Each load lasts `SECONDS`.
//! Response rate limiting is off on both: the benchmark measures answering, not refusing.

use std::{path::Path, process::ExitCode, time::Duration};

use foobar::{
    config,
    dns::{Dns, Settings, zone::Live},
    plan::Plan,
};
use foobar_tests::{
    gate,
    netns::{Lab, Netns},
};

const SECONDS: u32 = 8;

/// dnsperf's "Queries per second" from a run against 192.0.2.53.
fn dnsperf(client: &Netns, queries: &Path) -> f64 {
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
    let lost = out.lines().find(|l| l.contains("Queries lost:")).unwrap_or("").trim().to_owned();
    eprintln!("    {lost}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in dnsperf output:\n{out}"))
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

    // foobar: its DNS server on a two-worker runtime inside the server namespace.
    eprintln!("==> foobar DNS, {SECONDS} s of dnsperf");
    let foobar_qps = {
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
        std::thread::sleep(Duration::from_millis(200));
        let qps = dnsperf(&client, &queries);
        drop(dns);
        runtime.shutdown_timeout(Duration::from_secs(2));
        qps
    };

    // NSD: the same records as a zone file, two server processes, no rate limit.
    eprintln!("==> NSD, {SECONDS} s of dnsperf");
    let records = spec.build(&live);
    let zone: String = records
        .values()
        .flat_map(|rs| rs.records_without_rrsigs().map(|r| format!("{r}\n")).collect::<Vec<_>>())
        .collect();
    std::fs::write(dir.join("foobar.com.zone"), zone).expect("zone file");
    let conf = format!(
        "server:\n  ip-address: 192.0.2.53\n  port: 53\n  server-count: 2\n  username: \"\"\n  database: \"\"\n  \
         zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         rrl-ratelimit: 0\n  logfile: \"{d}/nsd.log\"\nremote-control:\n  control-enable: no\nzone:\n  name: foobar.com\n  zonefile: foobar.com.zone\n",
        d = dir.display()
    );
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf).expect("nsd.conf");
    let nsd = server.spawn(&["nsd", "-d", "-c", &conf_path.display().to_string()], &dir.join("nsd.out"));
    let mut ready = false;
    for _ in 0..50 {
        if client
            .output(&["dig", "@192.0.2.53", "+short", "+time=1", "+tries=1", "www.foobar.com"])
            .stdout
            .starts_with(b"192.0.2.10")
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready, "NSD did not answer: {}", std::fs::read_to_string(dir.join("nsd.out")).unwrap_or_default());
    let nsd_qps = dnsperf(&client, &queries);
    drop(nsd);

    println!("\nDNS, queries per second (dnsperf, {SECONDS} s each, 4 clients, same zone and query mix)");
    println!("  foobar (hickory-server)  {foobar_qps:>10.0}");
    println!("  NSD 4.6                  {nsd_qps:>10.0}");
    println!("  foobar / NSD             {:>10.2}", foobar_qps / nsd_qps);
    ExitCode::SUCCESS
}
