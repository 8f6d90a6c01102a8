//! The lab's demo application server, the seeds' "application server" (lab code, not part of
//! foobar). `GET /app` records a visit through `db-write.foobar.com` and counts the visits
//! through `db-read.foobar.com`, looking both names up (through foobar's DNS, which the lab's
//! resolv.conf names) on every request, so it follows whatever foobar answers.
//!
//! Usage: `lab-app LISTEN_ADDR PASSWORD_FILE` (the `foobar_app` user's password).

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, anyhow, bail};
use foobar_tests::mariadb::APP_USER;
use mysql_async::{Conn, OptsBuilder, prelude::Queryable};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Everything one request does (lookups, two connections, two queries) must end within this.
const REQUEST_BUDGET: Duration = Duration::from_secs(5);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(password_file)) = (args.next(), args.next()) else {
        bail!("usage: lab-app LISTEN_ADDR PASSWORD_FILE");
    };
    let password = std::fs::read_to_string(&password_file).with_context(|| format!("read {password_file}"))?;
    let password: &'static str = Box::leak(password.trim().to_owned().into_boxed_str());
    let listener = TcpListener::bind(&listen).await.with_context(|| format!("listen on {listen}"))?;
    eprintln!("lab-app listening on {listen}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, password));
    }
}

async fn serve(mut stream: TcpStream, password: &'static str) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        match tokio::time::timeout(REQUEST_BUDGET, stream.read(&mut buf[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let web = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-web")).map(|(_, v)| v.trim()))
        .unwrap_or("direct")
        .to_owned();
    let (status, body) = if path == "/app" || path.starts_with("/app/") || path.starts_with("/app?") {
        match tokio::time::timeout(REQUEST_BUDGET, visit(&web, password)).await {
            Ok(Ok(body)) => ("200 OK", body),
            Ok(Err(e)) => ("503 Service Unavailable", format!("app: {e:#}\n")),
            Err(_) => ("503 Service Unavailable", format!("app: no answer within {REQUEST_BUDGET:?}\n")),
        }
    } else {
        ("404 Not Found", "app: only /app lives here\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// Writes a visit on the primary and counts visits on a replica, each found by name.
async fn visit(web: &str, password: &str) -> anyhow::Result<String> {
    let write = lookup("db-write.foobar.com").await?;
    let mut conn = connect(write, password).await?;
    conn.exec_drop("INSERT INTO demo.visits (web) VALUES (?)", (web,)).await.context("write the visit")?;
    let id = conn.last_insert_id().unwrap_or(0);
    conn.disconnect().await?;
    let read = lookup("db-read.foobar.com").await?;
    let mut conn = connect(read, password).await?;
    let count: u64 = conn.query_first("SELECT COUNT(*) FROM demo.visits").await.context("count visits")?.unwrap_or(0);
    conn.disconnect().await?;
    Ok(format!(
        "app: visit {id} from {web} written via db-write ({}), {count} visits read via db-read ({})\n",
        write.ip(),
        read.ip()
    ))
}

async fn lookup(name: &str) -> anyhow::Result<SocketAddr> {
    let mut found = tokio::net::lookup_host((name, 3306)).await.with_context(|| format!("look up {name}"))?;
    found.next().ok_or_else(|| anyhow!("{name} has no address right now"))
}

async fn connect(addr: SocketAddr, password: &str) -> anyhow::Result<Conn> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(APP_USER))
        .pass(Some(password))
        .db_name(Some("demo"))
        .prefer_socket(false);
    Conn::new(opts).await.with_context(|| format!("connect to {addr}"))
}
