//! The architecture, checked: which crate may link what, and that the
//! modules of the server library and of the core crate form no import cycle
//! (each module uses only modules "above" it, as `src/lib.rs` lists them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The packages `package` links (normal dependencies, transitively).
fn dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "--offline"])
        .current_dir(manifest_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_client_crate_links_no_storage_engine() {
    let deps = dependencies("vcon-scitt-client");
    assert!(deps.contains("vcon-scitt-core"), "{deps:?}");
    for banned in ["rocksdb", "librocksdb-sys", "vcon-scitt"] {
        assert!(!deps.contains(banned), "vcon-scitt-client links {banned}");
    }
}

#[test]
fn the_verifier_links_no_rocksdb_tokio_or_hyper() {
    let deps = dependencies("vcon-verify");
    assert!(deps.contains("vcon-scitt-core"), "{deps:?}");
    for banned in ["rocksdb", "librocksdb-sys", "tokio", "hyper"] {
        assert!(!deps.contains(banned), "vcon-verify depends on {banned}");
    }
}

#[test]
fn the_core_crate_links_no_storage_runtime_network_or_cli() {
    let deps = dependencies("vcon-scitt-core");
    for banned in ["rocksdb", "librocksdb-sys", "tokio", "hyper", "clap"] {
        assert!(!deps.contains(banned), "vcon-scitt-core links {banned}");
    }
}

/// Top-level module of a source file: `src/log/store.rs` → `log`.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// module → the crate's other top-level modules it names as `crate::m`.
fn import_graph(root: &Path, skip: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(root, f))
        .filter(|m| !skip.contains(&m.as_str()) && m != "lib" && m != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = module_of(root, f);
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        // Test modules may reach anywhere.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let edges = graph.entry(from.clone()).or_default();
        for to in &modules {
            if *to != from && text.contains(&format!("crate::{to}::")) {
                edges.insert(to.clone());
            }
            if *to != from && text.contains(&format!("crate::{{{to}")) {
                edges.insert(to.clone());
            }
        }
    }
    graph
}

/// A cycle in the graph, if there is one (depth-first search).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, m, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(graph, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
}

#[test]
fn the_server_library_has_no_import_cycle_and_no_cli_or_client() {
    let root = manifest_dir().join("src");
    let graph = import_graph(&root, &["bin"]);
    assert!(
        graph.contains_key("log") && graph.contains_key("service"),
        "{graph:?}"
    );
    assert_eq!(find_cycle(&graph), None, "import cycle in src/: {graph:#?}");
    for not_server in ["cli", "client", "audit", "bench"] {
        assert!(
            !graph.contains_key(not_server),
            "src/{not_server} is not server code"
        );
    }
    // The storage layer knows nothing of HTTP, the service, vCons or receipts.
    let log = &graph["log"];
    for above in ["http", "service", "vcon_index", "metrics"] {
        assert!(!log.contains(above), "log uses {above}");
    }
    let mut files = Vec::new();
    rust_files(&root.join("log"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for format in ["crate::receipt", "crate::vcon", "crate::statement"] {
            assert!(!text.contains(format), "{} uses {format}", f.display());
        }
    }
}

#[test]
fn the_core_crate_has_no_import_cycle() {
    let root = manifest_dir().join("core/src");
    let graph = import_graph(&root, &[]);
    assert!(
        graph.contains_key("merkle") && graph.contains_key("vcon"),
        "{graph:?}"
    );
    assert_eq!(
        find_cycle(&graph),
        None,
        "import cycle in core/src/: {graph:#?}"
    );
}
