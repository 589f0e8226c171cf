//! HTTP request handling: arbitrary bytes written to one connection of the
//! real service (hyper + our router, a real RocksDB in a temp dir), over an
//! in-memory pipe. Property beyond "no panic": client input never gets a 5xx
//! other than 503.
#![no_main]
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vcon_scitt::config::{Config, IssuerConfig};
use vcon_scitt::service::Service;

fn setup() -> &'static (tokio::runtime::Runtime, Arc<Service>) {
    static S: OnceLock<(tokio::runtime::Runtime, Arc<Service>)> = OnceLock::new();
    S.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut c = Config::default();
        c.data_dir = std::env::temp_dir().join(format!("vcon-scitt-fuzz-http-{}", std::process::id()));
        c.rate_limit.per_client_per_sec = 0.0;
        c.limits.header_timeout_ms = 200;
        c.limits.body_timeout_ms = 200;
        c.registration.max_statement_bytes = 4096;
        c.registration.wait_ms = 200;
        c.issuers = vec![IssuerConfig { iss: "https://conserver.test.example".into(), keys: vec![repo.join("keys/test-issuer-es256.keys.cbor")] }];
        let svc = rt.block_on(async { tokio::task::spawn_blocking(move || Service::open(c)).await }).unwrap().unwrap();
        (rt, svc)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, svc) = setup();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let conn = vcon_scitt::http::connection(svc.clone(), TokioIo::new(server), "127.0.0.1:9".parse().unwrap());
        let task = tokio::spawn(conn);
        let (mut r, mut w) = tokio::io::split(client);
        let _ = w.write_all(data).await;
        let _ = w.shutdown().await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(500), r.read_to_end(&mut buf)).await;
        task.abort();
        for status in buf.windows(12).filter(|w| w.starts_with(b"HTTP/1.1 ")) {
            if status[9] == b'5' && &status[9..12] != b"503" {
                panic!("{} for client input", String::from_utf8_lossy(&status[..12]));
            }
        }
    });
});
