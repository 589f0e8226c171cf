//! vcon-verify: offline verification of vcon-scitt registrations. Links no
//! RocksDB, tokio or hyper: it depends on vcon-scitt-core alone.

fn main() {
    std::process::exit(vcon_verify::main(std::env::args_os()));
}
