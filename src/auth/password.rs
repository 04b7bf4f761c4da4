//! Password hashes in the PHC string format, for the users file.
//!
//! Read first: the PHC string format
//! (<https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md>)
//! and the OWASP Password Storage Cheat Sheet, whose parameters are the
//! floors here.
//!
//! Two schemes are accepted, both computed by RustCrypto crates, never by
//! code of ours:
//!
//! - `$pbkdf2-sha256$i=ROUNDS[,l=LEN]$SALT$HASH` (crate `pbkdf2`) with
//!   `ROUNDS` from [`PBKDF2_MIN_ROUNDS`] to [`PBKDF2_MAX_ROUNDS`]. This is
//!   what [`hash_password`] (and so `wsgate hash-password`) writes.
//! - `$argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH` (crate `argon2`) at or
//!   above one of OWASP's cost pairs ([`ARGON2ID_MIN_COSTS`]), and within
//!   [`ARGON2ID_MAX_M_KIB`] and [`ARGON2ID_MAX_T`].
//!
//! Both need a salt of at least [`MIN_SALT_LEN`] bytes and a hash output of
//! at least [`MIN_OUTPUT_LEN`] bytes. Everything else (`pbkdf2-sha1`,
//! `pbkdf2-sha512`, `argon2i`, `argon2d`, `scrypt`, bcrypt's `$2b$`, …) is
//! refused by [`validate_hash`], which the users file runs on every line at
//! start-up, and [`verify_password`] never verifies a hash that
//! [`validate_hash`] refuses.
//!
//! The upper bounds exist so that a typo in the users file (`i=6000000000`,
//! `m=19456000`) is refused at start-up instead of making every login of
//! that user take minutes or gigabytes.
//!
//! Comparison of the computed and stored hash is constant-time (`subtle`
//! for PBKDF2, the `argon2` crate's `Output` comparison for Argon2id).

use std::fmt;

use argon2::Argon2;
use pbkdf2::password_hash::PasswordVerifier;
use pbkdf2::password_hash::phc::{Output, PasswordHash, Salt};
use pbkdf2::{Algorithm, Params};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The fewest PBKDF2-HMAC-SHA256 rounds accepted, and the number
/// [`hash_password`] uses: OWASP's figure for PBKDF2-HMAC-SHA256.
pub const PBKDF2_MIN_ROUNDS: u32 = 600_000;

/// The most PBKDF2-HMAC-SHA256 rounds accepted (about 16 times the
/// minimum, a few seconds a check): more is taken for a typo.
pub const PBKDF2_MAX_ROUNDS: u32 = 10_000_000;

/// OWASP's Argon2id cost pairs, `(m` in KiB`, t)`, all with `p = 1`.
///
/// A hash is strong enough when its `m` and `t` are both at least those of
/// one pair: `m=19456,t=2` (the first choice), `m=47104,t=1`,
/// `m=12288,t=3`, `m=9216,t=4` or `m=7168,t=5`. Any `p ≥ 1` is accepted:
/// lanes split the same memory and passes, they do not reduce them.
pub const ARGON2ID_MIN_COSTS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// The most Argon2id memory accepted, in KiB (1 GiB): every check of such
/// a hash allocates that much; more is taken for a typo.
pub const ARGON2ID_MAX_M_KIB: u32 = 1024 * 1024;

/// The most Argon2id passes (`t`) accepted: more is taken for a typo.
pub const ARGON2ID_MAX_T: u32 = 16;

/// The shortest salt accepted, in bytes (128 bits, as NIST SP 800-132 and
/// the PHC format recommend). [`hash_password`] uses this length.
pub const MIN_SALT_LEN: usize = 16;

/// The shortest hash output accepted, in bytes (128 bits).
pub const MIN_OUTPUT_LEN: usize = 16;

/// The length of the hash output [`hash_password`] writes, in bytes.
const OUTPUT_LEN: usize = 32;

/// The argon2 version we accept: `v=19` (0x13), the current one; 0x10 has
/// a known weakness, and a missing `v` is read as 0x10 by some tools and
/// 0x13 by others, so it is refused rather than guessed.
const ARGON2_VERSION: u32 = 0x13;

