//! Typed errors for parsing, compiling and evaluating policies.
//!
//! Every parse/compile error carries the path of the offending field in the
//! policy document (for example
//! `spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.foo`).

use thiserror::Error;

/// An error found while parsing or compiling a policy document.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The YAML stream could not be parsed.
    #[error("document {document}: malformed YAML: {message}")]
    Yaml {
        /// Zero-based index of the document in the YAML stream.
        document: usize,
        /// Parser message.
        message: String,
    },
    /// A field failed structural deserialisation (unknown field, wrong type, missing field).
    #[error("document {document}: {path}: {message}")]
    Schema {
        /// Zero-based index of the document in the YAML stream.
        document: usize,
        /// Path of the field.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A field is well-formed but its value is invalid or unsupported.
    #[error("{path}: {message}")]
    Invalid {
        /// Path of the field.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl PolicyError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Path of the offending field, if known.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Yaml { .. } => None,
            Self::Schema { path, .. } | Self::Invalid { path, .. } => Some(path),
        }
    }
}

/// An error raised while evaluating a compiled policy against inputs.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The verification type is not implemented by sigil (not raised today: every Kyverno
    /// 1.13 type is; kept for callers that match on it).
    #[error("{path}: verification type {kind} is not supported yet")]
    UnsupportedType {
        /// Path of the `verifyImages` entry.
        path: String,
        /// The type name.
        kind: String,
    },
    /// A JMESPath expression failed to compile or evaluate (includes unknown functions).
    #[error("JMESPath error in `{expression}`: {message}")]
    JmesPath {
        /// The expression.
        expression: String,
        /// The error message.
        message: String,
    },
    /// A `{{ }}` variable expression is malformed.
    #[error("malformed variable in `{0}`")]
    MalformedVariable(String),
    /// A `{{ }}` variable of a rule body resolved to nothing (Kyverno: "variable not resolved").
    #[error("variable `{{{{ {0} }}}}` not resolved (no such value in the rule context)")]
    UnresolvedVariable(String),
    /// A rule `context` entry could not be evaluated.
    #[error("{path}: {message}")]
    Context {
        /// Path of the context entry (`spec.rules[i].context[j]`).
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The `verifyImages` entry is invalid once its variables are substituted.
    #[error("{path} (after variable substitution): {message}")]
    Substituted {
        /// Path of the offending field.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Operands of an operator have types or formats the operator cannot handle.
    #[error("operator {operator}: {message}")]
    Operand {
        /// The operator name.
        operator: String,
        /// What is wrong.
        message: String,
    },
    /// The resource does not have the expected shape.
    #[error("resource: {0}")]
    Resource(String),
    /// A feature present in the policy is not supported at evaluation time (not raised by
    /// this crate today; kept for callers that match on it).
    #[error("{0}: not supported yet")]
    Unsupported(String),
}
