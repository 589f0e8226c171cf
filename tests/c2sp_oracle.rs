//! An independent C2SP implementation reads our log (issue 15's first bar,
//! over HTTP for now; the bucket comes with publishing): Cloudflare's
//! `signed_note` verifies our checkpoint note under the verifier key we
//! publish and `tlog_tiles` (ports of Go's sumdb `note` and `tlog`,
//! BSD-3-Clause, dev-dependencies) parses it, authenticates every hash tile
//! it loads against the note's root and rebuilds that root from them, each entry of each
//! `tile/entries` bundle hashes (its `record_hash`) to the authenticated
//! level-0 hash, and its record proofs check. Nothing of ours is used to
//! read the tiles: only the paths (C2SP's, not sumdb's `Tile::path`).

mod common;

use ciborium::value::Value;
use common::*;
use tlog_tiles::{
    HashReader, Tile, TileHashReader, TileReader, check_record, prove_record, record_hash,
    stored_hash_index, tree_hash,
};
use vcon_scitt::http::start;

/// C2SP `<N>`: three-digit groups, all but the last prefixed `x`.
fn c2sp_index(mut n: u64) -> String {
    let mut s = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        s = format!("x{:03}/{s}", n % 1000);
    }
    s
}

fn c2sp_path(kind: &str, index: u64, width: u64) -> String {
    let n = c2sp_index(index);
    if width == 256 {
        format!("/tile/{kind}/{n}")
    } else {
        format!("/tile/{kind}/{n}.p/{width}")
    }
}

/// Reads C2SP tiles over HTTP, from a running server (`prefix` empty) or
/// from the bucket (`/log`), blocking inside the test's multi-threaded
/// runtime.
struct HttpTiles {
    url: String,
    prefix: String,
}

impl HttpTiles {
    fn get(&self, path: &str) -> Option<Vec<u8>> {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let path = format!("{}{path}", self.prefix);
                let r = vcon_scitt_client::get(&self.url, &path).await.ok()?;
                (r.status == 200).then_some(r.body)
            })
        })
    }
}

impl TileReader for HttpTiles {
    fn height(&self) -> u8 {
        8
    }

    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let kind = t.level().to_string();
                self.get(&c2sp_path(&kind, t.level_index(), u64::from(t.width())))
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }

    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

/// Splits a C2SP entry bundle by hand (u16 big-endian length, bytes).
fn split_bundle(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        out.push(b[2..2 + n].to_vec());
        b = &b[2 + n..];
    }
    assert!(b.is_empty(), "trailing bytes in a bundle");
    out
}

/// Registers `n` statements, each answered 201.
async fn register(url: &str, tag: &str, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, subject) = (url.to_owned(), format!("urn:example:{tag}{i}"));
            tokio::spawn(async move {
                let r = vcon_scitt_client::Conn::connect(&url)
                    .await
                    .unwrap()
                    .post_statement(generic_statement(&subject, b"{}"))
                    .await
                    .unwrap();
                assert_eq!(r.status, 201);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2sp_tools_verify_our_checkpoint_note_and_rebuild_its_root_from_our_tiles_and_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    // More than one full tile and bundle.
    register(&url, "c2sp", 300).await;
    let (vkey, origin) = published_key(&url).await;
    let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
    c.headers
        .push((hyper::header::ACCEPT, "text/plain".to_owned()));
    let r = c.get("/checkpoint").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let tiles = HttpTiles {
        url: url.clone(),
        prefix: String::new(),
    };
    let size = check_log(&r.body, &vkey, &origin, &tiles);
    assert!(size > 256, "{size}");
    // The note states the head the CBOR checkpoint carries.
    let cp = vcon_scitt_client::get(&url, "/checkpoint").await.unwrap();
    let doc = vcon_scitt::head_document::HeadDocument::decode(&cp.body).unwrap();
    assert_eq!(doc.head.head.size, size);
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        text.lines().nth(2),
        Some(
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                doc.head.head.root
            )
            .as_str()
        )
    );
    srv.stop().await;
}

/// The checkpoint key and origin the service publishes.
async fn published_key(url: &str) -> (String, String) {
    let conf = vcon_scitt_client::get(url, "/.well-known/transparency-configuration")
        .await
        .unwrap();
    let Value::Map(conf) = vcon_scitt::cbor::decode(&conf.body).unwrap() else {
        panic!("configuration is not a map")
    };
    let text = |k: &str| {
        conf.iter()
            .find(|(n, _)| n.as_text() == Some(k))
            .and_then(|(_, v)| v.as_text())
            .unwrap()
            .to_owned()
    };
    (text("checkpoint_vkey"), text("checkpoint_origin"))
}

