//! wrk (Debian's HTTP load generator) run from a lab namespace for a bounded time, and its
//! summary read back: requests, failures and latency percentiles.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::netns::{Netns, Spawned};

/// What to run: `connections` over `threads`, for `seconds`, one request per connection
/// (`Connection: close`) or kept alive.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub seconds: u32,
    pub connections: u32,
    pub threads: u32,
    pub close: bool,
}

impl Load {
    /// A light load, enough to prove requests flow: 8 connections on 2 threads.
    pub fn light(seconds: u32, close: bool) -> Load {
        Load { seconds, connections: 8, threads: 2, close }
    }
}

/// wrk's summary.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub text: String,
    pub requests: u64,
    pub per_second: f64,
    /// Connect, read, write and timeout errors, summed.
    pub socket_errors: u64,
    pub non_2xx: u64,
    /// 50th, 90th and 99th percentile latency, in milliseconds.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl Summary {
    pub fn failed(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }

    fn parse(text: String) -> Summary {
        let count = |label: &str| -> u64 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map_or(0, |rest| rest.split(|c: char| !c.is_ascii_digit()).filter_map(|t| t.parse::<u64>().ok()).sum())
        };
        let percentile =
            |p: &str| text.lines().find_map(|l| l.trim().strip_prefix(p).map(|v| millis(v.trim()))).unwrap_or(f64::NAN);
        Summary {
            requests: text
                .lines()
                .find_map(|l| l.split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
                .unwrap_or(0),
            per_second: text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0.0),
            socket_errors: count("Socket errors:"),
            non_2xx: count("Non-2xx or 3xx responses:"),
            p50_ms: percentile("50%"),
            p90_ms: percentile("90%"),
            p99_ms: percentile("99%"),
            text,
        }
    }
}

/// `1.23ms`, `456.00us`, `2.01s` in milliseconds.
fn millis(v: &str) -> f64 {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, f64::NAN)
    };
    number.parse::<f64>().map_or(f64::NAN, |n| n * scale)
}

/// Starts wrk against `url` from `ns` (see [`finish`]); the caller may act meanwhile.
pub fn start(ns: &Netns, url: &str, load: Load) -> (Spawned, std::path::PathBuf) {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    let log = ns.scratch(&format!("wrk-{n}.txt"));
    let _ = std::fs::remove_file(&log);
    let (t, c, d) = (format!("-t{}", load.threads), format!("-c{}", load.connections), format!("-d{}s", load.seconds));
    let mut args = vec!["wrk", &t, &c, &d, "--timeout", "2s", "--latency"];
    if load.close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    (ns.spawn(&args, &log), log)
}

/// Waits for a wrk started by [`start`] for `load` and reads its summary.
pub fn finish(mut run: (Spawned, std::path::PathBuf), load: Load) -> Summary {
    assert!(run.0.wait_done(Duration::from_secs(u64::from(load.seconds) + 10)), "wrk did not finish");
    let text = std::fs::read_to_string(&run.1).expect("wrk output");
    let _ = std::fs::remove_file(&run.1);
    let s = Summary::parse(text);
    assert!(s.requests > 0 || s.failed() > 0, "no summary from wrk:\n{}", s.text);
    s
}

/// Runs wrk against `url` from `ns` and returns its summary.
pub fn run(ns: &Netns, url: &str, load: Load) -> Summary {
    finish(start(ns, url, load), load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_summary() {
        let text = "Running 2s test @ http://192.0.2.10/\n  2 threads and 8 connections\n\
          Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   612.47us  1.02ms  21.00ms   96.12%\n\
          Latency Distribution\n     50%  420.00us\n     75%  571.00us\n     90%    1.02ms\n     99%    2.50s\n\
          12345 requests in 2.00s, 1.80MB read\n  Socket errors: connect 3, read 1, write 0, timeout 2\n\
          Non-2xx or 3xx responses: 4\nRequests/sec:   6172.50\nTransfer/sec:    920.00KB\n";
        let s = Summary::parse(text.to_owned());
        assert_eq!((s.requests, s.socket_errors, s.non_2xx, s.failed()), (12345, 6, 4, 10));
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms), (0.42, 1.02, 2500.0));
        assert_eq!(s.per_second, 6172.5);
    }
}
