//! The request a handler sees: the HTTP parts, the streaming body, the client address and the
//! item name the router found in the path.

use crate::items::ItemName;
use http::{HeaderMap, Method, Uri, header};
use hyper::body::Incoming;
use std::net::IpAddr;

pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Incoming,
    /// The client: the peer, or what a trusted proxy says in `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Over TLS, or from a trusted proxy that says it terminated TLS (`X-Forwarded-Proto`).
    pub secure: bool,
    /// Set for item routes (`/<name>/...`, `/apis/rest/items/<name>/...`).
    pub name: Option<ItemName>,
}

impl Request {
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// First value of a query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        query_param(&self.uri, key)
    }

    /// Whether the client asked for JSON (`Accept: application/json` without preferring HTML).
    pub fn wants_json(&self) -> bool {
        accepts_json(&self.headers)
    }

    pub fn user_agent(&self) -> String {
        self.header(header::USER_AGENT)
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header(header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse().ok())
    }

    /// The item name from the route. Only item routes call this, and the router always sets it.
    pub fn item_name(&self) -> Result<ItemName, super::AppError> {
        self.name.clone().ok_or(super::AppError::NotFound)
    }
}

pub fn query_param(uri: &Uri, key: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

pub fn accepts_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}
