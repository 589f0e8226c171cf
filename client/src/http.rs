//! A minimal HTTP/1.1 client over hyper for the client subcommands, the load
//! generator's checks and tests (plain HTTP; put TLS in front of the service).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use vcon_scitt_core::problem::Problem;
use vcon_scitt_core::statement::{
    LeafRule, SignedStatement, StatementError, entry_id, transparent_statement,
};

use crate::ClientError;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The RFC 9290 problem in the body, if any.
    pub fn problem(&self) -> Option<Problem> {
        Problem::from_cbor(self.status, &self.body)
    }

    /// Retry-After in seconds (SCRAPI sends delay-seconds, never a date).
    pub fn retry_after(&self) -> Option<f64> {
        self.header("retry-after")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
    }
}

/// Splits `http://host:port/base` into (authority, base path).
pub fn parse_base(url: &str) -> Result<(String, String), ClientError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::UnsupportedUrl(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(ClientError::NoHost(url.to_owned()));
    }
    Ok((authority.to_owned(), path.trim_end_matches('/').to_owned()))
}

/// One keep-alive connection.
pub struct Conn {
    authority: String,
    base: String,
    sender: SendRequest<Full<Bytes>>,
    pub token: Option<String>,
    /// Sent with every request (e.g. `Accept`, `Prefer`).
    pub headers: Vec<(hyper::header::HeaderName, String)>,
}

impl Conn {
    pub async fn connect(url: &str) -> Result<Conn, ClientError> {
        let (authority, base) = parse_base(url)?;
        let stream = match tokio::net::TcpStream::connect(&authority).await {
            Ok(s) => s,
            Err(source) => return Err(ClientError::Connect { authority, source }),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        {
            Ok(x) => x,
            Err(source) => return Err(ClientError::Http { authority, source }),
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            authority,
            base,
            sender,
            token: None,
            headers: Vec::new(),
        })
    }

    fn http_error(&self) -> impl FnOnce(hyper::Error) -> ClientError {
        let authority = self.authority.clone();
        move |source| ClientError::Http { authority, source }
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::HOST, &self.authority);
        if let Some(ct) = content_type {
            b = b.header(hyper::header::CONTENT_TYPE, ct);
        }
        if let Some(t) = &self.token {
            b = b.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (name, value) in &self.headers {
            b = b.header(name, value);
        }
        let req = b.body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await.map_err(self.http_error())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(self.http_error())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(self.http_error())?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, ClientError> {
        self.request(Method::GET, path, None, Vec::new()).await
    }

    pub async fn post_statement(&mut self, statement: Vec<u8>) -> Result<Reply, ClientError> {
        self.request(
            Method::POST,
            "/entries",
            Some("application/cose"),
            statement,
        )
        .await
    }

    /// GET that must answer 200; anything else is [`ClientError::Status`].
    pub async fn get_ok(&mut self, path: &str) -> Result<Vec<u8>, ClientError> {
        let r = self.get(path).await?;
        if r.status != 200 {
            return Err(ClientError::Status(format!("GET {path}: {}", describe(&r))));
        }
        Ok(r.body)
    }
}

/// One request on a fresh connection.
pub async fn get(url: &str, path: &str) -> Result<Reply, ClientError> {
    Conn::connect(url).await?.get(path).await
}

/// How long to wait before the next poll of a pending registration: the
/// service's latest Retry-After is a floor, and our own exponential backoff
/// (0.25 s doubling to 8 s) takes over when it is longer, so a client that
/// waits long does not keep polling at the service's shortest hint.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: 0.25 }
    }
}

impl Backoff {
    pub const MAX_SECS: f64 = 8.0;

    /// The wait before the next poll, given the Retry-After of the reply
    /// just received (not the first one: each poll's answer counts).
    /// Jitter (×0.9–1.1) is the caller's.
    pub fn next_wait(&mut self, retry_after: Option<f64>) -> f64 {
        let wait = retry_after.unwrap_or(0.0).max(self.next);
        self.next = (self.next * 2.0).min(Self::MAX_SECS);
        wait
    }
}

