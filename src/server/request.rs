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

/// The client address: the TCP peer, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` (read from the right) that is not itself a trusted proxy.
/// Anything a client could forge (the left part of the header) is never believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let mut client = peer;
    for hop in forwarded.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.1.1.1, 203.0.113.9, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let direct: IpAddr = "198.51.100.4".parse().unwrap();
        assert_eq!(
            client_ip(direct, &h, &trusted),
            direct,
            "a client cannot claim another address"
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        h.insert("x-forwarded-for", "garbage, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "10.0.0.3".parse::<IpAddr>().unwrap()
        );
    }
}
