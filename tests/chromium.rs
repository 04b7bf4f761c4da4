//! The chat page (`ui/`) and README.md's browser snippets in real headless
//! Chromium: `tests/browser/`'s Selenium tests (Python), run against the
//! built binary. A test binary of its own, so that Chromium never shares
//! the machine with the integration suite (cargo runs test binaries one
//! after another): on two cores it would slow the others' clocks. They start their own servers (port 0), browsers, sites on
//! other loopback origins and a forwarder that cuts connections.
//!
//! Needs `chromium`, `chromedriver`, Python `selenium`, `jwt` (PyJWT) and
//! `websockets`, and for the Node snippet `npm ci --prefix tests/browser`:
//! skipped with a message where they are missing, a failure in CI.
//!
//! `WSGATE_SCREENSHOT=$PWD/docs/screenshot.png cargo test --test
//! chromium` renews README's screenshot (otherwise it goes to
//! a temporary file, so a test run leaves the work tree alone).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

/// `name` on `PATH` (Debian's `chromium` and `chromium-driver` put both
/// in `/usr/bin`).
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, and what is missing for the browser tests.
fn tools() -> (Option<(PathBuf, PathBuf)>, Vec<String>) {
    let mut missing = Vec::new();
    let chromium = on_path("chromium");
    let driver = on_path("chromedriver");
    if chromium.is_none() {
        missing.push("chromium".to_string());
    }
    if driver.is_none() {
        missing.push("chromedriver".to_string());
    }
    let python = Command::new("python3")
        .args(["-c", "import selenium, jwt, websockets"])
        .output();
    if !python.is_ok_and(|o| o.status.success()) {
        missing.push("python3 with selenium, pyjwt and websockets".to_string());
    }
    (chromium.zip(driver), missing)
}

#[test]
fn chat_page_in_chromium() {
    let (browser, missing) = tools();
    let Some((chromium, chromedriver)) = browser.filter(|_| missing.is_empty()) else {
        // .ci/run installs them, so in CI a missing one is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests must run in CI; missing: {missing:?}"
        );
        eprintln!("browser tests skipped; missing: {missing:?}");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&dir)
        .current_dir(&dir)
        .env("WSGATE_BIN", BIN)
        .env("CHROMIUM", chromium)
        .env("CHROMEDRIVER", chromedriver)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser tests failed:\n{report}");
    // unittest ends with "OK" (or "OK (skipped=N)"), and ran something.
    assert!(report.contains("\nOK"), "{report}");
    assert!(!report.contains("Ran 0 tests"), "{report}");
}
