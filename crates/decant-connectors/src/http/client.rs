//! The HTTP client of an API source: auth from the environment, a rate limit shared by every
//! request of the source, timeouts, and retries with exponential backoff that honour
//! `Retry-After` on 429, 5xx, timeouts and connection errors. `https://` verifies the server's
//! certificate against the compiled-in public roots and the plan's `ca_file`.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use decant_core::Dialect;
use decant_core::http::{HttpAuth, HttpOptions, parse_duration};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::error::ConnectorError;

/// A secret header value; `Debug` never shows it.
#[derive(Clone)]
struct Secret(HeaderValue);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One response: the parsed body, its text (a number the parse rounded is found there) and
/// the headers pagination needs.
#[derive(Debug)]
pub struct Response {
    pub url: Url,
    pub body: serde_json::Value,
    pub text: String,
    pub headers: HeaderMap,
}

/// Spaces requests `interval` apart over the whole source.
#[derive(Debug)]
struct RateLimit {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimit {
    /// Reserves the next slot and returns how long to wait for it (the lock is never held
    /// across a wait).
    fn reserve(&self) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let at = (*next).max(now);
        *next = at + self.interval;
        at - now
    }
}

/// Requests of one API source.
#[derive(Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    auth: Option<(HeaderName, Secret)>,
    rate: Option<RateLimit>,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
    max_body: u64,
}

fn config(message: String) -> ConnectorError {
    ConnectorError::Config(message)
}

fn transient(message: String) -> ConnectorError {
    ConnectorError::Connection {
        system: Dialect::Http,
        message,
    }
}

impl ApiClient {
    pub fn new(o: &HttpOptions) -> Result<ApiClient, ConnectorError> {
        o.check().map_err(|e| config(e.to_string()))?;
        let duration = |t: &str| parse_duration(t).map_err(config);
        let mut headers = HeaderMap::new();
        for (k, v) in &o.headers {
            let name = HeaderName::try_from(k.as_str())
                .map_err(|e| config(format!("source.http.headers.{k}: {e}")))?;
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|e| config(format!("source.http.headers.{k}: {e}")))?;
            headers.insert(name, value);
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &o.ca_file {
            for cert in private_roots(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .default_headers(headers)
            .timeout(duration(&o.timeout)?)
            .connect_timeout(duration(&o.connect_timeout)?)
            .user_agent(concat!("decant/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| config(format!("source.http: cannot build the HTTP client: {e}")))?;
        Ok(ApiClient {
            http,
            auth: o.auth.as_ref().map(auth_header).transpose()?,
            rate: o.rate_limit.map(|r| RateLimit {
                interval: Duration::from_secs_f64(1.0 / r),
                next: Mutex::new(Instant::now()),
            }),
            retries: o.retries,
            backoff: duration(&o.backoff)?,
            max_backoff: duration(&o.max_backoff)?,
            max_body: decant_core::size::parse_size(&o.max_body)
                .map_err(|e| config(e.to_string()))?,
        })
    }

    /// GETs `url` and parses the body as JSON, retrying what a retry can fix.
    pub async fn get_json(&self, url: &Url) -> Result<Response, ConnectorError> {
        let mut attempt = 0u32;
        loop {
            let (message, wait) = match self.attempt(url).await {
                Ok(r) => return Ok(r),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { message, wait }) => (message, wait),
            };
            if attempt >= self.retries {
                return Err(transient(format!(
                    "GET {}: {message} (gave up after {} attempts; source.http.retries)",
                    redact(url),
                    attempt + 1
                )));
            }
            let backoff = self
                .backoff
                .saturating_mul(1 << attempt.min(20))
                .min(self.max_backoff);
            let wait = wait.unwrap_or(backoff).min(self.max_backoff);
            tracing::warn!(url = %redact(url), attempt = attempt + 1, wait_ms = wait.as_millis() as u64, reason = %message, "retrying an API request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &Url) -> Result<Response, Attempt> {
        if let Some(rate) = &self.rate {
            tokio::time::sleep(rate.reserve()).await;
        }
        let mut request = self.http.get(url.clone());
        if let Some((name, Secret(value))) = &self.auth {
            request = request.header(name, value);
        }
        let retry_io = |e: reqwest::Error| Attempt::Retry {
            message: describe(&e),
            wait: None,
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| match tls_problem(&e, url) {
                // No retry changes a certificate.
                Some(message) => Attempt::Fail(config(message)),
                None => retry_io(e),
            })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Attempt::Retry {
                message: format!("HTTP {status}"),
                wait: retry_after(response.headers(), SystemTime::now()),
            });
        }
        if !status.is_success() {
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    ": check source.http.auth and the environment variable it names"
                }
                StatusCode::NOT_FOUND => ": check the table's path",
                s if s.is_redirection() => {
                    ": a redirect to another host is not followed (the credentials would go along); use the final URL"
                }
                _ => "",
            };
            return Err(Attempt::Fail(config(format!(
                "GET {}: HTTP {status}{hint}",
                redact(url)
            ))));
        }
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(self.too_big(url));
        }
        let mut body = Vec::new();
        while let Some(part) = response.chunk().await.map_err(retry_io)? {
            if (body.len() + part.len()) as u64 > self.max_body {
                return Err(self.too_big(url));
            }
            body.extend_from_slice(&part);
        }
        let headers = response.headers().clone();
        let final_url = response.url().clone();
        let not_json = |e: &dyn fmt::Display| {
            Attempt::Fail(config(format!(
                "GET {}: the response is not JSON: {e}",
                redact(url)
            )))
        };
        let text = String::from_utf8(body).map_err(|e| not_json(&e))?;
        let body = serde_json::from_str(&text).map_err(|e| not_json(&e))?;
        Ok(Response {
            url: final_url,
            body,
            text,
            headers,
        })
    }

