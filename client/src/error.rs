//! The one error type of the client crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?}: only http:// URLs are supported (terminate TLS in a proxy)")]
    UnsupportedUrl(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("connecting to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {authority}: {source}")]
    Http {
        authority: String,
        source: hyper::Error,
    },
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The service answered with a status the caller did not expect; the
    /// text is [`crate::describe`] of the reply (status, problem title, detail).
    #[error("{0}")]
    Status(String),
    #[error("the service answered 202 without a Location header")]
    NoLocation,
    #[error("no receipt for {location} within {deadline:?}")]
    Timeout {
        location: String,
        deadline: std::time::Duration,
    },
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The caller's input (a file, an argument) is not what it must be.
    #[error("{0}")]
    Input(String),
    /// The service's answer does not parse or contradicts itself.
    #[error("{0}")]
    Answer(String),
}

impl ClientError {
    pub(crate) fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ClientError {
        let path = path.to_path_buf();
        move |source| ClientError::File { path, source }
    }
}
