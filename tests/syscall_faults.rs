//! Faults below RocksDB, injected into the real `vcon-scitt serve` binary
//! from outside with strace (`-e inject=`, Debian `strace`), as Tessera's
//! fault tests do: an I/O error on the WAL's fdatasync, a full disk on the
//! WAL's write, an I/O error on the rollback guard's fdatasync, and a kill
//! at the exact moment of a WAL fdatasync.
//!
//! The invariant (spec-notes/durability-faults.md): **every 201 is present
//! after a restart, with the very receipt it carried, and `fsck` is clean**;
//! after a failed sync nothing more is acknowledged until a restart. Not
//! asserted: that the log holds *only* the 201s. A batch whose sync failed
//! may come back with the WAL replay (its write reached the page cache);
//! its registrants got a 503, which promises nothing, and re-registering
//! is idempotent.
//!
//! Short by default (one injection point per fault: CI). The long mode,
//! `VCON_SCITT_FAULTS_LONG=1 cargo test --release --test syscall_faults --
//! --nocapture`, sweeps the injection point over 30 batches per fault and
//! prints the totals SECURITY.md quotes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use vcon_scitt::verify;

/// `vcon-scitt serve` under `strace -f` with injections, on a fresh data
/// dir. RocksDB's first WAL in a fresh data dir is `db/000004.log` (after a
/// failed sync RocksDB's recovery may switch to a new one: the injection
/// has happened by then).
struct Traced {
    strace: Child,
    url: String,
}