/// Everything the independent implementation checks of one log, through
/// `tiles` alone: the note under `vkey`, the root rebuilt from the tiles,
/// every bundle entry against its authenticated leaf, record proofs, and
/// a flipped tile byte refused. Returns the checkpoint's size.
fn check_log(note_bytes: &[u8], vkey: &str, origin: &str, tiles: &HttpTiles) -> u64 {
    let verifier = signed_note::StandardVerifier::new(vkey).unwrap();
    let known = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let note = signed_note::Note::from_bytes(note_bytes).unwrap();
    note.verify(&known)
        .expect("our note verifies under our vkey");
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(checkpoint.origin(), origin);
    let (size, root) = (checkpoint.size(), *checkpoint.hash());
    // The same note with another size does not verify.
    let forged = String::from_utf8(note_bytes.to_vec()).unwrap().replacen(
        &format!("\n{size}\n"),
        &format!("\n{}\n", size + 1),
        1,
    );
    let forged = signed_note::Note::from_bytes(forged.as_bytes()).unwrap();
    assert!(forged.verify(&known).is_err());

    let reader = TileHashReader::new(size, root, tiles);
    assert_eq!(
        tree_hash(size, &reader).unwrap(),
        root,
        "the root rebuilt from our tiles"
    );

    // Every entry of every bundle is the authenticated leaf.
    let mut checked = 0u64;
    for bundle in 0..size.div_ceil(256) {
        let width = (size - bundle * 256).min(256);
        let body = tiles.get(&c2sp_path("entries", bundle, width)).unwrap();
        let entries = split_bundle(&body);
        assert_eq!(entries.len() as u64, width);
        let indexes: Vec<u64> = (0..width)
            .map(|i| stored_hash_index(0, bundle * 256 + i))
            .collect();
        let leaves = reader.read_hashes(&indexes).unwrap();
        for (i, (e, leaf)) in entries.iter().zip(&leaves).enumerate() {
            assert_eq!(record_hash(e), *leaf, "entry {}", bundle * 256 + i as u64);
            checked += 1;
        }
    }
    assert_eq!(checked, size);
    for n in [0, 255, 256, size - 1] {
        let proof = prove_record(size, n, &reader).unwrap();
        let leaf = reader.read_hashes(&[stored_hash_index(0, n)]).unwrap()[0];
        check_record(&proof, size, root, n, leaf).unwrap();
    }

    // A flipped byte in a served tile is caught (the reader is not lenient).
    struct Flipped<'a>(&'a HttpTiles);
    impl TileReader for Flipped<'_> {
        fn height(&self) -> u8 {
            8
        }
        fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
            let mut out = self.0.read_tiles(tiles)?;
            if let Some(t) = out.first_mut() {
                t[5] ^= 1;
            }
            Ok(out)
        }
        fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
    }
    let flipped = Flipped(tiles);
    assert!(tree_hash(size, &TileHashReader::new(size, root, &flipped)).is_err());
    size
}

/// The first bar of issue 15 as written: the same independent checks, with
/// every byte read from the bucket a writer published to (moto, anonymous
/// reads as a CDN would make them), not from the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2sp_tools_verify_the_log_as_published_in_the_bucket() {
    use common::cluster::{Moto, Server};
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let writer = Server::spawn(
        &dir.path().join("writer"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--publish-to",
            "s3://log",
        ],
        &moto.env(),
    );
    let url = writer.url.clone();
    register(&url, "bucket", 300).await;
    let size = vcon_scitt::head_document::HeadDocument::decode(
        &vcon_scitt_client::get(&url, "/checkpoint")
            .await
            .unwrap()
            .body,
    )
    .unwrap()
    .head
    .head
    .size;
    moto.wait_for(size).await;
    let (vkey, origin) = published_key(&url).await;
    writer.stop();
    let note = moto.get("checkpoint").await.unwrap();
    let tiles = HttpTiles {
        url: moto.endpoint.clone(),
        prefix: "/log".into(),
    };
    assert_eq!(check_log(&note, &vkey, &origin, &tiles), size);
}
