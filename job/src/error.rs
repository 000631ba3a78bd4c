//! The job's errors: bad input or configuration (exit 1) versus runtime failure (exit 2).

use std::fmt;

/// Why a command failed; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or configuration: the message names the culprit. Exit code 1.
    BadInput,
    /// Anything else that went wrong while running. Exit code 2.
    Runtime,
}

/// An error with its kind and a message meant for the user.
#[derive(Debug)]
pub struct JobError {
    /// Bad input or runtime failure.
    pub kind: ErrorKind,
    /// What happened, naming the file, column, row or setting involved.
    pub message: String,
}

impl JobError {
    /// Bad input or configuration.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::BadInput,
            message: message.into(),
        }
    }
    /// A runtime failure.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Runtime,
            message: message.into(),
        }
    }
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::BadInput => 1,
            ErrorKind::Runtime => 2,
        }
    }
    /// Prefixes the message with context, keeping the kind.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

/// Result with a [`JobError`].
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// Turns other errors into runtime failures with context.
pub trait Context<T> {
    /// A runtime failure with `context` before the cause.
    fn runtime(self, context: impl fmt::Display) -> Result<T>;
    /// Bad input with `context` before the cause.
    fn bad_input(self, context: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn runtime(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| JobError::runtime(format!("{context}: {e}")))
    }
    fn bad_input(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| JobError::bad_input(format!("{context}: {e}")))
    }
}
