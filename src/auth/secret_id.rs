//! Secret ids: session ids and tickets. 256 random bits, handed to the
//! client once in base64url, and stored only as their SHA-256 digest, so
//! that looking one up leaks nothing useful through timing and a dump of
//! a store holds no usable id.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest as _, Sha256};

/// Bytes of randomness in a secret id.
pub const SECRET_ID_BYTES: usize = 32;

/// What a store keeps of a secret id.
pub type IdDigest = [u8; 32];

/// A fresh secret id from `rng` (a cryptographically secure generator),
/// and its digest.
pub fn new_secret_id(rng: &mut impl Rng) -> (String, IdDigest) {
    let mut raw = [0u8; SECRET_ID_BYTES];
    rng.fill_bytes(&mut raw);
    let id = URL_SAFE_NO_PAD.encode(raw);
    let digest = digest_of(id.as_bytes());
    (id, digest)
}

/// The digest a store keeps of the id `id`.
pub fn digest_of(id: &[u8]) -> IdDigest {
    Sha256::digest(id).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids_are_long_fresh_and_stored_as_digests() {
        let mut rng = StdRng::seed_from_u64(7);
        let (a, da) = new_secret_id(&mut rng);
        let (b, _) = new_secret_id(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
        assert_eq!(digest_of(a.as_bytes()), da);
        // The same seed gives the same ids (replayable tests).
        let (again, _) = new_secret_id(&mut StdRng::seed_from_u64(7));
        assert_eq!(again, a);
    }
}