/// Why a stored password hash is not one we accept.
///
/// A start-up error (the users file is checked when the server starts); it
/// never reaches a peer. Payload-free: the message says what is wrong and
/// never echoes the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashError {
    /// Not a PHC string (`$ID[$v=V][$PARAMS]$SALT$HASH`), or its salt or
    /// hash is not valid B64.
    Malformed,
    /// An algorithm other than `pbkdf2-sha256` and `argon2id`.
    UnsupportedAlgorithm,
    /// The salt or the hash part is missing.
    Incomplete,
    /// The salt is shorter than [`MIN_SALT_LEN`].
    SaltTooShort,
    /// The hash output is shorter than [`MIN_OUTPUT_LEN`].
    OutputTooShort,
    /// A required parameter is missing, a parameter is unknown or not a
    /// number, or the parameters do not fit together (PBKDF2 `l` not the
    /// hash's length, Argon2 `m` below `8 * p`).
    BadParams,
    /// A version field where none belongs (PBKDF2), or an Argon2 version
    /// other than `v=19`.
    UnsupportedVersion,
    /// PBKDF2 with fewer than [`PBKDF2_MIN_ROUNDS`] rounds.
    TooFewRounds,
    /// PBKDF2 with more than [`PBKDF2_MAX_ROUNDS`] rounds.
    TooManyRounds,
    /// Argon2id below every pair of [`ARGON2ID_MIN_COSTS`].
    Argon2TooWeak,
    /// Argon2id above [`ARGON2ID_MAX_M_KIB`] or [`ARGON2ID_MAX_T`].
    Argon2TooCostly,
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Malformed => f.write_str("not a PHC string ($id$params$salt$hash)"),
            HashError::UnsupportedAlgorithm => {
                f.write_str("unsupported algorithm (use pbkdf2-sha256 or argon2id)")
            }
            HashError::Incomplete => f.write_str("salt or hash missing"),
            HashError::SaltTooShort => write!(f, "salt shorter than {MIN_SALT_LEN} bytes"),
            HashError::OutputTooShort => {
                write!(f, "hash output shorter than {MIN_OUTPUT_LEN} bytes")
            }
            HashError::BadParams => f.write_str("missing, unknown or invalid parameters"),
            HashError::UnsupportedVersion => {
                f.write_str("unsupported version (pbkdf2 has none, argon2id needs v=19)")
            }
            HashError::TooFewRounds => {
                write!(f, "pbkdf2-sha256 needs at least i={PBKDF2_MIN_ROUNDS}")
            }
            HashError::TooManyRounds => {
                write!(f, "pbkdf2-sha256 allows at most i={PBKDF2_MAX_ROUNDS}")
            }
            HashError::Argon2TooWeak => f.write_str(
                "argon2id costs below OWASP minimums (m=19456,t=2 or m=47104,t=1, \
                 m=12288,t=3, m=9216,t=4, m=7168,t=5)",
            ),
            HashError::Argon2TooCostly => write!(
                f,
                "argon2id costs above limits (m at most {ARGON2ID_MAX_M_KIB}, \
                 t at most {ARGON2ID_MAX_T})"
            ),
        }
    }
}

impl std::error::Error for HashError {}

/// Hashes `password` for a users file: PBKDF2-HMAC-SHA256,
/// [`PBKDF2_MIN_ROUNDS`] rounds, a 16-byte salt from the OS, a 32-byte
/// output, as a PHC string `$pbkdf2-sha256$i=600000,l=32$SALT$HASH`.
///
/// Slow on purpose (600,000 rounds).
///
/// # Panics
/// When the OS has no randomness to give (see [`super::random_bytes`]).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; MIN_SALT_LEN];
    super::random_bytes(&mut salt);
    // why explicit parameters: the output must not change when the crate's
    // defaults do.
    let params = Params::new_with_output_len(PBKDF2_MIN_ROUNDS, OUTPUT_LEN)
        .expect("constant PBKDF2 parameters are valid");
    let mut output = [0u8; OUTPUT_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, PBKDF2_MIN_ROUNDS, &mut output);
    PasswordHash {
        algorithm: Algorithm::Pbkdf2Sha256.into(),
        version: None,
        params: (&params)
            .try_into()
            .expect("constant PBKDF2 parameters encode"),
        salt: Some(Salt::new(&salt).expect("a 16-byte salt is a valid PHC salt")),
        hash: Some(Output::new(&output).expect("a 32-byte output is a valid PHC output")),
    }
    .to_string()
}

