//! `vcon-scitt serve`: start the service, print where everything is, stop
//! cleanly on SIGINT/SIGTERM.

use vcon_scitt::config::LogFormat;

/// `println!` that never panics: a node prints each change of role, and a
/// closed stdout must not stop the server.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use vcon_scitt::http::{NodeTerm, Running};

use crate::args::{ServeArgs, effective_config};

/// A multi-threaded runtime for the server and the client commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr; `VCON_SCITT_LOG` is an `EnvFilter` (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VCON_SCITT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<u8> {
    let config = effective_config(args)?;
    let standby = args.standby;
    init_tracing(config.log_format);
    let rt = runtime()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(());
        });
        if config.replica.of.is_some() {
            return serve_replica(config, rx).await;
        }
        let publish = config.publish.bucket.clone();
        if standby {
            vcon_scitt::http::run_standby_node(config, rx, |term| match term {
                NodeTerm::Listening(url) => {
                    say!("vcon-scitt standby listening on {url}");
                    say!("  a read replica of the writer's bucket until the log's lease is free");
                }
                NodeTerm::Writer(running) => {
                    say!("took over as the writer on {}", running.url());
                    announce(running, publish.as_deref());
                }
                NodeTerm::Demoted(why) => {
                    say!("fenced ({why}): the writer stopped; rejoining as the standby");
                }
            })
            .await
            .map_err(anyhow::Error::msg)?;
            tracing::info!("stopped cleanly");
            return Ok(0);
        }
        let running = vcon_scitt::http::start(config, Some(rx))
            .await
            .map_err(anyhow::Error::msg)?;
        announce(&running, publish.as_deref());
        running.wait().await?;
        tracing::info!("stopped cleanly");
        Ok(0)
    })
}

/// Where the writer listens and what it serves.
fn announce(running: &Running, publish: Option<&str>) {
    let svc = &running.service;
    let url = running.url();
    let data_dir = svc.config.data_dir.display().to_string();
    say!("vcon-scitt listening on {url}");
    say!("  data dir:      {data_dir} (RocksDB in {data_dir}/db)");
    say!(
        "  service key:   {} (kid {})",
        svc.config.key_file().display(),
        hex::encode(&svc.current_kid)
    );
    say!("  public keys:   {data_dir}/keys/scitt-keys.cbor, or GET {url}/.well-known/scitt-keys");
    say!("  tree size:     {}", svc.log.latest().head.size);
    say!(
        "  issuers:       {} registered, {} trust anchor(s)",
        svc.trust.registry.len(),
        svc.trust.anchors.len()
    );
    if let Some(bucket) = publish {
        say!("  publishing to: {bucket} (tiles, bundles, heads; checkpoint last)");
    }
    say!("  try:           curl -s {url}/healthz");
    tracing::info!(%url, "serving");
}

/// `serve --replica-of s3://…`: a read replica of a published log.
async fn serve_replica(
    config: vcon_scitt::config::Config,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<u8> {
    use vcon_scitt::reads::LogReads;
    let cache = config.data_dir.join("replica");
    let running = vcon_scitt::http::start_replica(config, Some(rx))
        .await
        .map_err(anyhow::Error::msg)?;
    let r = &running.service;
    let url = running.url();
    say!("vcon-scitt read replica listening on {url}");
    say!("  following:     {}", r.bucket_url());
    say!("  writer:        {} (registrations go there)", r.writer());
    say!("  cache:         {}", cache.display());
    say!("  tree size:     {} (verified)", r.latest_head().head.size);
    say!("  try:           curl -s {url}/healthz");
    tracing::info!(%url, bucket = %r.bucket_url(), "serving as a read replica");
    running.wait().await?;
    tracing::info!("stopped cleanly");
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
