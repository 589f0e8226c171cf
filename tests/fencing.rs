//! The single-writer lease in etcd, with real parts: etcd 3.4 (Debian
//! `etcd-server`), moto, and `vcon-scitt serve` processes on loopback,
//! each fenced writer in `replicated` durability with a 2 s lease.
//!
//! - A second writer is refused while the first holds the lease, and etcd's
//!   checkpoint is the bucket's.
//! - A writer whose lease is revoked stops acknowledging; a new writer on
//!   an empty data dir takes the lease, catches up from the bucket and
//!   continues the same log (replacing what the deposed one left beyond the
//!   checkpoint); the old one, still running, acknowledges nothing more.
//! - etcd killed: no 201 while the lease cannot be renewed; etcd back: the
//!   same writer resumes, and the registrations held back get receipts.
//! - The writer cut off from etcd (a partition; the standby still reaches
//!   it): no 201 from it once the standby has taken over, nothing lost,
//!   and once healed it stays fenced.
//! - Writers killed under load, again and again (the bucket hung at each
//!   kill): the standby takes over, the dead writer rewinds and rejoins.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::cluster::{Etcd, Link, Moto, Server, cli, stable_writer, tree_size, wait_for_receipt};
use common::*;
use vcon_scitt::verify;

fn fenced_writer(moto: &Moto, etcd: &Etcd, data: &Path, cfg: &Path) -> Server {
    Server::spawn(
        data,
        &fenced_args(etcd, cfg)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &moto.env(),
    )
}

fn fenced_args(etcd: &Etcd, cfg: &Path) -> Vec<String> {
    fenced_args_via(&etcd.endpoint(), cfg)
}

/// [`fenced_args`] reaching etcd at `endpoint` (a [`Link`] to it).
fn fenced_args_via(endpoint: &str, cfg: &Path) -> Vec<String> {
    let mut args = stable_writer(cfg);
    args.extend(
        [
            "--durability",
            "replicated",
            "--wait-ms",
            "1500",
            "--etcd",
            endpoint,
            "--lease-ttl",
            "2",
        ]
        .map(str::to_owned),
    );
    args
}

/// One registration: (status, entry id, body).
async fn post(url: &str, subject: &str) -> (u16, String, Vec<u8>) {
    try_post(url, subject)
        .await
        .unwrap_or_else(|| panic!("{url} refused the connection"))
}

/// [`post`], `None` while nothing listens (a standby between serving as a
/// replica and as the writer).
async fn try_post(url: &str, subject: &str) -> Option<(u16, String, Vec<u8>)> {
    let st = generic_statement(subject, b"{}");
    let r = vcon_scitt_client::Conn::connect(url)
        .await
        .ok()?
        .post_statement(st)
        .await
        .ok()?;
    let id = r
        .header("location")
        .map(|l| l.trim_start_matches("/entries/").to_owned())
        .unwrap_or_default();
    Some((r.status, id, r.body))
}

