//! The TLS layer on byte buffers: a rustls client and a [`TlsConn`]
//! talk through memory, with certificates made here (`rcgen`).

use std::io::{Read, Write};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;

/// A fresh directory under the system's temp dir.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wsgate-tls-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `localhost` with a key of `alg`, written
/// as PEM; returns the files and the certificate (for a client's roots).
fn make_pair(name: &str, alg: &'static SignatureAlgorithm) -> (TlsFiles, CertificateDer<'static>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = scratch_dir(name);
    let files = TlsFiles::new(dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, cert.der().clone())
}

fn client_for(
    root: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// Moves bytes both ways until neither side has anything to say; returns
/// the server's plaintext and the last thing its reads reported.
fn pump(client: &mut ClientConnection, server: &mut TlsConn) -> (Vec<u8>, Option<Received>) {
    let mut plain = Vec::new();
    let mut last = None;
    for _ in 0..20 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            let got = server.read_tls(&mut rd).unwrap();
            server.read_plaintext(&mut plain);
            let stop = matches!(got, Received::Failed(_) | Received::Closed);
            last = Some(got);
            if stop {
                break;
            }
        }
        let mut back = Vec::new();
        server.write_tls(&mut back).unwrap();
        if wire.is_empty() && back.is_empty() {
            break;
        }
        let mut rd = &back[..];
        while !rd.is_empty() {
            if client.read_tls(&mut rd).is_err() {
                break;
            }
            if client.process_new_packets().is_err() {
                break;
            }
        }
    }
    (plain, last)
}

fn client_reads(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = client.reader().read_to_end(&mut out);
    out
}

#[test]
fn ecdsa_and_ed25519_pairs_serve_tls13_with_alpn() {
    for (name, alg) in [
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let (files, root) = make_pair(name, alg);
        let config = files.load().unwrap();
        let versions = vec![&rustls::version::TLS13];
        let mut client = client_for(&root, &versions);
        let mut server = TlsConn::new(Arc::clone(&config)).unwrap();
        client
            .writer()
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .unwrap();
        let (plain, _) = pump(&mut client, &mut server);
        assert!(!server.is_handshaking(), "{name}");
        assert_eq!(plain, b"GET /healthz HTTP/1.1\r\n\r\n", "{name}");
        assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]), "{name}");
        assert_eq!(
            client.protocol_version(),
            Some(versions[0].version),
            "{name}"
        );
        // And back.
        assert_eq!(server.write_plaintext(b"HTTP/1.1 200 OK\r\n\r\n"), 19);
        pump(&mut client, &mut server);
        assert_eq!(
            client_reads(&mut client),
            b"HTTP/1.1 200 OK\r\n\r\n",
            "{name}"
        );
    }
}

