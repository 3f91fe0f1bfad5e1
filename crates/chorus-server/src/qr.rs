//! QR codes for phones: `GET /qr` answers an SVG QR code of the URL phones open
//! ([`crate::ServerConfig::phone_url`]), and [`terminal`] draws the same code in Unicode half
//! blocks for `chorus serve` to print when it listens beyond loopback. [`lan_url`] picks the
//! address: the bound one, or for an unspecified bind (`0.0.0.0`, `::`) the machine's first
//! private IPv4 address (else its first non-loopback one).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcode::QrCode;
use qrcode::render::{svg, unicode};

use crate::{ApiError, AppState};

/// The characters a key keeps in a URL fragment; every other byte is percent-encoded.
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` percent-encoded for a URL fragment (RFC 3986 unreserved characters stay).
pub fn fragment_encode(text: &str) -> String {
    utf8_percent_encode(text, FRAGMENT).to_string()
}

/// `http://HOST:PORT/` for a server bound to `bind`: the bound address itself, or for an
/// unspecified one the machine's LAN address ([`lan_ip`]; loopback when it has none).
pub fn lan_url(bind: SocketAddr) -> String {
    let ip = if bind.ip().is_unspecified() { lan_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)) } else { bind.ip() };
    format!("http://{}/", SocketAddr::new(ip, bind.port()))
}

/// The machine's first private IPv4 address (10/8, 172.16/12, 192.168/16), else its first
/// non-loopback, non-link-local IPv4 one; `None` when it has neither (or the interfaces cannot
/// be listed).
pub fn lan_ip() -> Option<IpAddr> {
    let addrs: Vec<Ipv4Addr> = if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .filter_map(|i| match i.ip() {
            IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified() => Some(ip),
            _ => None,
        })
        .collect();
    addrs.iter().find(|ip| ip.is_private()).or(addrs.first()).map(|ip| IpAddr::V4(*ip))
}

/// The QR code of `url` drawn with Unicode half blocks (two rows of modules per line), light
/// modules as blocks so it reads on a dark terminal, with its quiet zone. `None` when `url` is
/// too long for a QR code.
pub fn terminal(url: &str) -> Option<String> {
    let code = QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .build(),
    )
}

/// Get a QR code of the server's URL
///
/// An SVG QR code (black on white, with its quiet zone) of the URL phones open: the server's LAN
/// address, or `--public-url`. It never contains an API key unless the server runs with
/// `--qr-with-key` (then the URL ends with `#key=KEY`).
#[utoipa::path(
    get,
    path = "/qr",
    operation_id = "getQrCode",
    tag = "health",
    responses(
        (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String),
    )
)]
pub(crate) async fn svg(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let url = state.config.phone_url(true);
    let code = QrCode::new(url.as_bytes())
        .map_err(|e| ApiError::internal(format!("cannot encode {} bytes as a QR code: {e}", url.len())))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    Ok(([(CONTENT_TYPE, "image/svg+xml"), (CACHE_CONTROL, "no-store")], image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_address_is_its_own_url() {
        assert_eq!(lan_url("127.0.0.1:4096".parse().unwrap()), "http://127.0.0.1:4096/");
        assert_eq!(lan_url("192.168.1.20:80".parse().unwrap()), "http://192.168.1.20:80/");
        assert_eq!(lan_url("[fd00::1]:4096".parse().unwrap()), "http://[fd00::1]:4096/");
    }

    #[test]
    fn an_unspecified_bind_names_a_reachable_address() {
        let url = lan_url("0.0.0.0:4096".parse().unwrap());
        assert!(!url.contains("0.0.0.0"), "{url}");
        assert!(url.ends_with(":4096/"), "{url}");
    }

    #[test]
    fn keys_are_encoded_for_a_fragment() {
        assert_eq!(fragment_encode("sk-abc_1.2~"), "sk-abc_1.2~");
        assert_eq!(fragment_encode("a b#c/é"), "a%20b%23c%2F%C3%A9");
    }

    #[test]
    fn the_terminal_code_has_rows() {
        let text = terminal("http://192.168.1.20:4096/").unwrap();
        assert!(text.lines().count() > 10, "{text}");
        assert!(text.contains('█') || text.contains('▀') || text.contains('▄'));
    }
}
