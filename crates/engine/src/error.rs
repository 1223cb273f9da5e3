//! Errors of the engine's setup steps (loading policies, trust material). Verification outcomes are
//! not errors: they are [`crate::RuleResult`]s.

use std::path::PathBuf;

/// An engine setup error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A policy file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A policy file did not parse or compile.
    #[error("{}: {source}", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why (names the document and field path).
        source: sigil_policy::PolicyError,
    },
    /// Two policies with the same kind, namespace and name.
    #[error("duplicate policy `{name}` in {} and {}", first.display(), second.display())]
    DuplicatePolicy {
        /// Policy name.
        name: String,
        /// Where it was first defined.
        first: PathBuf,
        /// Where it was defined again.
        second: PathBuf,
    },
}
