//! One keep-alive HTTP/1.1 connection (hyper's `client::conn::http1`, no pool) and the
//! prepared requests sent on it. A connection that breaks or that the server closes is
//! opened again before the next request.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::http::HeaderValue;
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

/// A complete answer: status and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The response status.
    pub(crate) status: StatusCode,
    /// The response body, read to the end.
    pub(crate) body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The TCP connection could not be opened.
    Connect(std::io::Error),
    /// HTTP-level failure: closed connection, malformed response, reset.
    Http(hyper::Error),
    /// No complete answer within `--timeout`.
    Timeout,
}

impl Failure {
    /// A short name for the error table.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Http(_) => "http",
            Self::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Http(e) => write!(f, "http: {e}"),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

/// A keep-alive connection to the target, opened lazily.
pub(crate) struct Conn {
    /// The server's address.
    addr: SocketAddr,
    /// The open connection's request handle, if any.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The longest wait for one complete answer.
    timeout: Duration,
}

impl Conn {
    /// A connection to `addr`; nothing is opened until the first request.
    pub(crate) fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Self {
            addr,
            sender: None,
            timeout,
        }
    }

    /// Opens the TCP connection now (so that the first measured request does not pay it).
    pub(crate) async fn open(&mut self) -> Result<(), Failure> {
        self.sender = Some(connect(self.addr).await?);
        Ok(())
    }

    /// Sends one request and reads the whole answer, within the timeout. On failure the
    /// connection is dropped and the next request opens a new one.
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let result = match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        };
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    /// The exchange itself, without the timeout.
    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let sender = match &mut self.sender {
            Some(s) if !s.is_closed() => s,
            slot => slot.insert(connect(self.addr).await?),
        };
        sender.ready().await.map_err(Failure::Http)?;
        let response = sender.send_request(request).await.map_err(Failure::Http)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(Failure::Http)?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// Opens a TCP connection (no Nagle delay) and runs hyper's connection task on the runtime.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let stream = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
    stream.set_nodelay(true).map_err(Failure::Connect)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Failure::Http)?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped; the next
        // request notices through `is_closed` or its own error.
        let _ = connection.await;
    });
    Ok(sender)
}

/// A request prepared once and built again for every send (cheap clones).
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    /// The method.
    method: Method,
    /// The origin-form target (`/path?query`).
    uri: Uri,
    /// `Host` and the scenario's headers.
    headers: HeaderMap,
    /// The body (empty for GET).
    body: Bytes,
}

impl RequestSpec {
    /// `GET path` on the target.
    pub(crate) fn get(target: &Target, path: &str) -> Result<Self, String> {
        Self::new(target, Method::GET, path, Bytes::new())
    }

    /// `POST path` with an `application/x-www-form-urlencoded` body of `pairs`.
    pub(crate) fn post_form(
        target: &Target,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut spec = Self::new(target, Method::POST, path, form_body(pairs))?;
        spec.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        Ok(spec)
    }

    /// A request with `Host` set and no other header.
    fn new(target: &Target, method: Method, path: &str, body: Bytes) -> Result<Self, String> {
        let uri: Uri = target
            .path(path)
            .parse()
            .map_err(|e| format!("bad request path {path:?}: {e}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host.clone());
        Ok(Self {
            method,
            uri,
            headers,
            body,
        })
    }

    /// Adds `Authorization: Bearer <token>` (RFC 6750 §2.1).
    pub(crate) fn bearer(mut self, token: &str) -> Result<Self, String> {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        self.headers.insert(AUTHORIZATION, value);
        Ok(self)
    }

    /// Adds HTTP Basic client authentication: both parts form-encoded, then base64
    /// (RFC 6749 §2.3.1).
    pub(crate) fn basic(mut self, client_id: &str, secret: &str) -> Result<Self, String> {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let raw = format!("{}:{}", encode(client_id), encode(secret));
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let value = HeaderValue::from_str(&value)
            .map_err(|_| "the client credentials are not a valid header value".to_owned())?;
        self.headers.insert(AUTHORIZATION, value);
        Ok(self)
    }

    /// The same request with another form body (the refresh chain's next token).
    pub(crate) fn with_form(&self, pairs: &[(&str, &str)]) -> Self {
        Self {
            body: form_body(pairs),
            ..self.clone()
        }
    }

    /// A fresh `hyper` request.
    pub(crate) fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// `application/x-www-form-urlencoded` serialisation of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> Bytes {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        form.append_pair(name, value);
    }
    Bytes::from(form.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Basic credentials are form-encoded before base64, as RFC 6749 §2.3.1 asks.
    #[tokio::test]
    async fn basic_credentials_are_form_encoded() {
        let target = Target::resolve("http://127.0.0.1:9").await.unwrap();
        let spec = RequestSpec::get(&target, "/x")
            .unwrap()
            .basic("svc", "a:b c")
            .unwrap();
        let header = spec.build().headers()[AUTHORIZATION].clone();
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(decoded, b"svc:a%3Ab+c");
    }

    /// Form bodies are URL-encoded.
    #[test]
    fn form_bodies_are_encoded() {
        let body = form_body(&[("grant_type", "password"), ("password", "p&q=r")]);
        assert_eq!(&body[..], b"grant_type=password&password=p%26q%3Dr");
    }
}
