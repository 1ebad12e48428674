//! Where the tests' Kafka broker is (shared by `support` and the tests
//! that do not load it).

use std::process::Command;

/// The broker the tests use: `SCRUBS_KAFKA_BOOTSTRAP` (set by
/// `scripts/test.sh`), else this checkout's dev broker as
/// `deploy/dev/kafka.sh bootstrap` reports it (its port is chosen free at
/// start). Panics with what to do when neither is there.
pub fn bootstrap() -> String {
    if let Ok(b) = std::env::var("SCRUBS_KAFKA_BOOTSTRAP") {
        return b;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dev/kafka.sh");
    let out = Command::new(script).arg("bootstrap").output();
    let found = out.as_ref().ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("bootstrap=").map(str::to_string))
            .filter(|_| o.status.success())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no Kafka broker: run the tests with `bash scripts/test.sh`, or start this \
             checkout's dev broker with `deploy/dev/kafka.sh start` (or set SCRUBS_KAFKA_BOOTSTRAP)"
        )
    })
}
