//! Service configuration: TOML file + `VCON_SCITT_*` env + flags, with
//! defaults that work out of the box on 127.0.0.1.

pub const DEFAULT_DATA_DIR: &str = "./vcon-scitt-data";
