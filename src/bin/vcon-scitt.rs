//! vcon-scitt: the transparency service and its client commands. Thin: all
//! logic lives in the library (`vcon_scitt::cli`).

/// mimalloc instead of glibc malloc: the request path allocates small,
/// short-lived buffers on one thread and frees them on another (HTTP
/// worker → sequencer → worker), where glibc's arenas spent ≈7 % of server
/// CPU (BENCHMARKS.md, profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(vcon_scitt::cli::main(std::env::args_os()));
}
