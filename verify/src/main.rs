//! vcon-verify: offline verification of vcon-scitt registrations. Links no
//! RocksDB, tokio or hyper (it depends on the library without `server`).

fn main() {
    std::process::exit(vcon_scitt_core::verify_cli::main(std::env::args_os()));
}