impl Traced {
    /// `None` when the server exited before listening (the fault hit its
    /// start-up: it refuses to run, which is an answer too).
    fn spawn(data: &Path, trace: &str, inject: &str, path: &Path) -> Option<Traced> {
        assert!(
            Path::new("/usr/bin/strace").exists(),
            "strace is missing: apt-get install strace (README command 2 needs it)"
        );
        let cfg = writer_config_file(data.parent().unwrap());
        let mut strace = Command::new("/usr/bin/strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-P"])
            .arg(path)
            .args(["-e", &format!("trace={trace}"), "-e", inject])
            .arg(env!("CARGO_BIN_EXE_vcon-scitt"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(["--config", cfg.to_str().unwrap()])
            .env("VCON_SCITT_RATE_LIMIT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(strace.stdout.take().unwrap()).lines();
        let Some(Ok(first)) = lines.next() else {
            let _ = strace.wait();
            return None;
        };
        let url = first.split_once("listening on ").unwrap().1.to_owned();
        std::thread::spawn(move || for _ in lines {});
        Some(Traced { strace, url })
    }

    /// The traced server's pid (strace's child).
    fn tracee(&self) -> Option<u32> {
        let pid = self.strace.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Stops the server (signalling the tracee, not strace) and waits.
    fn stop(mut self, signal: &str) {
        if let Some(pid) = self.tracee() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
        let _ = self.strace.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if let Some(pid) = self.tracee() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

/// One fault: which syscall on which file, and how it fails.
struct Fault {
    name: &'static str,
    trace: &'static str,
    /// The injection, `{when}` replaced by the call's ordinal.
    inject: &'static str,
    file: &'static str,
    /// True when the fault kills the server (no stop needed).
    kills: bool,
}

const FAULTS: &[Fault] = &[
    Fault {
        name: "EIO on the WAL's fdatasync",
        trace: "fdatasync",
        inject: "inject=fdatasync:error=EIO:when={when}",
        file: "db/000004.log",
        kills: false,
    },
    Fault {
        name: "ENOSPC on the WAL's write",
        trace: "write,pwrite64,writev",
        inject: "inject=write,pwrite64,writev:error=ENOSPC:when={when}",
        file: "db/000004.log",
        kills: false,
    },
    Fault {
        name: "EIO on the rollback guard's fdatasync",
        trace: "fdatasync",
        inject: "inject=fdatasync:error=EIO:when={when}",
        file: "rollback-guard",
        kills: false,
    },
    Fault {
        name: "SIGKILL at the WAL's fdatasync",
        trace: "fdatasync",
        inject: "inject=fdatasync:signal=SIGKILL:when={when}",
        file: "db/000004.log",
        kills: true,
    },
];

#[derive(Default, Debug)]
struct Totals {
    runs: u64,
    acknowledged: u64,
    refused: u64,
    /// Runs where the fault stopped the server from starting.
    at_startup: u64,
    lost: u64,
}

/// One answer: (statement, status, entry id from Location, body).
type Answer = (Vec<u8>, u16, String, Vec<u8>);

/// 4 clients register `n` statements until one sees the server gone.
async fn load(url: &str, tag: &str, n: usize) -> Vec<Answer> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (url, tag) = (url.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let Ok(mut c) = vcon_scitt_client::Conn::connect(&url).await else {
                return out;
            };
            for i in (w..n).step_by(4) {
                let st = generic_statement(&format!("urn:example:{tag}:{i}"), b"{}");
                match tokio::time::timeout(Duration::from_secs(10), c.post_statement(st.clone()))
                    .await
                {
                    Ok(Ok(r)) => {
                        let id = r
                            .header("location")
                            .map(|l| l.trim_start_matches("/entries/").to_owned())
                            .unwrap_or_default();
                        out.push((st, r.status, id, r.body));
                    }
                    _ => break,
                }
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Runs one fault at call `when`: load, stop, restart without faults,
/// check every 201, fsck.
async fn run(fault: &Fault, when: u32, totals: &mut Totals) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inject = fault.inject.replace("{when}", &when.to_string());
    let Some(traced) = Traced::spawn(&data, fault.trace, &inject, &data.join(fault.file)) else {
        // Failed at start-up: nothing acknowledged; it must restart clean.
        totals.at_startup += 1;
        return restart_and_check(fault, when, dir.path(), &data, &[], totals).await;
    };
    let answers = load(&traced.url, &format!("{}-{when}", fault.file), 200).await;
    let acked: Vec<_> = answers.iter().filter(|a| a.1 == 201).collect();
    let refused = answers.len() - acked.len();
    if fault.kills {
        let started = Instant::now();
        while traced.tracee().is_some() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            traced.tracee().is_none(),
            "{}: the server survived",
            fault.name
        );
        drop(traced);
    } else {
        // The fault hit (so the injection was aimed at the right file and
        // call): something was refused. Without it all 200 are 201s.
        assert!(
            refused > 0,
            "{} at call {when}: nothing was refused",
            fault.name
        );
        traced.stop("-TERM");
    }
    totals.refused += refused as u64;
    restart_and_check(fault, when, dir.path(), &data, &acked, totals).await;
}

/// Restarted without faults: every 201 is there with its receipt, the
/// server takes registrations, and fsck is clean.
async fn restart_and_check(
    fault: &Fault,
    when: u32,
    dir: &Path,
    data: &Path,
    acked: &[&Answer],
    totals: &mut Totals,
) {
    let srv = common::cluster::Server::spawn(
        data,
        &["--config", writer_config_file(dir).to_str().unwrap()],
        &[],
    );
    let mut lost = 0;
    for (st, _, id, receipt) in acked {
        let got = vcon_scitt_client::get(&srv.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        if got.status != 200 || &got.body != receipt {
            lost += 1;
            continue;
        }
        verify::verify(&verify::Request {
            statement: st.clone(),
            receipts: vec![got.body],
            service_keys: service_keys(),
            ..Default::default()
        })
        .expect("a 201 receipt verifies after the restart");
    }
    // ...and it takes registrations again.
    let after = load(&srv.url, "after", 8).await;
    assert!(
        after.iter().all(|a| a.1 == 201),
        "{}: not writable after restart",
        fault.name
    );
    srv.stop();
    let fsck = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["fsck", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{} at call {when}: fsck {}",
        fault.name,
        String::from_utf8_lossy(&fsck.stdout)
    );
    assert_eq!(
        lost, 0,
        "{} at call {when}: {lost} acknowledged entries lost",
        fault.name
    );
    totals.runs += 1;
    totals.acknowledged += acked.len() as u64;
    totals.lost += lost;
}

fn long_mode() -> bool {
    std::env::var_os("VCON_SCITT_FAULTS_LONG").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_201_without_durability_when_syscalls_below_rocksdb_fail() {
    let points: Vec<u32> = if long_mode() {
        (4..34).collect()
    } else {
        vec![9]
    };
    for fault in FAULTS {
        let mut totals = Totals::default();
        for &when in &points {
            run(fault, when, &mut totals).await;
        }
        println!(
            "{}: {} runs ({} failed at start-up), {} acknowledged, {} refused or cut off, {} acknowledged entries lost",
            fault.name,
            totals.runs,
            totals.at_startup,
            totals.acknowledged,
            totals.refused,
            totals.lost
        );
    }
}
