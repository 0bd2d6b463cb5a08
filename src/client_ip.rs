//! The browser's address: the peer, or, when the peer is a trusted load balancer
//! (`TRUSTED_PROXIES`), the nearest untrusted address in its `X-Forwarded-For`. A header sent
//! by anyone else is ignored, so a browser cannot choose the address we log and forward.

use std::{any::Any, cell::OnceCell, net::IpAddr};

use actix_web::{dev::Extensions, http::header::HeaderValue, HttpRequest};
use ipnet::IpNet;

/// The peer's address as a header value, made on the connection's first proxied request
/// and kept for the rest: a browser sends many requests on one connection.
#[derive(Default)]
struct PeerHeader(OnceCell<Option<HeaderValue>>);

/// Gives a new connection its (empty) place for [`PeerHeader`] (for `HttpServer::on_connect`).
pub fn on_connect(_: &dyn Any, data: &mut Extensions) {
    data.insert(PeerHeader::default());
}

/// [`client_ip`] as an `X-Forwarded-For` value.
pub fn client_ip_header(req: &HttpRequest, trusted: &[IpNet]) -> Option<HeaderValue> {
    let peer = req.peer_addr()?.ip();
    match req.conn_data::<PeerHeader>() {
        // Only the peer's own address is the same for every request on the connection.
        Some(PeerHeader(cell)) if !is_trusted(&peer, trusted) => {
            cell.get_or_init(|| header_value(peer)).clone()
        }
        _ => client_ip(req, trusted).and_then(header_value),
    }
}

fn is_trusted(ip: &IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

fn header_value(ip: IpAddr) -> Option<HeaderValue> {
    HeaderValue::from_str(&ip.to_string()).ok()
}

/// The client address of `req` given the trusted proxy ranges.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !is_trusted(&peer, trusted) {
        return Some(peer);
    }
    let hops: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Right to left: each trusted hop vouches for the one before it.
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip, trusted) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|n| n.parse().expect("net")).collect()
    }

    fn ip(req: TestRequest, trusted: &[&str]) -> String {
        let (req, trusted) = (req.to_http_request(), nets(trusted));
        let text = client_ip(&req, &trusted)
            .map(|a| a.to_string())
            .unwrap_or_default();
        // The header the proxy forwards says the same.
        let header = client_ip_header(&req, &trusted);
        assert_eq!(header.as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""), text);
        text
    }

    fn from(peer: &str, xff: &[&str]) -> TestRequest {
        let peer: IpAddr = peer.parse().expect("peer");
        let mut r = TestRequest::default().peer_addr((peer, 40000).into());
        for v in xff {
            r = r.append_header(("X-Forwarded-For", *v));
        }
        r
    }

    #[test]
    fn a_browser_cannot_choose_its_address() {
        assert_eq!(
            ip(from("203.0.113.7", &["1.2.3.4"]), &["10.0.0.0/8"]),
            "203.0.113.7"
        );
        assert_eq!(ip(from("203.0.113.7", &["1.2.3.4"]), &[]), "203.0.113.7");
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "192.0.2.1/32"];
        // The browser's own (forged) value is left of the address the proxy saw.
        let forged = from("10.1.2.3", &["6.6.6.6, 198.51.100.9"]);
        assert_eq!(ip(forged, &trusted), "198.51.100.9");
        // Two proxies, over two header lines.
        let chain = from("10.1.2.3", &["198.51.100.9", "192.0.2.1"]);
        assert_eq!(ip(chain, &trusted), "198.51.100.9");
        // Nothing forwarded: the proxy itself.
        assert_eq!(ip(from("10.1.2.3", &[]), &trusted), "10.1.2.3");
        // Garbage stops the walk at the last address that parsed.
        assert_eq!(
            ip(from("10.1.2.3", &["nonsense, 10.9.9.9"]), &trusted),
            "10.9.9.9"
        );
        // IPv6.
        assert_eq!(ip(from("::1", &["2001:db8::5"]), &["::1/128"]), "2001:db8::5");
    }
}
