//! Every request the gateway itself makes (OpenID discovery and keys, the token endpoint,
//! SAML metadata, Microsoft Graph) goes through here: the answer is read while it streams,
//! with a hard byte cap, so a hostile or broken peer sending an endless or huge body (chunked,
//! without Content-Length) costs at most the cap in memory; the client's total timeout bounds
//! the time. Callers keep their last good copy when a fetch fails.

use std::time::Duration;

/// A client for the gateway's own back-channel requests: no redirects followed (SSRF, token
/// leaks), a total time limit that covers reading the body, and a connect limit.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .build()
        .map_err(|e| e.to_string())
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the answer failed: {0}")]
    Read(#[from] reqwest::Error),
}

/// The body of `resp`, at most `cap` bytes: refused as soon as the announced length or the
/// bytes received exceed it, before the rest is read.
pub(crate) async fn body(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge(cap));
    }
    let mut out = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge(cap));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The most a token endpoint's answer may weigh (ID token, access and refresh tokens).
pub(crate) const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

/// An HTTP client for `openidconnect`'s requests (the code exchange) that reads answers with
/// `body`'s cap instead of whole.
pub(crate) fn oauth_client(
    http: &reqwest::Client,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<openidconnect::HttpResponse, OAuthError>> + Send>,
> + '_ {
    move |req: openidconnect::HttpRequest| {
        let http = http.clone();
        Box::pin(async move {
            let (parts, body_bytes) = req.into_parts();
            let mut rb = http
                .request(parts.method, parts.uri.to_string())
                .body(body_bytes);
            for (name, value) in &parts.headers {
                rb = rb.header(name, value);
            }
            let resp = rb.send().await.map_err(ReadError::Read)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = body(resp, MAX_TOKEN_RESPONSE).await?;
            let mut out = http::Response::builder().status(status);
            if let Some(h) = out.headers_mut() {
                *h = headers;
            }
            out.body(bytes).map_err(|e| OAuthError(e.to_string()))
        })
    }
}

/// An error of `oauth_client`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct OAuthError(String);

impl From<ReadError> for OAuthError {
    fn from(e: ReadError) -> Self {
        OAuthError(e.to_string())
    }
}
