//! Plain throughput of the ESP transforms in MB/s (10^6 bytes per second), one
//! line per case and size, for `scripts/bench-crypto.sh` to set against
//! `openssl speed` (criterion's output is hard to parse).
//!
//! Usage: `cargo bench -p palisade-crypto --bench sym_throughput -- [--seconds S] [filter]`
//! Output lines: `RESULT <case> <bytes> <MB/s>`.

use std::time::{Duration, Instant};

mod sym_cases;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut secs = 0.5f64;
    let mut filter: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                secs = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(secs);
                i += 1;
            }
            a if a.starts_with("--") => {}
            a => filter = Some(a.to_string()),
        }
        i += 1;
    }
    for (name, case) in sym_cases::cases() {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        for &size in sym_cases::SIZES {
            let mut buf = vec![0x5au8; size];
            let mut icv = [0u8; 64];
            let mut iv = [7u8; 16];
            // Warm up caches, CPU frequency and lazily initialised CPU dispatch.
            let warm = Instant::now();
            while warm.elapsed() < Duration::from_millis(50) {
                case.seal(&iv, &mut buf, &mut icv);
            }
            let deadline = Duration::from_secs_f64(secs);
            let start = Instant::now();
            let mut n: u64 = 0;
            loop {
                for _ in 0..64 {
                    iv[0] = iv[0].wrapping_add(1);
                    case.seal(&iv, &mut buf, &mut icv);
                }
                n += 64;
                if start.elapsed() >= deadline {
                    break;
                }
            }
            let mbps = (n as f64 * size as f64) / start.elapsed().as_secs_f64() / 1e6;
            println!("RESULT {name} {size} {mbps:.1}");
        }
    }
}