/// etcd's checkpoint record: (size, root hex).
fn etcd_checkpoint(etcd: &Etcd) -> Option<(u64, String)> {
    let (ok, out) = etcd.etcdctl(&[
        "get",
        "/vcon-scitt/writer.test/log/checkpoint",
        "--print-value-only",
    ]);
    assert!(ok);
    let line = out.lines().next()?.to_owned();
    let (size, root) = line.split_once(' ')?;
    Some((size.parse().ok()?, root.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_while_the_first_holds_the_lease() {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    for i in 0..20 {
        assert_eq!(post(&a.url, &format!("urn:example:a:{i}")).await.0, 201);
    }
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
    ];
    args.push(dir.path().join("b").to_str().unwrap().to_owned());
    args.extend(fenced_args(&etcd, &cfg));
    let (code, out) = cli(&moto, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("held by"), "{out}");
    assert_eq!(post(&a.url, "urn:example:a:after").await.0, 201);
    // Every 201 waited for the bucket's checkpoint, which etcd's leads.
    let size = tree_size(&a.url).await;
    let (fenced_size, _) = etcd_checkpoint(&etcd).expect("etcd records the checkpoint");
    assert_eq!(fenced_size, size);
    assert_eq!(moto.checkpoint_size().await, size);
    a.stop();
    // A clean stop gives the lease back at once.
    let (_, leader) = etcd.etcdctl(&["get", "/vcon-scitt/writer.test/log/leader"]);
    assert!(leader.trim().is_empty(), "{leader}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_loses_its_lease_stops_and_a_restored_one_continues_the_log() {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    let mut acked = Vec::new();
    for i in 0..30 {
        let (status, id, receipt) = post(&a.url, &format!("urn:example:a:{i}")).await;
        assert_eq!(status, 201);
        acked.push((id, receipt));
    }
    let size_a = tree_size(&a.url).await;

    // The lease is revoked (an operator, or etcd deciding it expired).
    let (ok, leases) = etcd.etcdctl(&["lease", "list"]);
    assert!(ok);
    for id in leases
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(etcd.etcdctl(&["lease", "revoke", id]).0);
    }
    let started = Instant::now();
    loop {
        let (status, _, _) = post(&a.url, "urn:example:a:probe").await;
        if status != 201 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still acknowledging 5 s after its lease was revoked"
        );
    }
    for i in 0..10 {
        let (status, _, _) = post(&a.url, &format!("urn:example:a:fenced:{i}")).await;
        assert_ne!(status, 201, "a writer without its lease acknowledged");
    }
    let health = vcon_scitt_client::get(&a.url, "/healthz").await.unwrap();
    assert_eq!(health.status, 503);

    // A new writer on an empty data dir, same keys and URL: it takes the
    // lease, catches up from the bucket to etcd's checkpoint, continues.
    let b = fenced_writer(&moto, &etcd, &dir.path().join("b"), &cfg);
    for (id, receipt) in &acked {
        let got = vcon_scitt_client::get(&b.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(&got.body, receipt, "every 201 of the old writer, unchanged");
    }
    let (status, id, receipt) = post(&b.url, "urn:example:b:0").await;
    assert_eq!(status, 201);
    let st = vcon_scitt_client::get(&b.url, &format!("/signed-statements/{id}"))
        .await
        .unwrap();
    verify::verify(&verify::Request {
        statement: st.body,
        receipts: vec![receipt],
        service_keys: service_keys(),
        ..Default::default()
    })
    .unwrap();
    let c = vcon_scitt_client::get(&b.url, &format!("/consistency?from={size_a}"))
        .await
        .unwrap();
    assert_eq!(c.status, 200, "the new writer extends the old one's log");
    // The old writer, still running, stays fenced.
    assert_ne!(post(&a.url, "urn:example:a:late").await.0, 201);
    let (fenced_size, _) = etcd_checkpoint(&etcd).unwrap();
    assert_eq!(fenced_size, tree_size(&b.url).await);
    a.stop();
    b.stop();
    let (code, out) = cli(&moto, &["fsck", "--bucket", "s3://log"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_201_while_etcd_is_down_and_the_same_writer_resumes_when_it_is_back() {
    let (moto, mut etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    for i in 0..10 {
        assert_eq!(post(&a.url, &format!("urn:example:up:{i}")).await.0, 201);
    }
    etcd.kill();
    // Past the lease's local deadline (2 s less a third).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut held = Vec::new();
    for i in 0..4 {
        let (status, id, _) = post(&a.url, &format!("urn:example:down:{i}")).await;
        assert_ne!(status, 201, "acknowledged while etcd was down");
        held.push(id);
    }
    etcd.restart().await;
    for id in held.iter().filter(|id| !id.is_empty()) {
        // (a 503 names no entry)
        wait_for_receipt(&a.url, id, Duration::from_secs(30), "etcd is back").await;
    }
    let started = Instant::now();
    while post(&a.url, "urn:example:back").await.0 != 201 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer did not resume once etcd was back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop();
}

/// Every head a store holds: size → root.
fn heads_of(db: &Path) -> std::collections::BTreeMap<u64, [u8; 32]> {
    let store = vcon_scitt::log::Store::open(db).unwrap();
    store
        .heads()
        .unwrap()
        .map(|h| {
            let h = h.unwrap();
            (h.head.size, h.head.root)
        })
        .collect()
}

/// The heads the bucket publishes above `from`: size → root (every round's
/// heads object whose round ends above `from`).
async fn bucket_heads(moto: &Moto, from: u64) -> std::collections::BTreeMap<u64, [u8; 32]> {
    let mut heads = std::collections::BTreeMap::new();
    for name in moto.list("vcon-scitt/heads/").await {
        let end: u64 = name.rsplit('/').next().unwrap().parse().unwrap();
        if end <= from {
            continue;
        }
        let batch =
            vcon_scitt::head_document::HeadBatch::decode(&moto.get(&name).await.unwrap()).unwrap();
        for h in batch.heads {
            if let Some(other) = heads.insert(h.head.size, h.head.root) {
                assert_eq!(
                    other, h.head.root,
                    "two heads of size {} in the bucket ({name})",
                    h.head.size
                );
            }
        }
    }
    heads
}

/// A `serve --standby` process with the fenced writer's arguments.
fn standby(moto: &Moto, etcd: &Etcd, data: &Path, cfg: &Path) -> Server {
    let mut args = fenced_args(etcd, cfg);
    args.push("--standby".into());
    Server::spawn(
        data,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &moto.env(),
    )
}

/// A registration's 201: when it arrived, the entry id, the receipt.
type Acked = (Instant, String, Vec<u8>);
/// One loading client: its 201s when it ends.
type Client = tokio::task::JoinHandle<Vec<Acked>>;

/// Loads `url` from 4 clients, each until `stop` is set or its connection
/// fails; returns their 201s.
fn load(url: &str, tag: &str, stop: &Arc<AtomicBool>) -> Vec<Client> {
    (0..4)
        .map(|w| {
            let (url, tag, stop) = (url.to_owned(), tag.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let Ok(mut c) = vcon_scitt_client::Conn::connect(&url).await else {
                    return acked;
                };
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let st = generic_statement(&format!("urn:example:{tag}:{w}:{i}"), b"{}");
                    match c.post_statement(st).await {
                        Ok(r) if r.status == 201 => {
                            let id = r
                                .header("location")
                                .unwrap()
                                .trim_start_matches("/entries/")
                                .to_owned();
                            acked.push((Instant::now(), id, r.body));
                        }
                        Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// What [`failovers`] measured.
struct Failovers {
    kills: usize,
    acknowledged: usize,
    takeovers: Vec<Duration>,
    rewound_entries: u64,
}

/// Two nodes, a fenced writer and a standby, swap roles `kills` times:
/// the writer is loaded from 4 clients, the bucket hung for a moment (so
/// the writer signs batches no round can publish), and the writer
/// SIGKILLed. Each time: the standby takes over; the dead writer,
/// restarted, is refused (the lease is the other's) and rewinds its store
/// to what it published, which the bucket holds head for head; restarted
/// as a standby it follows the new writer, and is the next to take over.
/// At the end every 201 of every term is present with its byte-identical
/// receipt, etcd, the bucket and the writer agree, `fsck --bucket` is
/// clean, no heads object lies beyond the checkpoint, and both stores hold
/// one root per size.
async fn failovers(kills: usize) -> Failovers {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    // Object-storage requests end within 3 s (12 s with retries): a new
    // writer sweeps the heads objects a deposed one's late requests left
    // 12 s + the lease TTL after it took over.
    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str("[publish]\nrequest_timeout_ms = 3000\n");
    std::fs::write(&cfg, toml).unwrap();
    let mut dirs = [dir.path().join("a"), dir.path().join("b")];
    let mut late = Vec::new();
    let mut writer = fenced_writer(&moto, &etcd, &dirs[0], &cfg);
    let mut next = standby(&moto, &etcd, &dirs[1], &cfg);
    // The standby is a read replica meanwhile: registrations go elsewhere.
    assert_eq!(post(&next.url, "urn:example:too-early").await.0, 421);
    let mut acked: Vec<(String, Vec<u8>)> = Vec::new();
    let never = Arc::new(AtomicBool::new(false));
    let mut report = Failovers {
        kills,
        acknowledged: 0,
        takeovers: Vec::new(),
        rewound_entries: 0,
    };
    let mut checked = 0u64;
    for round in 0..kills {
        let clients = load(&writer.url, &format!("load:{round}"), &never);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // The bucket hangs: batches go on being signed, no round completes.
        moto.signal("-STOP");
        // One more registration: sequenced and signed at once, published
        // never (the clients may all be waiting on a round whose
        // checkpoint note hangs, with nothing past it signed).
        let extra = {
            let url = writer.url.clone();
            tokio::spawn(async move { try_post(&url, &format!("urn:example:hung:{round}")).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(writer); // SIGKILL under load
        moto.signal("-CONT");
        assert!(
            !matches!(extra.await.unwrap(), Some((201, _, _))),
            "round {round}: a 201 while the bucket hung"
        );
        let before = acked.len();
        for t in clients {
            acked.extend(t.await.unwrap().into_iter().map(|(_, id, r)| (id, r)));
        }
        assert!(
            acked.len() > before,
            "round {round}: the writer acknowledged nothing before the kill"
        );

        // The standby takes the lease once the dead writer's expires (2 s),
        // catches up and answers registrations as the writer, same address.
        let started = Instant::now();
        loop {
            let answer = try_post(&next.url, &format!("urn:example:after:{round}")).await;
            if let Some((201, id, receipt)) = answer {
                acked.push((id, receipt));
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: the standby did not take over in 30 s (last answer {:?})",
                answer.map(|a| a.0)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        report.takeovers.push(started.elapsed());
        writer = next;
        dirs.swap(0, 1);

        // The dead writer signed heads no round published.
        let dead = &dirs[1];
        let published = bucket_heads(&moto, checked).await;
        let forked: Vec<(u64, [u8; 32])> = heads_of(&dead.join("db"))
            .into_iter()
            .filter(|(s, r)| *s > checked && published.get(s) != Some(r))
            .collect();
        assert!(
            !forked.is_empty(),
            "round {round}: the dead writer holds no unpublished head (the hung bucket should have left some)"
        );
        // One of them lands in the bucket after the takeover, as a heads
        // object the dead writer's last request carried would.
        let (size, _) = forked[forked.len() / 2];
        let head = vcon_scitt::log::Store::open(&dead.join("db"))
            .unwrap()
            .head(size)
            .unwrap()
            .unwrap();
        let name = format!("vcon-scitt/heads/{size}");
        if moto.get(&name).await.is_none() {
            let batch = vcon_scitt::head_document::HeadBatch {
                previous_size: size - 1,
                heads: vec![head],
            };
            moto.put(&name, batch.encode()).await;
            late.push((name, batch.encode()));
        }
        // Restarted, it is fenced: the lease is the other's. It rewinds.
        let mut args: Vec<String> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
            .map(str::to_owned)
            .to_vec();
        args.push(dead.to_str().unwrap().to_owned());
        args.extend(fenced_args(&etcd, &cfg));
        let (code, out) = cli(&moto, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("held by"), "{out}");
        assert!(out.contains("it was rewound to size"), "{out}");
        report.rewound_entries += out
            .split(" entries above the published log")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        // Now every head on its disk is the bucket's, at the same size.
        let published = bucket_heads(&moto, checked).await;
        let rest = heads_of(&dead.join("db"));
        for (size, root) in rest.range(checked + 1..) {
            assert_eq!(
                published.get(size),
                Some(root),
                "round {round}: the rewound store keeps a head at size {size} the bucket does not publish"
            );
        }
        checked = rest
            .keys()
            .next_back()
            .copied()
            .unwrap_or(checked)
            .max(checked);

        // It rejoins as a standby, following the new writer.
        next = standby(&moto, &etcd, dead, &cfg);
        let target = tree_size(&writer.url).await;
        let started = Instant::now();
        while tree_size(&next.url).await < target {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "round {round}: the rejoined standby did not follow the writer to size {target}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The late heads objects are swept (four request timeouts + TTL after
    // each takeover), or replaced by the writer's own round of that size.
    assert!(!late.is_empty(), "no late heads object was planted");
    let started = Instant::now();
    for (name, forged) in &late {
        while moto.get(name).await.as_ref() == Some(forged) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name}, a deposed writer's late heads object, is still in the bucket"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for i in 0..10 {
        let (status, id, receipt) = post(&writer.url, &format!("urn:example:last:{i}")).await;
        assert_eq!(status, 201);
        acked.push((id, receipt));
    }
    // Every 201, of every term, with its receipt.
    for (id, receipt) in &acked {
        let got = vcon_scitt_client::get(&writer.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(got.status, 200, "acknowledged entry {id} lost");
        assert_eq!(&got.body, receipt);
    }
    report.acknowledged = acked.len();
    let size = tree_size(&writer.url).await;
    assert_eq!(etcd_checkpoint(&etcd).unwrap().0, size);
    assert_eq!(moto.checkpoint_size().await, size);
    next.stop();
    writer.stop();

    // No two heads of one size in the bucket: fsck rebuilds it along one
    // chain of signed heads, no heads object lies beyond that chain, and
    // every heads object agrees with every other.
    let (code, out) = cli(&moto, &["fsck", "--bucket", "s3://log"]);
    assert_eq!(code, 0, "{out}");
    let published = bucket_heads(&moto, 0).await;
    let listed = moto.list("vcon-scitt/heads/").await;
    assert!(
        listed
            .iter()
            .all(|n| n.rsplit('/').next().unwrap().parse::<u64>().unwrap() <= size),
        "a heads object beyond the checkpoint: {listed:?}"
    );
    // Nor on either node: every head either store holds is the bucket's.
    for dir in &dirs {
        for (size, root) in heads_of(&dir.join("db")).range(1..) {
            assert_eq!(
                published.get(size),
                Some(root),
                "{}: a head at size {size} the bucket does not publish",
                dir.display()
            );
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_killed_under_load_are_replaced_by_their_standby_and_rejoin_rewound() {
    // Long mode (SECURITY.md): VCON_SCITT_FAILOVER_KILLS=20.
    let kills = std::env::var("VCON_SCITT_FAILOVER_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(2)
        .max(1);
    let r = failovers(kills).await;
    let mut t = r.takeovers.clone();
    t.sort();
    println!(
        "failovers: {} kills survived; {} acknowledged, 0 lost; {} unacknowledged entries rewound; takeover min {:?} median {:?} max {:?}",
        r.kills,
        r.acknowledged,
        r.rewound_entries,
        t[0],
        t[t.len() / 2],
        t[t.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cut_off_from_etcd_acknowledges_nothing_once_the_standby_has_taken_over() {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let link = Link::to(etcd.client_port()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    // A runs as a standby node: the lease is free, so it is the writer at
    // once; fenced, it rejoins as the standby.
    let mut a_args = fenced_args_via(&link.endpoint(), &cfg);
    a_args.push("--standby".into());
    let a = Server::spawn(
        &dir.path().join("a"),
        &a_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &moto.env(),
    );
    let b = standby(&moto, &etcd, &dir.path().join("b"), &cfg);

    // Load on A, each 201 stamped with when it arrived.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&a.url, "cut", &stop);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    link.cut();

    // B reaches etcd: once A's lease expires it takes over.
    let started = Instant::now();
    let (b_first, mut acked) = loop {
        if let Some((201, id, receipt)) = try_post(&b.url, "urn:example:b:first").await {
            break (Instant::now(), vec![(id, receipt)]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby did not take over in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let takeover = started.elapsed();
    // A's clients go on for 2 s more, against a writer that cannot reach
    // etcd; then the partition heals and they go on for 2 s more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    link.heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut from_a = Vec::new();
    for c in clients {
        from_a.extend(c.await.unwrap());
    }
    assert!(!from_a.is_empty(), "A acknowledged nothing before the cut");
    // The split-brain property: no 201 from A after B's first.
    let late: Vec<_> = from_a.iter().filter(|(t, _, _)| *t > b_first).collect();
    assert!(
        late.is_empty(),
        "{} 201s from the cut-off writer after the standby took over",
        late.len()
    );
    // Healed, A is fenced (its lease gone, its token outdated): it stops as
    // the writer and rejoins as the standby on the same address, a replica
    // of B's log that sends registrations to the writer (421).
    let started = Instant::now();
    loop {
        let status = try_post(&a.url, "urn:example:a:healed").await.map(|r| r.0);
        assert_ne!(
            status,
            Some(201),
            "the fenced writer acknowledged after the heal"
        );
        if status == Some(421) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fenced writer did not rejoin as the standby (last answer {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..10 {
        let (status, id, receipt) = post(&b.url, &format!("urn:example:b:{i}")).await;
        assert_eq!(status, 201);
        acked.push((id, receipt));
    }
    // It follows B: its heads above the published log were rewound.
    let size = tree_size(&b.url).await;
    let started = Instant::now();
    while tree_size(&a.url).await < size {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the rejoined standby did not follow the writer to size {size}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acked.extend(from_a.into_iter().map(|(_, id, r)| (id, r)));
    for (id, receipt) in &acked {
        let got = vcon_scitt_client::get(&b.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(got.status, 200, "acknowledged entry {id} lost");
        assert_eq!(&got.body, receipt);
    }
    assert_eq!(etcd_checkpoint(&etcd).unwrap().0, size);
    assert!(a.stop(), "the demoted node did not stop cleanly on SIGTERM");
    b.stop();
    let published = bucket_heads(&moto, 0).await;
    for (size, root) in heads_of(&dir.path().join("a").join("db")).range(1..) {
        assert_eq!(
            published.get(size),
            Some(root),
            "the demoted writer keeps a head at size {size} the bucket does not publish"
        );
    }
    let (code, out) = cli(&moto, &["fsck", "--bucket", "s3://log"]);
    assert_eq!(code, 0, "{out}");
    // Every heads object agrees with every other (bucket_heads checks).
    let heads = bucket_heads(&moto, 0).await;
    let checkpoint = moto.checkpoint_size().await;
    assert!(
        heads.keys().all(|s| *s <= checkpoint),
        "a head beyond the checkpoint {checkpoint} in the bucket"
    );
    println!(
        "partition: takeover {takeover:?} after the cut; {} acknowledged, all present; none from the cut-off writer after it",
        acked.len()
    );
}
