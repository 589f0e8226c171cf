//! Hostile clients on loopback (bounded counts, bounded time): slowloris,
//! huge heads, lying Content-Length, slow bodies, pipelined garbage, a flood
//! of idle connections, and a flood over the rate limit. After each, an
//! honest client still registers, and the server's memory stays bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

fn rss_kb() -> u64 {
    vcon_scitt::metrics::process_stats().map_or(0, |p| p.rss_bytes / 1024)
}

/// Reads until EOF or `limit`; returns what arrived and whether EOF came.
async fn read_reply(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline.into(), s.read(&mut chunk)).await {
            Ok(Ok(0)) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
        }
    }
}

async fn honest(url: &str, token: Option<&str>, n: &mut u32) {
    let mut c = Conn::connect(url).await.unwrap();
    c.token = token.map(str::to_owned);
    *n += 1;
    let r = c
        .post_statement(generic_statement(&format!("urn:honest:{n}"), b"{}"))
        .await
        .unwrap();
    assert_eq!(
        r.status,
        201,
        "honest client refused: {}",
        vcon_scitt_client::describe(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_hostile_clients() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.limits.header_timeout_ms = 400;
    cfg.limits.body_timeout_ms = 400;
    cfg.limits.max_connections = 2000;
    cfg.registration.max_statement_bytes = 4096;
    let token = |t: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()));
    cfg.auth.bearer_token_sha256 = vec![token("honest"), token("flooder")];
    cfg.rate_limit.per_client_per_sec = 2.0; // refill negligible during the flood
    cfg.rate_limit.burst = 50.0;
    let srv = start(cfg, None).await.unwrap();
    let url = srv.url();
    let addr = srv.addr;
    let mut n = 0;
    let rss_start = rss_kb();
    honest(&url, Some("honest"), &mut n).await;

    // Slowloris: half a request head, then silence. Closed by the header timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /entries HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let t = Instant::now();
    let (_, eof) = read_reply(&mut s, Duration::from_secs(3)).await;
    assert!(
        eof && t.elapsed() < Duration::from_secs(2),
        "slowloris connection not closed ({:?})",
        t.elapsed()
    );
    honest(&url, Some("honest"), &mut n).await;

    // A huge head (64 KiB header).
    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let (reply, _) = read_reply(&mut s, Duration::from_secs(2)).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{}",
        &reply[..reply.len().min(80)]
    );

    // Lying Content-Length: refused from the header, body never read.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer honest\r\nContent-Type: application/cose\r\nContent-Length: 100000000\r\n\r\nabc").await.unwrap();
    let (reply, _) = read_reply(&mut s, Duration::from_secs(2)).await;
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "{}",
        &reply[..reply.len().min(80)]
    );

    // A body that never finishes: 408 after the body timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /entries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer honest\r\nContent-Type: application/cose\r\nContent-Length: 1000\r\n\r\nabc").await.unwrap();
    let (reply, _) = read_reply(&mut s, Duration::from_secs(3)).await;
    assert!(
        reply.starts_with("HTTP/1.1 408"),
        "{}",
        &reply[..reply.len().min(80)]
    );

    // Pipelined garbage.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(&b"\x00\x01GARBAGE \xff\r\n\r\n".repeat(200))
        .await;
    let (reply, eof) = read_reply(&mut s, Duration::from_secs(2)).await;
    assert!(eof, "garbage connection left open");
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{}",
        &reply[..reply.len().min(80)]
    );
    honest(&url, Some("honest"), &mut n).await;

    // 10,000 idle connections (over the 2,000 cap): the excess are refused at
    // once, the rest closed by the header timeout; then honest clients work.
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        if let Ok(s) = TcpStream::connect(addr).await {
            idle.push(s);
        }
    }
    let rss_idle = rss_kb();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut closed = 0;
    for s in idle.iter_mut() {
        let mut b = [0u8; 512];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(2), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(
        idle.len() >= 9_900 && closed >= idle.len() - 50,
        "idle connections are not reaped ({closed} of {})",
        idle.len()
    );
    drop(idle);
    honest(&url, Some("honest"), &mut n).await;

    // A flood over the rate limit is answered 429; the honest token is not affected.
    let mut flood = Conn::connect(&url).await.unwrap();
    flood.token = Some("flooder".into());
    let mut limited = 0;
    for k in 0..200 {
        let r = flood
            .post_statement(generic_statement(&format!("urn:flood:{k}"), b"{}"))
            .await
            .unwrap();
        if r.status == 429 {
            limited += 1;
            assert!(r.header("retry-after").is_some());
        }
    }
    assert!(limited >= 100, "flood not limited ({limited})");
    honest(&url, Some("honest"), &mut n).await;

    let rss_end = rss_kb();
    eprintln!(
        "RSS: start {rss_start} kB, with 10,000 idle connections {rss_idle} kB, end {rss_end} kB"
    );
    assert!(
        rss_end < rss_start + 200 * 1024,
        "memory grew by {} kB",
        rss_end - rss_start
    );
    srv.stop().await;
}
