//! Randomness, injected so that the simulator is deterministic from a seed.

/// A source of random bytes (SPIs, nonces, IVs, cookie secrets).
///
/// Key-exchange private keys come from the crypto library's own generator
/// (aws-lc), so a seeded run replays every packet size and every decision but
/// not the key bytes.
pub trait Rng: Send {
    fn fill(&mut self, out: &mut [u8]);
}

/// The operating system's CSPRNG through aws-lc. Use this in the daemon.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl Rng for SystemRng {
    fn fill(&mut self, out: &mut [u8]) {
        // aws-lc's RAND_bytes aborts the process rather than return bad
        // output; an Err here means the call itself was refused, which leaves
        // nothing sensible to do but stop.
        if aws_lc_rs::rand::fill(out).is_err() {
            panic!("aws-lc random generator failed"); // ok: not reachable from packet bytes
        }
    }
}

/// SplitMix64: deterministic, NOT cryptographic. For simulations and tests only.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}
