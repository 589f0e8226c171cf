//! Replays the HTTP fuzz corpus (tests/corpus/http: a sample of the
//! cargo-fuzz `http` target's corpus plus every crash it found) against a real
//! server over TCP: no client input may get a 5xx other than 503, and the
//! server keeps serving.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vcon_scitt::http::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_corpus_never_gets_a_5xx() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.limits.header_timeout_ms = 300;
    cfg.limits.body_timeout_ms = 300;
    cfg.registration.max_statement_bytes = 4096;
    let srv = start(cfg, None).await.unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo("tests/corpus/http"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 100, "the HTTP corpus is missing");
    let mut replies = 0;
    for f in &files {
        let input = std::fs::read(f).unwrap();
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(&input).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        for status in out.windows(12).filter(|w| w.starts_with(b"HTTP/1.1 ")) {
            replies += 1;
            assert!(
                status[9] != b'5' || &status[9..12] == b"503",
                "{}: {}",
                f.display(),
                String::from_utf8_lossy(&status[..12])
            );
        }
    }
    assert!(replies > 100, "the server answered only {replies} requests");
    let mut c = vcon_scitt_client::Conn::connect(&srv.url()).await.unwrap();
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    let r = c
        .post_statement(generic_statement("urn:after:corpus", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    srv.stop().await;
}
