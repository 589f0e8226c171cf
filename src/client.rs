//! A minimal HTTP/1.1 client over hyper for the client subcommands, the load
//! generator and tests (plain HTTP; put TLS in front of the service).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

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
    pub fn problem(&self) -> Option<crate::problem::Problem> {
        crate::problem::Problem::from_cbor(self.status, &self.body)
    }
}

/// Splits `http://host:port/base` into (authority, base path).
pub fn parse_base(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url:?}: only http:// URLs are supported (terminate TLS in a proxy)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((authority.to_owned(), path.trim_end_matches('/').to_owned()))
}

/// One keep-alive connection.
pub struct Conn {
    authority: String,
    base: String,
    sender: SendRequest<Full<Bytes>>,
    pub token: Option<String>,
}

impl Conn {
    pub async fn connect(url: &str) -> Result<Conn, String> {
        let (authority, base) = parse_base(url)?;
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            authority,
            base,
            sender,
            token: None,
        })
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
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
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        self.request(Method::GET, path, None, Vec::new()).await
    }

    pub async fn post_statement(&mut self, statement: Vec<u8>) -> Result<Reply, String> {
        self.request(
            Method::POST,
            "/entries",
            Some("application/cose"),
            statement,
        )
        .await
    }
}

/// One request on a fresh connection.
pub async fn get(url: &str, path: &str) -> Result<Reply, String> {
    Conn::connect(url).await?.get(path).await
}

/// POST a statement, then follow 202/204 with Retry-After (honoured as a
/// minimum, exponential backoff with jitter otherwise) until the receipt is
/// ready or `deadline` passes. Returns (entry path, receipt).
pub async fn register_and_wait(
    url: &str,
    token: Option<String>,
    statement: Vec<u8>,
    deadline: std::time::Duration,
) -> Result<(String, Vec<u8>), String> {
    let started = std::time::Instant::now();
    let mut conn = Conn::connect(url).await?;
    conn.token = token;
    let r = conn.post_statement(statement).await?;
    let location = r.header("location").map(str::to_owned);
    match r.status {
        201 => return Ok((location.unwrap_or_default(), r.body)),
        202 => {}
        _ => return Err(describe(&r)),
    }
    let location = location.ok_or("202 without a Location header")?;
    let mut backoff = 0.25f64;
    loop {
        let wait = r_after(&r).unwrap_or(backoff) * (0.9 + 0.2 * jitter());
        if started.elapsed().as_secs_f64() + wait > deadline.as_secs_f64() {
            return Err(format!("no receipt for {location} within {deadline:?}"));
        }
        tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
        backoff = (backoff * 2.0).min(8.0);
        let g = match conn.get(&location).await {
            Ok(g) => g,
            Err(_) => {
                conn = Conn::connect(url).await?;
                continue;
            }
        };
        match g.status {
            200 => return Ok((location, g.body)),
            204 => continue,
            _ => return Err(describe(&g)),
        }
    }
}

fn r_after(r: &Reply) -> Option<f64> {
    r.header("retry-after").and_then(|v| v.parse::<f64>().ok())
}

fn jitter() -> f64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (n % 1000) as f64 / 1000.0
}

/// "HTTP 400 Rejected: detail" from a problem-details reply.
pub fn describe(r: &Reply) -> String {
    match r.problem() {
        Some(p) => format!("HTTP {} {}: {}", r.status, p.title, p.detail),
        None => format!("HTTP {} ({} bytes)", r.status, r.body.len()),
    }
}