/// Checks that `phc` is a password hash we accept: `pbkdf2-sha256` with
/// [`PBKDF2_MIN_ROUNDS`] ≤ `i` ≤ [`PBKDF2_MAX_ROUNDS`], or `argon2id`
/// `v=19` at or above one of [`ARGON2ID_MIN_COSTS`] and within
/// [`ARGON2ID_MAX_M_KIB`] and [`ARGON2ID_MAX_T`]; salt and hash present,
/// at least [`MIN_SALT_LEN`] and [`MIN_OUTPUT_LEN`] bytes.
///
/// Cheap: parses, computes nothing.
///
/// # Errors
/// The first thing found wrong, checked in this order: the PHC syntax, the
/// algorithm, salt and hash present and long enough, then the scheme's
/// parameters. The error never contains the hash.
pub fn validate_hash(phc: &str) -> Result<(), HashError> {
    parse(phc).map(|_| ())
}

/// True when `password` matches the stored hash `phc`.
///
/// False on a mismatch, and on any hash [`validate_hash`] refuses (which
/// is then not computed at all). Slow on purpose when the hash is valid:
/// the full PBKDF2 or Argon2id computation runs whatever the password; the
/// final comparison is constant-time.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok((scheme, hash)) = parse(phc) else {
        return false;
    };
    let password = password.as_bytes();
    match scheme {
        Scheme::Pbkdf2Sha256 => verify_pbkdf2(&hash, password),
        // why default: the algorithm, version and costs are taken from the
        // hash itself; only the (absent) secret comes from the context.
        Scheme::Argon2id => Argon2::default().verify_password(password, &hash).is_ok(),
    }
}

/// PBKDF2-HMAC-SHA256 over `password` with `hash`'s salt and rounds,
/// compared in constant time with its output. Called directly rather than
/// through the crate's `PasswordVerifier`, which also links PBKDF2-SHA512
/// (an algorithm we refuse) into the binary: 18 KB of the size budget.
fn verify_pbkdf2(hash: &PasswordHash, password: &[u8]) -> bool {
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(hash), &hash.salt, &hash.hash)
    else {
        return false;
    };
    let mut buffer = [0u8; Params::MAX_OUTPUT_LENGTH];
    // why checked: `Params::try_from` ties the length to `l`, at most 64.
    let Some(output) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_ref(), params.rounds(), output);
    output.ct_eq(expected.as_ref()).into()
}

/// The schemes [`validate_hash`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Pbkdf2Sha256,
    Argon2id,
}

/// Parses and checks `phc`; after this succeeds, the crates accept the hash.
fn parse(phc: &str) -> Result<(Scheme, PasswordHash), HashError> {
    let hash = PasswordHash::new(phc).map_err(|_| HashError::Malformed)?;
    let scheme = match hash.algorithm.as_str() {
        Algorithm::PBKDF2_SHA256_ID => Scheme::Pbkdf2Sha256,
        "argon2id" => Scheme::Argon2id,
        _ => return Err(HashError::UnsupportedAlgorithm),
    };
    let (Some(salt), Some(output)) = (&hash.salt, &hash.hash) else {
        return Err(HashError::Incomplete);
    };
    if salt.len() < MIN_SALT_LEN {
        return Err(HashError::SaltTooShort);
    }
    if output.len() < MIN_OUTPUT_LEN {
        return Err(HashError::OutputTooShort);
    }
    match scheme {
        Scheme::Pbkdf2Sha256 => check_pbkdf2(&hash)?,
        Scheme::Argon2id => check_argon2id(&hash)?,
    }
    Ok((scheme, hash))
}

/// The PBKDF2 rules: an explicit `i` in range, then whatever the crate
/// checks (no version, only `i` and `l`, `l` equal to the output length).
fn check_pbkdf2(hash: &PasswordHash) -> Result<(), HashError> {
    // why read `i` ourselves: the crate defaults a missing `i` to 600,000,
    // and reports rounds below its own floor (1,000) as a bad parameter.
    let rounds = hash
        .params
        .get("i")
        .ok_or(HashError::BadParams)?
        .decimal()
        .map_err(|_| HashError::BadParams)?;
    if rounds < PBKDF2_MIN_ROUNDS {
        return Err(HashError::TooFewRounds);
    }
    if rounds > PBKDF2_MAX_ROUNDS {
        return Err(HashError::TooManyRounds);
    }
    match Params::try_from(hash) {
        Ok(_) => Ok(()),
        Err(pbkdf2::password_hash::Error::Version) => Err(HashError::UnsupportedVersion),
        Err(_) => Err(HashError::BadParams),
    }
}

