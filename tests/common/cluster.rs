//! Real processes for the scale-out tests: moto (an S3 API server from
//! PyPI, installed by tests/interop/setup.sh) and `vcon-scitt serve`
//! binaries, each on an ephemeral loopback port, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where tests/interop/setup.sh put the third-party tools; a missing
/// install is a failure that says how to fix it, never a silent skip.
pub fn interop_dir() -> PathBuf {
    let dir = std::env::var_os("VCON_SCITT_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/vcon-scitt/interop")
        });
    assert!(
        dir.join("stamp").exists(),
        "the third-party tools are not installed in {}: run tests/interop/setup.sh (README command 2 does)",
        dir.display()
    );
    dir
}

/// A moto S3 server with one bucket, `log`, readable anonymously (as a
/// CDN or a static-file verifier would read it) and writable anonymously
/// (so a test can play a hostile bucket).
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub async fn start() -> Moto {
        let exe = interop_dir().join("venv/bin/moto_server");
        assert!(
            exe.exists(),
            "{} is missing: run tests/interop/setup.sh",
            exe.display()
        );
        let mut child = Command::new(exe)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(at) = line.find("http://127.0.0.1:") {
                    let url: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        });
        let endpoint = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moto_server printed no address within 30 s");
        let moto = Moto { child, endpoint };
        let r = moto
            .request(
                hyper::Method::PUT,
                "/log",
                "application/octet-stream",
                Vec::new(),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "create bucket: {}",
            String::from_utf8_lossy(&r.body)
        );
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::log/*"}]}"#;
        let r = moto
            .request(
                hyper::Method::PUT,
                "/log?policy",
                "application/json",
                policy.as_bytes().to_vec(),
            )
            .await;
        assert!(r.status < 300, "bucket policy: {}", r.status);
        moto
    }

    /// One request on its own connection (moto closes it after answering).
    async fn request(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> vcon_scitt_client::Reply {
        vcon_scitt_client::Conn::connect(&self.endpoint)
            .await
            .unwrap()
            .request(method, path, Some(content_type), body)
            .await
            .unwrap()
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) to moto: a hung store.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The names of the bucket's objects under `prefix` (anonymous
    /// ListObjectsV2).
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        loop {
            let mut path = format!("/log?list-type=2&prefix={prefix}");
            if let Some(last) = names.last() {
                path.push_str(&format!("&start-after={last}"));
            }
            let r = vcon_scitt_client::get(&self.endpoint, &path).await.unwrap();
            assert_eq!(r.status, 200);
            let xml = String::from_utf8_lossy(&r.body).into_owned();
            let before = names.len();
            names.extend(
                xml.split("<Key>")
                    .skip(1)
                    .filter_map(|k| k.split("</Key>").next())
                    .map(str::to_owned),
            );
            // A page holds at most 1,000 keys.
            if !xml.contains("<IsTruncated>true</IsTruncated>") || names.len() == before {
                return names;
            }
        }
    }

    /// The variables that point object_store at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// An object of bucket `log`, read anonymously; `None` if absent.
    pub async fn get(&self, name: &str) -> Option<Vec<u8>> {
        let r = vcon_scitt_client::get(&self.endpoint, &format!("/log/{name}"))
            .await
            .ok()?;
        (r.status == 200).then_some(r.body)
    }

    /// Overwrites an object (to play a hostile bucket).
    pub async fn put(&self, name: &str, body: Vec<u8>) {
        let r = self
            .request(
                hyper::Method::PUT,
                &format!("/log/{name}"),
                "application/octet-stream",
                body,
            )
            .await;
        assert_eq!(r.status, 200);
    }

    /// The size of the bucket's checkpoint note (0 if none yet).
    pub async fn checkpoint_size(&self) -> u64 {
        match self.get("checkpoint").await {
            Some(b) => String::from_utf8_lossy(&b)
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(0),
            None => 0,
        }
    }

    /// Waits (≤ 60 s) until the bucket's checkpoint covers `size`.
    pub async fn wait_for(&self, size: u64) {
        let started = Instant::now();
        while self.checkpoint_size().await < size {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the bucket's checkpoint did not reach size {size} in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `vcon-scitt serve` process, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `vcon-scitt serve` with `args` (after `--listen 127.0.0.1:0
    /// --data-dir <data>`) and `env`, and waits for its address.
    pub fn spawn(data: &Path, args: &[&str], env: &[(&'static str, String)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .env("VCON_SCITT_RATE_LIMIT", "0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            // VCON_SCITT_TEST_LOGS=1 shows the servers' logs (debugging).
            .stderr(if std::env::var_os("VCON_SCITT_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("vcon-scitt serve {args:?} exited before listening"))
            .unwrap();
        let url = first
            .split_once("listening on ")
            .unwrap_or_else(|| panic!("{first}"))
            .1
            .to_owned();
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// SIGTERM (a clean stop: the publisher's last round), then wait.
    /// Returns whether it exited cleanly (status 0).
    pub fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tree size of a server's CBOR checkpoint.
pub async fn tree_size(url: &str) -> u64 {
    let cp = vcon_scitt_client::get(url, "/checkpoint").await.unwrap();
    vcon_scitt::head_document::HeadDocument::decode(&cp.body)
        .unwrap()
        .head
        .head
        .size
}

/// `vcon-scitt <args>` with the moto environment: (exit code, output).
pub fn cli(moto: &Moto, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(args)
        .envs(moto.env())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One etcd node (Debian `etcd-server`) on two free loopback ports, its
/// data in a temp dir; `kill` and `restart` keep both.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    pub async fn start() -> Etcd {
        assert!(
            Path::new("/usr/bin/etcd").exists(),
            "etcd is missing: apt-get install etcd-server (tests/interop/setup.sh does)"
        );
        // Fixed ports picked now: with :0 etcd's gateway dials port 0.
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client_port, peer_port) = (free(), free());
        let mut e = Etcd {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            client_port,
            peer_port,
        };
        e.restart().await;
        e
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts on the same ports and data; waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("/usr/bin/etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while !self.etcdctl(&["endpoint", "health"]).0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not become healthy in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `etcdctl <args>` against this node: (success, stdout).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Registers `n` generic statements over 4 connections; (status, entry id
/// from Location, body) of every answer.
pub async fn post_many(url: &str, tag: &str, n: usize) -> Vec<(u16, String, Vec<u8>)> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (url, tag) = (url.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
            let mut out = Vec::new();
            for i in (w..n).step_by(4) {
                let st = super::generic_statement(&format!("urn:example:{tag}:{i}"), b"{}");
                let r = c.post_statement(st).await.unwrap();
                let id = r
                    .header("location")
                    .map(|l| l.trim_start_matches("/entries/").to_owned())
                    .unwrap_or_default();
                out.push((r.status, id, r.body));
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

/// Waits (bounded) until `GET /entries/{id}` answers 200.
pub async fn wait_for_receipt(url: &str, id: &str, within: Duration, why: &str) {
    let started = Instant::now();
    while vcon_scitt_client::get(url, &format!("/entries/{id}"))
        .await
        .unwrap()
        .status
        != 200
    {
        assert!(
            started.elapsed() < within,
            "{id}: no receipt within {within:?} ({why})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A writer's arguments that survive its restarts: the config (keys),
/// publishing to the moto bucket `log`, and its public URL (the
/// checkpoint's origin; the port changes).
pub fn stable_writer(cfg: &Path) -> Vec<String> {
    [
        "--config",
        cfg.to_str().unwrap(),
        "--publish-to",
        "s3://log",
        "--service-url",
        "http://writer.test",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A TCP link on a free loopback port to `target` that a test can cut and
/// heal: a network partition between one process and one server (the
/// others reach it directly). Cut, connections stay open and bytes wait on
/// either side, as on a network that delivers nothing; healed, they flow
/// again (late, as TCP retransmits them).
pub struct Link {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    pub async fn to(target: u16) -> Link {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_cut = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(ri) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(wo) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(ro), Box::new(wi)),
                ] {
                    let is_cut = is_cut.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while is_cut.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Link { port, cut, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}
