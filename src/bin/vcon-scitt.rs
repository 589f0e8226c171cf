//! vcon-scitt: the transparency service and its client commands. Thin: all
//! logic lives in the library (`vcon_scitt::cli`).

fn main() {
    std::process::exit(vcon_scitt::cli::main(std::env::args_os()));
}