#[test]
fn plain_http_gets_a_readable_400() {
    let (files, _) = make_pair("plain", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut server = TlsConn::new(files.load().unwrap()).unwrap();
    let mut rd = &b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n"[..];
    assert_eq!(
        server.read_tls(&mut rd).unwrap(),
        Received::Failed(FailureClass::NotTls)
    );
    let mut out = Vec::new();
    server.write_tls(&mut out).unwrap();
    assert_eq!(out, PLAIN_HTTP_ANSWER);
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    assert!(!server.wants_write());
    // Nothing more is read or encrypted.
    assert_eq!(
        server.read_tls(&mut &b"more"[..]).unwrap(),
        Received::Nothing
    );
    assert_eq!(server.write_plaintext(b"x"), 0);
}

#[test]
fn garbage_and_early_hang_ups_fail_by_class() {
    let (files, root) = make_pair("garbage", &rcgen::PKCS_ECDSA_P256_SHA256);
    let config = files.load().unwrap();
    // A handshake record with nonsense inside.
    let mut server = TlsConn::new(Arc::clone(&config)).unwrap();
    let mut rd = &[22u8, 3, 1, 0, 4, 1, 0, 0, 0][..];
    assert_eq!(
        server.read_tls(&mut rd).unwrap(),
        Received::Failed(FailureClass::Protocol)
    );
    // A client that hangs up half way.
    let mut client = client_for(&root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(Arc::clone(&config)).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    assert_eq!(
        server.read_tls(&mut &hello[..]).unwrap(),
        Received::Bytes(hello.len())
    );
    assert!(server.is_handshaking());
    assert_eq!(
        server.read_tls(&mut &b""[..]).unwrap(),
        Received::Failed(FailureClass::Eof)
    );
    // A client that does not trust the certificate says so with an alert.
    let (_, other_root) = make_pair("stranger", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut client = client_for(&other_root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(config).unwrap();
    let (_, last) = pump(&mut client, &mut server);
    assert_eq!(last, Some(Received::Failed(FailureClass::Alert)));
}

#[test]
fn only_one_batch_of_plaintext_is_in_flight() {
    let (files, root) = make_pair("batch", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut client = client_for(&root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(files.load().unwrap()).unwrap();
    assert_eq!(
        server.write_plaintext(b"early"),
        0,
        "not before the handshake"
    );
    pump(&mut client, &mut server);
    assert!(!server.is_handshaking());
    let big = vec![7u8; 3 * MAX_PLAINTEXT_IN_FLIGHT];
    assert_eq!(server.write_plaintext(&big), MAX_PLAINTEXT_IN_FLIGHT);
    assert!(server.wants_write());
    assert_eq!(
        server.write_plaintext(&big),
        0,
        "the batch is not written yet"
    );
    let mut wire = Vec::new();
    server.write_tls(&mut wire).unwrap();
    assert!(!server.wants_write());
    assert!(wire.len() > MAX_PLAINTEXT_IN_FLIGHT);
    assert_eq!(server.write_plaintext(&big), MAX_PLAINTEXT_IN_FLIGHT);
}

#[test]
fn a_close_notify_is_a_close_both_ways() {
    let (files, root) = make_pair("close", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut client = client_for(&root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(files.load().unwrap()).unwrap();
    pump(&mut client, &mut server);
    client.send_close_notify();
    let (_, last) = pump(&mut client, &mut server);
    assert_eq!(last, Some(Received::Closed));
    server.close();
    assert!(server.wants_write());
    let mut wire = Vec::new();
    server.write_tls(&mut wire).unwrap();
    client.read_tls(&mut &wire[..]).unwrap();
    let state = client.process_new_packets().unwrap();
    assert!(state.peer_has_closed());
}

#[test]
fn a_pair_that_does_not_load_says_which_file_and_why() {
    let (files, _) = make_pair("bad", &rcgen::PKCS_ECDSA_P256_SHA256);
    let missing = TlsFiles::new(files.cert.with_file_name("nope.pem"), files.key.clone());
    let e = missing.load().unwrap_err();
    assert_eq!(e.path, missing.cert);
    // A key in the certificate's place, and the certificate in the key's.
    let swapped = TlsFiles::new(files.key.clone(), files.cert.clone());
    let e = swapped.load().unwrap_err();
    assert_eq!(e.path, swapped.cert);
    assert!(e.reason.contains("no certificate"), "{e}");
    // A key that does not belong to the certificate.
    let (other, _) = make_pair("bad-other", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mismatched = TlsFiles::new(files.cert.clone(), other.key.clone());
    let e = mismatched.load().unwrap_err();
    assert_eq!(e.path, mismatched.key);
    let key_pem = std::fs::read_to_string(&other.key).unwrap();
    let secret_line = key_pem.lines().nth(1).unwrap();
    assert!(!e.to_string().contains(secret_line), "no key bytes in {e}");
}

/// True when `openssl` runs here; in CI (which installs it) it must.
fn have_openssl() -> bool {
    let present = std::process::Command::new("openssl")
        .arg("version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(
        present || std::env::var_os("CI").is_none(),
        "openssl must be installed in CI"
    );
    present
}

/// `openssl` on this machine (CI installs it): makes the RSA keys ring
/// cannot generate, and the PKCS#1 and SEC1 encodings of keys.
fn openssl(args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (CI installs it)");
    assert!(status.success(), "openssl {args:?}");
}

#[test]
fn rsa_keys_and_pkcs1_and_sec1_encodings_load_and_serve() {
    if !have_openssl() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = scratch_dir("rsa");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    // RSA 2048, PKCS#8 from genpkey, then the same key as PKCS#1.
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &p("rsa8.pem"),
    ]);
    openssl(&[
        "rsa",
        "-in",
        &p("rsa8.pem"),
        "-traditional",
        "-out",
        &p("rsa1.pem"),
    ]);
    let pem = std::fs::read_to_string(p("rsa8.pem")).unwrap();
    let key = KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(p("rsa-cert.pem"), cert.pem()).unwrap();
    let root = cert.der().clone();
    assert!(
        std::fs::read_to_string(p("rsa1.pem"))
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    for key_file in ["rsa8.pem", "rsa1.pem"] {
        let files = TlsFiles::new(p("rsa-cert.pem"), p(key_file));
        let config = files.load().unwrap();
        let mut client = client_for(&root, &[&rustls::version::TLS13]);
        let mut server = TlsConn::new(Arc::clone(&config)).unwrap();
        client.writer().write_all(b"ping").unwrap();
        let (plain, _) = pump(&mut client, &mut server);
        assert_eq!(plain, b"ping", "{key_file}");
        // TLS 1.2 is not spoken (README "TLS"): the handshake fails.
        let mut client = client_for(&root, &[&rustls::version::TLS12]);
        let mut server = TlsConn::new(Arc::clone(&config)).unwrap();
        client.writer().write_all(b"ping").unwrap();
        let (plain, last) = pump(&mut client, &mut server);
        assert!(plain.is_empty(), "{key_file}");
        assert!(matches!(last, Some(Received::Failed(_))), "{key_file}");
    }
    // An ECDSA key in SEC1 ("EC PRIVATE KEY").
    let (files, root) = make_pair("sec1", &rcgen::PKCS_ECDSA_P256_SHA256);
    let sec1 = files.key.with_file_name("sec1.pem");
    openssl(&[
        "ec",
        "-in",
        files.key.to_str().unwrap(),
        "-out",
        sec1.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    let config = TlsFiles::new(files.cert.clone(), sec1).load().unwrap();
    let mut client = client_for(&root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(config).unwrap();
    client.writer().write_all(b"ping").unwrap();
    assert_eq!(pump(&mut client, &mut server).0, b"ping");
}

/// A client that writes each small message as its own record (browsers
/// do, one record a WebSocket frame): a read holds hundreds of records,
/// and every one of them is decrypted in that read, none left waiting in
/// the buffer (which would stall them, or grow it until it failed).
#[test]
fn a_read_full_of_tiny_records_is_decrypted_whole() {
    let (files, root) = make_pair("tiny", &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut client = client_for(&root, &[&rustls::version::TLS13]);
    let mut server = TlsConn::new(files.load().unwrap()).unwrap();
    pump(&mut client, &mut server);
    assert!(!server.is_handshaking());
    for _ in 0..1000 {
        client.writer().write_all(b"x").unwrap();
    }
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    assert!(wire.len() > 20_000, "a record each: {}", wire.len());
    let mut plain = Vec::new();
    let mut rd = &wire[..];
    while !rd.is_empty() {
        assert!(matches!(
            server.read_tls(&mut rd).unwrap(),
            Received::Bytes(_)
        ));
        server.read_plaintext(&mut plain);
    }
    assert_eq!(plain.len(), 1000, "every record decrypted when read");
    assert!(server.incoming.is_empty());
}
