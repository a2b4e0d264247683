//! Fuzzes the daemon's config reader (TOML, then validation of every field):
//! any text must give a config or errors with positions, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match palisade::config::Config::from_str(Path::new("/fuzz/palisade.toml"), text) {
        Ok(c) => {
            let _ = c.summary();
        }
        Err(e) => {
            // Rendering points into the source by line and column.
            let _ = e.render();
        }
    }
});
