//! Admission control for writes: bearer tokens and per-client rate limits.
//! These are not registration inputs, so they run before the body is read
//! and are counted here (401s and 429s), apart from registration outcomes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hyper::Request;
use hyper::body::Incoming;
use hyper::header;

use super::Api;
use super::error::ApiError;
use crate::service::Service;

/// Admits a `POST /entries` or says why not: authentication first (an
/// unauthenticated client must not drain anyone's bucket), then the rate
/// limit of the token, or of the client address when writes are open.
pub(super) fn admit(
    api: &Api,
    svc: &Service,
    req: &Request<Incoming>,
    peer: SocketAddr,
) -> Result<(), ApiError> {
    let client = authorize(svc, req, peer)?;
    api.rate.check(&client).map_err(|retry_after| {
        svc.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let rl = &svc.config.rate_limit;
        ApiError::RateLimited {
            per_sec: rl.per_client_per_sec,
            burst: rl.burst,
            retry_after,
        }
    })
}

/// SHA-256 (hex) of the `Authorization: Bearer` token, if any: tokens are
/// configured, compared and logged only as hashes.
pub(super) fn presented_token_hash(req: &Request<Incoming>) -> Option<String> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    Some(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.trim().as_bytes(),
    )))
}

/// Returns the rate-limit key: the token's hash, or the client address.
fn authorize(svc: &Service, req: &Request<Incoming>, peer: SocketAddr) -> Result<String, ApiError> {
    let tokens = &svc.config.auth.bearer_token_sha256;
    if tokens.is_empty() {
        return Ok(peer.ip().to_string());
    }
    let Some(hash) = presented_token_hash(req) else {
        svc.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::Unauthorized(
            "POST /entries needs Authorization: Bearer <token>",
        ));
    };
    if tokens.iter().any(|t| t.eq_ignore_ascii_case(&hash)) {
        Ok(format!("token:{}", &hash[..16]))
    } else {
        svc.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        Err(ApiError::Unauthorized("the bearer token is not accepted"))
    }
}

/// Whether the request carries one of the admin tokens (`POST /admin/*`).
pub(super) fn is_admin(svc: &Service, req: &Request<Incoming>) -> bool {
    let tokens = &svc.config.auth.admin_token_sha256;
    presented_token_hash(req).is_some_and(|h| tokens.iter().any(|t| t.eq_ignore_ascii_case(&h)))
}

/// Token buckets per client (token hash or address).
pub(super) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub(super) fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` or the seconds to wait.
    pub(super) fn check(&self, client: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = crate::sync::lock(&self.buckets);
        if b.len() > 100_000 {
            // Bounded memory under address floods: forget idle buckets.
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(client.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}
