//! NBD URIs, as qemu, nbdkit and libnbd write them: `nbd://host[:port][/export]` over
//! TCP and `nbd+unix:///export?socket=PATH` over a Unix socket.

use std::fmt;
use std::path::PathBuf;

/// The IANA port of NBD.
pub const DEFAULT_PORT: u16 = 10809;

/// Where an NBD server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// TCP: host name or address, and port.
    Tcp {
        /// Host name, IPv4 address, or IPv6 address without brackets.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// A parsed NBD URI: the server's address and the export's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NbdUri {
    /// Where the server listens.
    pub address: Address,
    /// The export name (may be empty: the server's default export).
    pub export: String,
}

/// Why a string is not an NBD URI swapdio can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// Not `nbd://` or `nbd+unix://`.
    #[error("not an NBD URI (expected nbd://host[:port]/export or nbd+unix:///export?socket=PATH)")]
    NotNbd,
    /// `nbds://` (TLS) and other transports.
    #[error("unsupported NBD transport {0:?} (supported: nbd, nbd+unix)")]
    Unsupported(String),
    /// A malformed part.
    #[error("invalid NBD URI: {0}")]
    Invalid(&'static str),
}

/// Whether `s` looks like an NBD URI (it starts with an `nbd` scheme), so a command can
/// tell a target's kind before parsing it.
pub fn is_nbd_uri(s: &str) -> bool {
    let lower = s.get(..4).map(str::to_ascii_lowercase);
    lower.as_deref() == Some("nbd:") || lower.as_deref() == Some("nbd+") || lower.as_deref() == Some("nbds")
}

fn percent_decode(s: &str) -> Result<String, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(UriError::Invalid("truncated percent escape"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::Invalid("bad percent escape"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::Invalid("export name is not UTF-8"))
}

impl NbdUri {
    /// Parses an NBD URI.
    pub fn parse(s: &str) -> Result<NbdUri, UriError> {
        let (scheme, rest) = s.split_once("://").ok_or(UriError::NotNbd)?;
        let scheme = scheme.to_ascii_lowercase();
        let unix = match scheme.as_str() {
            "nbd" => false,
            "nbd+unix" => true,
            s if s.starts_with("nbd") => return Err(UriError::Unsupported(s.to_string())),
            _ => return Err(UriError::NotNbd),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let export = percent_decode(path)?;
        let mut socket = None;
        for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("socket", v)) => socket = Some(PathBuf::from(percent_decode(v)?)),
                // Other query keys (tls-certificates, ...) do not apply without TLS.
                _ => return Err(UriError::Invalid("unknown query parameter (only socket= is supported)")),
            }
        }
        if unix {
            if !authority.is_empty() {
                return Err(UriError::Invalid("nbd+unix:// takes no host (write nbd+unix:///export?socket=PATH)"));
            }
            let socket = socket.ok_or(UriError::Invalid("nbd+unix:// needs ?socket=PATH"))?;
            return Ok(NbdUri { address: Address::Unix(socket), export });
        }
        if socket.is_some() {
            return Err(UriError::Invalid("socket= needs nbd+unix://"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(UriError::Invalid("unclosed [ in IPv6 host"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UriError::Invalid("garbage after ]"))?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UriError::Invalid("nbd:// needs a host"));
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| UriError::Invalid("bad port"))?,
        };
        Ok(NbdUri { address: Address::Tcp { host: host.to_string(), port }, export })
    }
}

impl fmt::Display for NbdUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.address {
            Address::Tcp { host, port } if host.contains(':') => write!(f, "nbd://[{host}]:{port}/{}", self.export),
            Address::Tcp { host, port } => write!(f, "nbd://{host}:{port}/{}", self.export),
            Address::Unix(p) => write!(f, "nbd+unix:///{}?socket={}", self.export, p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_uris_take_host_port_and_export() {
        let u = NbdUri::parse("nbd://localhost:10810/swap").unwrap();
        assert_eq!(u.address, Address::Tcp { host: "localhost".into(), port: 10810 });
        assert_eq!(u.export, "swap");
        let u = NbdUri::parse("nbd://10.0.0.1").unwrap();
        assert_eq!(u.address, Address::Tcp { host: "10.0.0.1".into(), port: DEFAULT_PORT });
        assert_eq!(u.export, "");
        let u = NbdUri::parse("nbd://[::1]:999/a%20b").unwrap();
        assert_eq!(u.address, Address::Tcp { host: "::1".into(), port: 999 });
        assert_eq!(u.export, "a b");
        assert_eq!(u.to_string(), "nbd://[::1]:999/a b");
    }

    #[test]
    fn unix_uris_need_a_socket_and_no_host() {
        let u = NbdUri::parse("nbd+unix:///exp?socket=/tmp/s.sock").unwrap();
        assert_eq!(u.address, Address::Unix("/tmp/s.sock".into()));
        assert_eq!(u.export, "exp");
        assert!(NbdUri::parse("nbd+unix:///exp").is_err());
        assert!(NbdUri::parse("nbd+unix://host/exp?socket=/s").is_err());
    }

    #[test]
    fn other_schemes_are_refused_with_a_reason() {
        assert_eq!(NbdUri::parse("/swapfile"), Err(UriError::NotNbd));
        assert_eq!(NbdUri::parse("http://x/"), Err(UriError::NotNbd));
        assert!(matches!(NbdUri::parse("nbds://x/"), Err(UriError::Unsupported(_))));
        assert!(NbdUri::parse("nbd://host:notaport/x").is_err());
        assert!(NbdUri::parse("nbd:///x").is_err());
        assert!(is_nbd_uri("nbd://h/e") && is_nbd_uri("NBD+unix:///e?socket=s") && !is_nbd_uri("./nbd"));
    }
}