/// POST a statement, then follow 202/204 with Retry-After until the receipt
/// is ready or `deadline` passes. Returns (entry path, receipt).
pub async fn register_and_wait(
    url: &str,
    token: Option<String>,
    statement: Vec<u8>,
    deadline: Duration,
) -> Result<(String, Vec<u8>), ClientError> {
    let started = std::time::Instant::now();
    let mut conn = Conn::connect(url).await?;
    conn.token = token;
    let r = conn.post_statement(statement).await?;
    let location = r.header("location").map(str::to_owned);
    match r.status {
        201 => return Ok((location.unwrap_or_default(), r.body)),
        202 => {}
        _ => return Err(ClientError::Status(describe(&r))),
    }
    let location = location.ok_or(ClientError::NoLocation)?;
    let mut backoff = Backoff::default();
    let mut retry_after = r.retry_after();
    loop {
        let wait = backoff.next_wait(retry_after) * (0.9 + 0.2 * jitter());
        // The last wait is cut to what is left, so the final poll happens
        // at the deadline rather than up to a full backoff before it.
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(ClientError::Timeout { location, deadline });
        }
        let wait = Duration::try_from_secs_f64(wait).unwrap_or(left).min(left);
        tokio::time::sleep(wait).await;
        let g = match conn.get(&location).await {
            Ok(g) => g,
            Err(_) => {
                conn = Conn::connect(url).await?;
                retry_after = None;
                continue;
            }
        };
        match g.status {
            200 => return Ok((location, g.body)),
            204 => retry_after = g.retry_after(),
            _ => return Err(ClientError::Status(describe(&g))),
        }
    }
}

/// The Transparent Statement of a registration that [`register_and_wait`]
/// answered with `location` and `receipt`: `statement` with the receipt in
/// 394, unless the service answered with an entry registered earlier with
/// the same signed content and other signature bytes (an ECDSA statement
/// signed again, or its malleated (r, n − s) twin). That receipt covers the
/// registered bytes, not `statement`'s, so those are fetched from
/// `{location}/statement`; the flag says so.
pub async fn registered_transparent_statement(
    url: &str,
    statement: &[u8],
    location: &str,
    receipt: Vec<u8>,
) -> Result<(Vec<u8>, bool), ClientError> {
    let input = |e: StatementError| ClientError::Input(e.to_string());
    let ours = SignedStatement::parse(statement, usize::MAX).map_err(input)?;
    let last = location.rsplit('/').next();
    let is_ours = LeafRule::ALL
        .iter()
        .any(|rule| last == Some(entry_id(&ours.leaf_hash(*rule)).as_str()));
    if location.is_empty() || is_ours {
        // Built from the entry (the statement as registered: unprotected
        // header emptied, preferred encoding), so the Transparent Statement
        // verifies under either leaf rule whatever else `statement` carried.
        let ts = transparent_statement(&ours.entry_bytes(), &[receipt]).map_err(input)?;
        return Ok((ts, false));
    }
    let path = format!("{location}/statement");
    let r = get(url, &path).await?;
    if r.status != 200 {
        return Err(ClientError::Status(format!("GET {path}: {}", describe(&r))));
    }
    Ok((r.body, true))
}

/// A number in [0, 1) that differs between clients started together, so
/// their polls spread out. Not security-relevant.
fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(n % 1000) / 1000.0
}

/// "HTTP 400 Rejected: detail" from a problem-details reply.
pub fn describe(r: &Reply) -> String {
    match r.problem() {
        Some(p) => format!("HTTP {} {}: {}", r.status, p.title, p.detail),
        None => format!("HTTP {} ({} bytes)", r.status, r.body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bug this replaced: every poll re-read the FIRST reply's
    /// Retry-After, so with a service that always sends `Retry-After: 1`
    /// the client polled once a second forever. Now the backoff grows past
    /// a constant hint, and a later, longer hint is honoured.
    #[test]
    fn backoff_grows_past_a_constant_retry_after_and_honours_new_hints() {
        let mut b = Backoff::default();
        let waits: Vec<f64> = (0..7).map(|_| b.next_wait(Some(1.0))).collect();
        assert_eq!(waits, [1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 8.0]);
        let mut b = Backoff::default();
        assert_eq!(b.next_wait(Some(1.0)), 1.0);
        assert_eq!(
            b.next_wait(Some(5.0)),
            5.0,
            "the latest reply's hint counts"
        );
        assert_eq!(b.next_wait(None), 1.0);
        assert_eq!(b.next_wait(Some(30.0)), 30.0, "a long hint is a floor");
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base("http://127.0.0.1:8000/scitt/").unwrap(),
            ("127.0.0.1:8000".into(), "/scitt".into())
        );
        assert!(matches!(
            parse_base("https://x"),
            Err(ClientError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            parse_base("http:///x"),
            Err(ClientError::NoHost(_))
        ));
    }
}
