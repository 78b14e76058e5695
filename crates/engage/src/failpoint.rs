//! Failpoints for crash tests: `ENGAGE_FAILPOINT=<name>:<n>` aborts the process (no unwinding, no
//! destructors, like kill -9) the n-th time the named point is reached. Unset, a point costs one
//! relaxed atomic load.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

static CONFIG: OnceLock<Option<(String, i64)>> = OnceLock::new();
static COUNT: AtomicI64 = AtomicI64::new(0);

fn config() -> &'static Option<(String, i64)> {
    CONFIG.get_or_init(|| {
        let v = std::env::var("ENGAGE_FAILPOINT").ok()?;
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    })
}

/// Marks a failpoint.
pub fn hit(name: &str) {
    if let Some((want, n)) = config() {
        if want == name && COUNT.fetch_add(1, Ordering::Relaxed) + 1 == *n {
            eprintln!("failpoint {name}:{n} reached, aborting");
            std::process::abort();
        }
    }
}

/// Marks a failpoint that fails instead of aborting: true the n-th time the named point is reached
/// (`ENGAGE_FAILPOINT=<name>:<n>`), so the caller can return the error it stands for (a full disk,
/// say) and the run's handling of a failing stage can be tested.
pub fn fails(name: &str) -> bool {
    match config() {
        Some((want, n)) if want == name => COUNT.fetch_add(1, Ordering::Relaxed) + 1 == *n,
        _ => false,
    }
}