/// The Argon2id rules: `v=19`, exactly `m`, `t`, `p` (no `keyid`: we hold no
/// secret; no `data`), parameters the crate accepts, costs within bounds.
fn check_argon2id(hash: &PasswordHash) -> Result<(), HashError> {
    if hash.version != Some(ARGON2_VERSION) {
        return Err(HashError::UnsupportedVersion);
    }
    // why all three required: the crate would default a missing one.
    let names_ok = hash
        .params
        .iter()
        .all(|(name, _)| matches!(name.as_str(), "m" | "t" | "p"));
    let all_present = ["m", "t", "p"]
        .iter()
        .all(|name| hash.params.get(*name).is_some());
    if !names_ok || !all_present {
        return Err(HashError::BadParams);
    }
    let params = argon2::Params::try_from(hash).map_err(|_| HashError::BadParams)?;
    let (m, t) = (params.m_cost(), params.t_cost());
    if !ARGON2ID_MIN_COSTS
        .iter()
        .any(|&(min_m, min_t)| m >= min_m && t >= min_t)
    {
        return Err(HashError::Argon2TooWeak);
    }
    if m > ARGON2ID_MAX_M_KIB || t > ARGON2ID_MAX_T {
        return Err(HashError::Argon2TooCostly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbkdf2::Pbkdf2;
    use pbkdf2::password_hash::{CustomizedPasswordHasher, PasswordHasher};

    /// B64 of the 16 bytes `saltsaltsaltsalt`.
    const SALT16: &str = "c2FsdHNhbHRzYWx0c2FsdA";
    /// B64 of the 8 bytes `shortslt`.
    const SALT8: &str = "c2hvcnRzbHQ";
    /// B64 of the bytes 0..32.
    const OUT32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    /// B64 of the bytes 0..12.
    const OUT12: &str = "AAECAwQFBgcICQoL";

    /// A syntactically valid PBKDF2 string; validation computes nothing, so
    /// the salt and output need not belong together.
    fn pbkdf2_phc(params: &str) -> String {
        format!("$pbkdf2-sha256${params}${SALT16}${OUT32}")
    }

    fn argon2id_phc(params: &str) -> String {
        format!("$argon2id$v=19${params}${SALT16}${OUT32}")
    }

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse battery staple");
        assert!(phc.starts_with("$pbkdf2-sha256$i=600000,l=32$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.salt.unwrap().len(), 16);
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert_eq!(validate_hash(&phc), Ok(()));
        assert!(verify_password(&phc, "correct horse battery staple"));
        assert!(!verify_password(&phc, "correct horse battery stapler"));
    }

    #[test]
    fn agrees_with_the_crate_both_ways() {
        // Ours calls PBKDF2 directly (to keep SHA-512 out of the binary):
        // the crate must read what we write, and we what it writes.
        let ours = hash_password("pw");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Pbkdf2::SHA256.verify_password(b"pw", &parsed).is_ok());
        assert!(Pbkdf2::SHA256.verify_password(b"px", &parsed).is_err());
        let params = Params::new_with_output_len(PBKDF2_MIN_ROUNDS, 40).unwrap();
        let theirs = Pbkdf2::SHA256
            .hash_password_with_params(b"pw", b"saltsaltsaltsalt", params)
            .unwrap()
            .to_string();
        assert!(theirs.contains("l=40"), "{theirs}");
        assert!(verify_password(&theirs, "pw"));
        assert!(!verify_password(&theirs, "px"));
    }

    #[test]
    fn verify_refuses_what_validate_refuses() {
        // Built by the crate at 1,000 rounds: the right password, a hash
        // the crate itself would accept, and still no.
        let weak = Pbkdf2::SHA256
            .hash_password_with_params(b"pw", b"saltsaltsaltsalt", Params::new(1000).unwrap())
            .unwrap()
            .to_string();
        assert!(weak.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{weak}");
        assert!(
            Pbkdf2::SHA256
                .verify_password(b"pw", &PasswordHash::new(&weak).unwrap())
                .is_ok()
        );
        assert_eq!(validate_hash(&weak), Err(HashError::TooFewRounds));
        assert!(!verify_password(&weak, "pw"));
        assert!(!verify_password("", ""));
        assert!(!verify_password("garbage", "garbage"));
    }

    #[test]
    fn pbkdf2_rules() {
        use HashError::*;
        let cases: &[(String, Result<(), HashError>)] = &[
            (pbkdf2_phc("i=600000,l=32"), Ok(())),
            (pbkdf2_phc("i=600000"), Ok(())),
            (pbkdf2_phc("i=10000000,l=32"), Ok(())),
            (pbkdf2_phc("i=599999,l=32"), Err(TooFewRounds)),
            (pbkdf2_phc("i=1000,l=32"), Err(TooFewRounds)),
            (pbkdf2_phc("i=1,l=32"), Err(TooFewRounds)),
            (pbkdf2_phc("i=10000001,l=32"), Err(TooManyRounds)),
            (pbkdf2_phc("i=4294967295,l=32"), Err(TooManyRounds)),
            // A missing `i` is not "the default".
            (pbkdf2_phc("l=32"), Err(BadParams)),
            (pbkdf2_phc("i=99999999999,l=32"), Err(BadParams)),
            (pbkdf2_phc("i=06000000,l=32"), Err(BadParams)),
            (pbkdf2_phc("i=six,l=32"), Err(BadParams)),
            (pbkdf2_phc("i=600000,l=32,x=1"), Err(BadParams)),
            // `l` says 20 bytes, the hash has 32.
            (pbkdf2_phc("i=600000,l=20"), Err(BadParams)),
            (
                format!("$pbkdf2-sha256$v=1$i=600000,l=32${SALT16}${OUT32}"),
                Err(UnsupportedVersion),
            ),
            (
                format!("$pbkdf2-sha256$i=600000,l=32${SALT8}${OUT32}"),
                Err(SaltTooShort),
            ),
            // 15 bytes (20 B64 characters): the floor counts bytes.
            (
                format!("$pbkdf2-sha256$i=600000,l=32$c2FsdHNhbHRzYWx0c2Fs${OUT32}"),
                Err(SaltTooShort),
            ),
            (
                format!("$pbkdf2-sha256$i=600000,l=12${SALT16}${OUT12}"),
                Err(OutputTooShort),
            ),
            (
                format!("$pbkdf2-sha256$i=600000,l=32${SALT16}"),
                Err(Incomplete),
            ),
            ("$pbkdf2-sha256$i=600000,l=32".to_string(), Err(Incomplete)),
            ("$pbkdf2-sha256".to_string(), Err(Incomplete)),
        ];
        for (phc, want) in cases {
            assert_eq!(validate_hash(phc), *want, "{phc}");
        }
    }

    #[test]
    fn other_algorithms_and_garbage() {
        use HashError::*;
        let cases: &[(String, HashError)] = &[
            (
                format!("$pbkdf2-sha1$i=600000,l=32${SALT16}${OUT32}"),
                UnsupportedAlgorithm,
            ),
            (
                format!("$pbkdf2-sha512$i=600000,l=32${SALT16}${OUT32}"),
                UnsupportedAlgorithm,
            ),
            (
                format!("$scrypt$ln=17,r=8,p=1${SALT16}${OUT32}"),
                UnsupportedAlgorithm,
            ),
            (
                format!("$argon2i$v=19$m=19456,t=2,p=1${SALT16}${OUT32}"),
                UnsupportedAlgorithm,
            ),
            (
                format!("$argon2d$v=19$m=19456,t=2,p=1${SALT16}${OUT32}"),
                UnsupportedAlgorithm,
            ),
            // bcrypt's format is not PHC.
            (
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_string(),
                Malformed,
            ),
            (String::new(), Malformed),
            ("$".to_string(), Malformed),
            ("garbage".to_string(), Malformed),
            ("wonderland".to_string(), Malformed),
            ("pbkdf2-sha256$i=600000$x$y".to_string(), Malformed),
            (format!(" {}", pbkdf2_phc("i=600000,l=32")), Malformed),
            (format!("{}:x", pbkdf2_phc("i=600000,l=32")), Malformed),
            (
                format!("$pbkdf2-sha256$i=600000,l=32$not*b64${OUT32}"),
                Malformed,
            ),
            (
                format!("$pbkdf2-sha256$i=600000,l=32${SALT16}${OUT32}$extra"),
                Malformed,
            ),
        ];
        for (phc, want) in cases {
            assert_eq!(validate_hash(phc), Err(*want), "{phc:?}");
            assert!(!verify_password(phc, "anything"), "{phc:?}");
        }
    }

    #[test]
    fn argon2id_at_owasp_costs() {
        for params in [
            "m=19456,t=2,p=1",
            "m=47104,t=1,p=1",
            "m=12288,t=3,p=1",
            "m=9216,t=4,p=1",
            "m=7168,t=5,p=1",
            "m=65536,t=3,p=4",
            "m=1048576,t=16,p=1",
        ] {
            assert_eq!(validate_hash(&argon2id_phc(params)), Ok(()), "{params}");
        }
    }

    #[test]
    fn argon2id_below_or_beyond() {
        use HashError::*;
        let cases: &[(String, HashError)] = &[
            (argon2id_phc("m=19455,t=2,p=1"), Argon2TooWeak),
            (argon2id_phc("m=19456,t=1,p=1"), Argon2TooWeak),
            (argon2id_phc("m=47103,t=1,p=1"), Argon2TooWeak),
            (argon2id_phc("m=12287,t=3,p=1"), Argon2TooWeak),
            (argon2id_phc("m=7167,t=100,p=1"), Argon2TooWeak),
            (argon2id_phc("m=4096,t=3,p=1"), Argon2TooWeak),
            (argon2id_phc("m=1048577,t=2,p=1"), Argon2TooCostly),
            (argon2id_phc("m=19456,t=17,p=1"), Argon2TooCostly),
            // m, t and p are all required (the PHC spec's Argon2 encoding).
            (argon2id_phc("m=19456,t=2"), BadParams),
            (argon2id_phc("t=2,p=1"), BadParams),
            (argon2id_phc("m=19456,t=2,p=0"), BadParams),
            // m below 8 * p
            (argon2id_phc("m=19456,t=2,p=4096"), BadParams),
            (argon2id_phc("m=19456,t=2,p=1,keyid=AAAA"), BadParams),
            (argon2id_phc("m=19456,t=2,p=1,x=1"), BadParams),
            (
                format!("$argon2id$v=16$m=19456,t=2,p=1${SALT16}${OUT32}"),
                UnsupportedVersion,
            ),
            (
                format!("$argon2id$m=19456,t=2,p=1${SALT16}${OUT32}"),
                UnsupportedVersion,
            ),
            (
                format!("$argon2id$v=19$m=19456,t=2,p=1${SALT8}${OUT32}"),
                SaltTooShort,
            ),
        ];
        for (phc, want) in cases {
            assert_eq!(validate_hash(phc), Err(*want), "{phc}");
        }
    }

    #[test]
    fn argon2id_round_trip() {
        let params = argon2::Params::new(19_456, 2, 1, None).unwrap();
        let phc = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_with_salt(b"builder", b"saltsaltsaltsalt")
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(validate_hash(&phc), Ok(()));
        assert!(verify_password(&phc, "builder"));
        assert!(!verify_password(&phc, "Builder"));
    }

    #[test]
    fn errors_say_what_not_which_hash() {
        let phc = pbkdf2_phc("i=1000,l=32");
        let err = validate_hash(&phc).unwrap_err().to_string();
        assert!(err.contains("600000"), "{err}");
        assert!(!err.contains(SALT16) && !err.contains(OUT32), "{err}");
        for e in [
            HashError::Malformed,
            HashError::UnsupportedAlgorithm,
            HashError::Incomplete,
            HashError::SaltTooShort,
            HashError::OutputTooShort,
            HashError::BadParams,
            HashError::UnsupportedVersion,
            HashError::TooFewRounds,
            HashError::TooManyRounds,
            HashError::Argon2TooWeak,
            HashError::Argon2TooCostly,
        ] {
            let text = e.to_string();
            assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
        }
    }
}