    fn too_big(&self, url: &Url) -> Attempt {
        Attempt::Fail(config(format!(
            "GET {}: the response is larger than source.http.max_body ({} bytes); ask for smaller pages",
            redact(url),
            self.max_body
        )))
    }
}

/// Follows redirects on the same origin only: a custom auth header would otherwise travel to
/// whatever host a redirect names.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same || attempt.previous().len() > 10 {
            attempt.stop()
        } else {
            attempt.follow()
        }
    })
}

/// How one attempt failed.
enum Attempt {
    /// Worth another try, after `wait` if the server said so.
    Retry {
        message: String,
        wait: Option<Duration>,
    },
    /// No retry can help.
    Fail(ConnectorError),
}

fn auth_header(auth: &HttpAuth) -> Result<(HeaderName, Secret), ConnectorError> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            config(format!(
                "source.http.auth: the environment variable {name} is not set"
            ))
        })
    };
    let (name, value) = match auth {
        HttpAuth::Bearer { token_env } => (
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", var(token_env)?),
        ),
        HttpAuth::Header { name, value_env } => (
            HeaderName::try_from(name.as_str())
                .map_err(|e| config(format!("source.http.auth.name: {e}")))?,
            var(value_env)?,
        ),
    };
    let mut value = HeaderValue::try_from(value).map_err(|_| {
        config("source.http.auth: the secret holds characters a header cannot carry".into())
    })?;
    value.set_sensitive(true);
    Ok((name, Secret(value)))
}

/// `Retry-After` as seconds or an HTTP-date (RFC 9110 §10.2.3), as a wait from `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The CA certificates of `source.http.ca_file`, checked now so that a wrong file fails the plan
/// with its name rather than the first request.
fn private_roots(path: &str) -> Result<Vec<reqwest::Certificate>, ConnectorError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |why: String| config(format!("source.http.ca_file `{path}`: {why}"));
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM file of certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)".into(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    certs
        .iter()
        .map(|der| {
            store
                .add(der.clone())
                .map_err(|e| bad(format!("a certificate that cannot be a root: {e}")))?;
            reqwest::Certificate::from_der(der).map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// A failed TLS handshake, as a message that says so and names the host: reqwest reports it as
/// a connection error whose cause sits deep in the chain.
fn tls_problem(e: &reqwest::Error, url: &Url) -> Option<String> {
    let t = std::error::Error::source(e).and_then(rustls_cause)?;
    let host = url.host_str().unwrap_or("?");
    let port = url.port_or_known_default().unwrap_or(443);
    Some(match t {
        rustls::Error::InvalidCertificate(cert) => {
            let hint = match cert {
                rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::BadSignature => {
                    "; if the API uses a private CA, name its PEM file in source.http.ca_file"
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "; the certificate is for another name: use the host name it was issued for"
                }
                _ => "",
            };
            format!(
                "GET {}: the TLS certificate of {host}:{port} does not verify: {t}{hint}",
                redact(url)
            )
        }
        rustls::Error::InvalidMessage(_) => format!(
            "GET {}: TLS handshake with {host}:{port} failed: {t} (is it a plain http:// server?)",
            redact(url)
        ),
        _ => format!(
            "GET {}: TLS handshake with {host}:{port} failed: {t}",
            redact(url)
        ),
    })
}

/// The rustls error in a chain. hyper wraps it in `io::Error`s, whose `source` skips the error
/// they hold, so those are opened with `get_ref`.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return rustls_cause(inner);
    }
    e.source().and_then(rustls_cause)
}

/// The error chain in one line: reqwest's top message alone hides the cause.
fn describe(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A URL for messages and logs: no user info (query parameters are the plan's and not secret).
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:40 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO), "a past date");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn rate_limit_spaces_requests() {
        let r = RateLimit {
            interval: Duration::from_millis(100),
            next: Mutex::new(Instant::now()),
        };
        assert!(r.reserve() < Duration::from_millis(10));
        let second = r.reserve();
        assert!(second > Duration::from_millis(80), "{second:?}");
        assert!(r.reserve() > Duration::from_millis(180));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        // Never set anywhere: the error must name the variable, not a value.
        let name = "DECANT_HTTP_CLIENT_TEST_TOKEN";
        let o = HttpOptions {
            auth: Some(HttpAuth::Bearer {
                token_env: name.into(),
            }),
            ..Default::default()
        };
        let err = ApiClient::new(&o).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("not set"), "{err}");
        let s = Secret(HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(format!("{s:?}"), "***");
    }
}
