//! What the benchmarks share: the reference material in `../shared`.

use std::path::PathBuf;

/// `../shared/<path>` beside the checkout, when it is there.
pub fn shared(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path);
    path.exists().then_some(path)
}
