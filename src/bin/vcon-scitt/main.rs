//! vcon-scitt: the transparency service, its operator commands and its
//! client commands. Each command is one function in the module of its
//! audience: `serve` (the server), `admin` (operators, on a data dir),
//! `tools` (issuers and relying parties, over HTTP or offline), `bench`.

mod admin;
mod args;
mod bench;
mod serve;
mod tools;

use std::process::ExitCode;

use args::{Cli, Command, ConfigAction, StatementAction};
use clap::Parser;

/// mimalloc instead of glibc malloc: the request path allocates small,
/// short-lived buffers on one thread and frees them on another (HTTP
/// worker → sequencer → worker), where glibc's arenas spent ≈7 % of server
/// CPU (BENCHMARKS.md, profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Dispatches one command; returns the process exit code.
fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Serve(a) => serve::serve(&a),
        Command::Config {
            action: ConfigAction::Print(a),
        } => admin::config_print(&a),
        Command::Keygen {
            out,
            alg,
            public_out,
        } => admin::keygen(&out, alg, public_out.as_deref()),
        Command::Fsck {
            bucket: Some(url),
            json,
            ..
        } => admin::fsck_bucket(&url, json),
        Command::Fsck {
            data_dir,
            keys,
            json,
            bucket: None,
        } => admin::fsck(&data_dir, keys.as_deref(), json),
        Command::RotateKey { alg, serve } => {
            admin::rotate_key(&args::effective_config(&serve)?, alg)
        }
        Command::Backup {
            url,
            token,
            data_dir,
            out,
        } => admin::backup(url, token, data_dir, out),
        Command::Restore { from, data_dir } => admin::restore(&from, &data_dir),
        Command::Verify(a) => Ok(u8::try_from(vcon_verify::run(&a)).unwrap_or(1)),
        Command::Register {
            file,
            url,
            token,
            timeout,
        } => tools::register(&file, &url, token, timeout),
        Command::Receipt {
            entry_id,
            url,
            fresh,
            out,
        } => tools::receipt(&entry_id, &url, fresh, out),
        Command::Keys { url, out } => tools::keys(&url, &out),
        Command::Statement {
            action:
                StatementAction::Sign {
                    payload,
                    key,
                    iss,
                    sub,
                    content_type,
                    out,
                },
        } => tools::sign(&payload, &key, &iss, &sub, content_type, out),
        Command::Statement {
            action: StatementAction::Create(a),
        } => tools::create(&a),
        Command::Audit {
            vcon,
            url,
            keys,
            issuer_keys,
            as_of,
            json,
        } => tools::audit(
            &vcon,
            url,
            keys.as_deref(),
            &issuer_keys,
            as_of.as_deref(),
            json,
        ),
        Command::Monitor {
            url,
            state,
            keys,
            rounds,
            interval,
            json,
        } => tools::monitor(url, state, keys.as_deref(), rounds, interval, json),
        Command::Bench(b) => bench::run(&b),
    }
}
