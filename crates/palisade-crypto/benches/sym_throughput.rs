//! Plain throughput of the ESP transforms in MB/s (10^6 bytes per second), one
//! line per case and size, for `scripts/bench-crypto.sh` to set against
//! `openssl speed` (criterion's output is hard to parse).
//!
//! Time is this thread's CPU time, as `openssl speed` counts user CPU time by
//! default: on a shared, loaded machine wall-clock time would charge palisade
//! for other processes' work and openssl not.
//!
//! Usage: `cargo bench -p palisade-crypto --bench sym_throughput -- [--seconds S] [filter]`
//! Output lines: `RESULT <case> <bytes> <MB/s>`.

use std::time::{Duration, Instant};

mod sym_cases;

/// CPU time consumed by this thread, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

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
            // Stop after `secs` of CPU time, or 30x that of wall time on a
            // starved machine.
            let wall_limit = Duration::from_secs_f64(secs * 30.0);
            let wall = Instant::now();
            let start = cpu_seconds();
            let mut n: u64 = 0;
            let cpu = loop {
                for _ in 0..64 {
                    iv[0] = iv[0].wrapping_add(1);
                    case.seal(&iv, &mut buf, &mut icv);
                }
                n += 64;
                let cpu = cpu_seconds() - start;
                if cpu >= secs || wall.elapsed() >= wall_limit {
                    break cpu;
                }
            };
            let mbps = (n as f64 * size as f64) / cpu / 1e6;
            println!("RESULT {name} {size} {mbps:.1}");
        }
    }
}
