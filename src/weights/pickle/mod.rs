//! Reading a PyTorch checkpoint's pickle without running it: [`vm`] interprets the opcodes
//! ([`opcodes`] names them, [`cursor`] reads their arguments, [`scalars`] those that push
//! one plain value) into [`value`]s (globals checked against an allowlist, calls kept as
//! inert records), and [`meta`] finds in them what the tensors do not carry (class names,
//! FocalModulation settings).

mod cursor;
pub mod meta;
mod opcodes;
mod scalars;
mod value;
mod vm;

use thiserror::Error;

pub use meta::{FocalAttributes, read_checkpoint_meta};

/// A pickle this interpreter refuses to read.
#[derive(Debug, Error)]
pub enum PickleMetaError {
    /// The pickle references a callable that no model checkpoint needs (`os.system`, `eval`, ...).
    #[error(
        "the checkpoint references `{0}`, which no model checkpoint needs: refusing to load it"
    )]
    ForbiddenGlobal(String),
    /// The bytes are not a pickle this interpreter understands.
    #[error("malformed pickle: {0}")]
    Malformed(String),
}

type Result<T> = std::result::Result<T, PickleMetaError>;

fn malformed(what: &str) -> PickleMetaError {
    PickleMetaError::Malformed(what.to_string())
}
