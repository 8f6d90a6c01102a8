//! Prometheus's own tools (Debian's `prometheus`) on foobar's exposition and alert rules.

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// `promtool check metrics` on `exposition`: `Err` with what it said if it found anything.
pub fn check_metrics(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() { Ok(()) } else { Err(said) }
}

/// Runs `promtool` with `args` in `dir`; `Err` with its output unless it succeeds.
pub fn promtool(dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("promtool").current_dir(dir).args(args).output().map_err(|e| format!("promtool: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(said) } else { Err(said) }
}

/// A Prometheus server in a lab namespace, scraping foobar every second and evaluating the
/// shipped rules every second, sending alerts to an Alertmanager.
pub struct Prometheus {
    pub process: crate::netns::Spawned,
}

impl Prometheus {
    /// Scrapes `target` (host:port) as job `foobar`, with `rules`, alerting `alertmanager`.
    pub fn start(ns: &crate::netns::Netns, target: &str, rules: &std::path::Path, alertmanager: &str) -> Prometheus {
        let dir = ns.scratch("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        let conf = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [{rules:?}]\n\
             alerting: {{ alertmanagers: [{{ static_configs: [{{ targets: [{alertmanager:?}] }}] }}] }}\n\
             scrape_configs: [{{ job_name: foobar, static_configs: [{{ targets: [{target:?}] }}] }}]\n",
            rules = rules.display().to_string(),
        );
        std::fs::write(dir.join("prometheus.yml"), conf).expect("prometheus.yml");
        let args = [
            "prometheus".to_owned(),
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            "--web.listen-address=127.0.0.1:9090".to_owned(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        Prometheus { process: ns.spawn(&argv, &dir.join("prometheus.log")) }
    }
}

/// An Alertmanager in a lab namespace that sends every alert, firing and resolved, to a
/// webhook at once (no grouping delay).
pub struct Alertmanager {
    pub process: crate::netns::Spawned,
}

impl Alertmanager {
    pub fn start(ns: &crate::netns::Netns, listen: &str, webhook: &str) -> Alertmanager {
        let dir = ns.scratch("alertmanager");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("alertmanager dir");
        let conf = format!(
            "route: {{ receiver: hook, group_by: [alertname, service, backend], group_wait: 1s, group_interval: 1s, repeat_interval: 1h }}\n\
             receivers: [{{ name: hook, webhook_configs: [{{ url: {webhook:?}, send_resolved: true }}] }}]\n"
        );
        std::fs::write(dir.join("alertmanager.yml"), conf).expect("alertmanager.yml");
        let args = [
            "prometheus-alertmanager".to_owned(),
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("data").display()),
            format!("--web.listen-address={listen}"),
            "--cluster.listen-address=".to_owned(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        Alertmanager { process: ns.spawn(&argv, &dir.join("alertmanager.log")) }
    }
}

/// A webhook receiver on a thread: every request body it got, in order.
pub struct Webhook {
    pub received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    /// Listens on `addr` inside `ns`.
    pub fn start(ns: &crate::netns::Netns, addr: &str) -> Webhook {
        use std::io::{BufRead, BufReader, Read};
        let listener = {
            let _inside = ns.enter();
            std::net::TcpListener::bind(addr).expect("webhook listen")
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (got, stopping) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut reader = BufReader::new(c.try_clone().expect("clone"));
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    got.lock().expect("webhook log").push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Webhook { received, stop, thread: Some(thread) }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
