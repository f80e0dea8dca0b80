//! Request headers shared by push and query: tenant, auth, extra headers.

use crate::config::{Auth, Endpoint};
use crate::error::{Error, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};

pub(crate) const TENANT_HEADER: &str = "X-Scope-OrgID";

/// Headers sent with every request (auth is added per request).
pub(crate) fn default_headers(endpoint: &Endpoint) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("skald-client/", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(tenant) = &endpoint.tenant {
        let value = HeaderValue::from_str(tenant)
            .map_err(|_| Error::Config(format!("tenant {tenant:?} is not a valid header value")))?;
        headers.insert(TENANT_HEADER, value);
    }
    for (name, value) in &endpoint.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::Config(format!("{name:?} is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::Config(format!("{value:?} is not a valid header value")))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

pub(crate) fn authorize_blocking(
    request: reqwest::blocking::RequestBuilder,
    endpoint: &Endpoint,
) -> reqwest::blocking::RequestBuilder {
    match &endpoint.auth {
        None => request,
        Some(Auth::Bearer(token)) => request.bearer_auth(token),
        Some(Auth::Basic { user, password }) => request.basic_auth(user, Some(password)),
    }
}

pub(crate) fn authorize(
    request: reqwest::RequestBuilder,
    endpoint: &Endpoint,
) -> reqwest::RequestBuilder {
    match &endpoint.auth {
        None => request,
        Some(Auth::Bearer(token)) => request.bearer_auth(token),
        Some(Auth::Basic { user, password }) => request.basic_auth(user, Some(password)),
    }
}

/// An error and its sources as one line ("error sending request: connection
/// refused").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
