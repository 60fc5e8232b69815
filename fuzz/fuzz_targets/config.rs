//! The `fawkes` binary's TOML config loader (the user's file merged into
//! the embedded default, then checked): never panics, and a configuration
//! it accepts turns into the library's options and prints back as TOML.
//! The text goes to the loader with no file in between, so a run is not
//! bound by the disk.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

// The binary's own modules (all of them but `main.rs`: the loader refers
// to the others' config types), compiled here unchanged.
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/api.rs"]
mod api;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/auth.rs"]
mod auth;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/chat.rs"]
mod chat;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/cli.rs"]
mod cli;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/cluster.rs"]
mod cluster;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/config.rs"]
mod config;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/connect.rs"]
mod connect;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/dashboard/mod.rs"]
mod dashboard;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/operations.rs"]
mod operations;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/record_cmd.rs"]
mod record_cmd;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/redact.rs"]
mod redact;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/relay.rs"]
mod relay;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/replay_cmd.rs"]
mod replay_cmd;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/static_files.rs"]
mod static_files;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/token_cmd.rs"]
mod token_cmd;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../src/bin/fawkes/webhook/mod.rs"]
mod webhook;

fuzz_target!(|data: &[u8]| {
    // A file that is not UTF-8 is refused by the read before the loader
    // sees it; the loader's part starts at the text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = config::Config::from_text(text, Path::new("fuzz/fawkes.toml")) {
        let _ = config.limits.http_limits();
        for socket in &config.sockets {
            let _ = socket.options();
        }
        let _ = config.to_toml();
    }
});
