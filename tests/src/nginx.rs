//! A real nginx (Debian's) serving a web server's pages inside a lab namespace.

use std::{path::PathBuf, time::Duration};

use crate::netns::{Netns, Spawned};

/// A running nginx and the directory holding its config, pages and logs.
pub struct Nginx {
    pub process: Spawned,
    pub dir: PathBuf,
}

/// Starts nginx in `ns` on port 80 of every address (so it also answers on a VIP held on
/// loopback for DSR); `/` answers `<name> <client address>\n`, so tests see which web server
/// served them and whom it saw; `/static/` serves files from the `html` directory; `/app` goes
/// to the lab's app server, which is told which web server proxied it.
pub fn start(ns: &Netns, name: &str) -> Nginx {
    start_with(ns, name, None, false)
}

/// As [`start`], also serving HTTPS on port 443 with the lab CA's certificate.
pub fn start_tls(ns: &Netns, name: &str, ca: &crate::tls::LabCa) -> Nginx {
    start_with(ns, name, Some(ca), false)
}

/// As [`start`], with nginx's access log (the default format) in [`Nginx::access_log`].
pub fn start_logging(ns: &Netns, name: &str) -> Nginx {
    start_with(ns, name, None, true)
}

impl Nginx {
    /// What nginx logged of the requests it served (empty without [`start_logging`]).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

fn start_with(ns: &Netns, name: &str, tls: Option<&crate::tls::LabCa>, logging: bool) -> Nginx {
    let dir = ns.scratch("nginx");
    let log = if logging { format!("    access_log {}/access.log;\n", dir.display()) } else { String::new() };
    let server = format!(
        "server {{\n    listen 80 reuseport;\n    root {d}/html;\n{log}\
           location = / {{ default_type text/plain; return 200 \"{name} $remote_addr\\n\"; }}\n\
           location /static/ {{ alias {d}/html/; }}\n\
           location /app {{ proxy_pass http://{app}:{port}; proxy_set_header X-Web {name}; \
             proxy_connect_timeout 2s; proxy_read_timeout 10s; }}\n{tls}  }}\n",
        d = dir.display(),
        app = crate::topology::APP,
        port = crate::app::PORT,
        tls = tls.map_or(String::new(), |ca| format!("    listen 443 ssl reuseport;\n{}", certificate(ca))),
    );
    let ports: &[u16] = if tls.is_some() { &[80, 443] } else { &[80] };
    start_servers(ns, name, &server, ports)
}

/// The `ssl_certificate` lines for the lab CA's server certificate.
pub fn certificate(ca: &crate::tls::LabCa) -> String {
    format!("    ssl_certificate {};\n    ssl_certificate_key {};\n", ca.server_cert.display(), ca.server_key.display())
}

/// Starts nginx in `ns` with `servers` (nginx `server { … }` blocks) and waits until it
/// listens on every one of `ports`; its pages directory holds `index.html` saying `name`.
pub fn start_servers(ns: &Netns, name: &str, servers: &str, ports: &[u16]) -> Nginx {
    let dir = ns.scratch("nginx");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("html")).expect("nginx dir");
    std::fs::write(dir.join("html/index.html"), format!("{name}\n")).expect("index");
    let conf = format!(
        "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000;\n{servers}}}\n",
        d = dir.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let conf_arg = conf_path.display().to_string();
    let log = dir.join("error.log");
    let log_arg = log.display().to_string();
    let process = ns.spawn(&["nginx", "-c", &conf_arg, "-e", &log_arg, "-g", "daemon off;"], &log);
    for port in ports {
        wait_listening(ns, *port);
    }
    Nginx { process, dir }
}

/// Waits up to 5 s until something listens for TCP on `port` in `ns`.
pub fn wait_listening(ns: &Netns, port: u16) {
    for _ in 0..100 {
        let out = ns.output(&["ss", "-Htln", &format!("sport = :{port}")]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} in {} after 5 s", ns.name());
}
