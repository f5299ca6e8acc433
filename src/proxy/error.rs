//! `ProxyError`: every way a request can fail, each knowing its consequences.
//!
//! A variant answers four questions: which status the client gets, whether the backend is now
//! dead, whether the request may go to another backend, and what to log (`reason`, which is also
//! the `X-Debug-Error` value). Retryability is decided where the error is created.

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyError {
    /// The request has no `Host` header (nor an HTTP/2 authority).
    NoHost,
    /// No frontend list matches the host or its wildcards.
    NoFrontend,
    /// Every backend of the frontend is dead or was already tried.
    NoLiveBackend,
    /// The frontend lists backends, but none of them is a usable URL.
    BadBackendUrl,
    /// The route source could not answer and knows nothing about this host.
    RouteSourceUnavailable,
    /// The backend refused the connection.
    ConnectRefused,
    /// The backend did not accept the connection within `tcpTimeout`.
    ConnectTimeout,
    /// The backend accepted the request but sent no response head within `tcpTimeout`.
    BackendTimeout { replayable: bool },
    /// `maxSockets` connections to the backend stayed busy for `tcpTimeout`.
    SocketLimit,
    /// The TLS handshake with an `https://` backend failed (its certificate did not verify, it
    /// spoke no TLS, or it took longer than `tcpTimeout`): a backend failure, like a refusal.
    BackendTls(TlsFailure),
    /// The connection to the backend failed in another way (reset, bad response, ...).
    BackendIo { replayable: bool },
    /// A WebSocket the proxy opens for an HTTP/2 client was not accepted: the backend answered
    /// other than 101, or its 101 did not prove it read our handshake.
    UpgradeRefused,
}

impl ProxyError {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::NoHost | Self::NoFrontend => StatusCode::BAD_REQUEST,
            Self::BackendTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::NoLiveBackend
            | Self::BadBackendUrl
            | Self::RouteSourceUnavailable
            | Self::ConnectRefused
            | Self::ConnectTimeout
            | Self::BackendTls(_)
            | Self::SocketLimit
            | Self::BackendIo { .. }
            | Self::UpgradeRefused => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether the backend that produced this error leaves the rotation for `deadBackendTTL`.
    pub(crate) fn marks_dead(self) -> bool {
        matches!(
            self,
            Self::ConnectRefused
                | Self::ConnectTimeout
                | Self::BackendTls(_)
                | Self::BackendTimeout { .. }
        )
    }

    /// Whether another backend may be tried: nothing was consumed that cannot be sent again.
    pub(crate) fn is_retryable(self) -> bool {
        match self {
            Self::ConnectRefused
            | Self::ConnectTimeout
            | Self::BackendTls(_)
            | Self::SocketLimit => true,
            Self::BackendTimeout { replayable } | Self::BackendIo { replayable } => replayable,
            Self::NoHost
            | Self::NoFrontend
            | Self::NoLiveBackend
            | Self::BadBackendUrl
            | Self::RouteSourceUnavailable
            | Self::UpgradeRefused => false,
        }
    }

    /// Hipache's wording where it had one.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::NoHost => "no host header",
            Self::NoFrontend => "frontend not found",
            Self::NoLiveBackend => "Cannot find a valid backend",
            Self::BadBackendUrl => "backend is invalid",
            Self::RouteSourceUnavailable => "route source unavailable",
            Self::ConnectRefused => "connection refused",
            Self::ConnectTimeout => "connect timeout",
            Self::BackendTimeout { .. } => "backend timeout",
            Self::BackendTls(why) => why.reason(),
            Self::SocketLimit => "too many connections to backend",
            Self::BackendIo { .. } => "backend error",
            Self::UpgradeRefused => "backend refused the websocket",
        }
    }
}

/// Why the TLS handshake with an `https://` backend failed, decided from rustls' error kinds
/// (`proxy::pool`); each reads as a fixed text in `X-Debug-Error` and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsFailure {
    UnknownIssuer,
    /// webpki's `CaUsedAsEndEntity`: a CA certificate (often a self-signed one made with
    /// `CA:TRUE`) presented as the backend's own.
    CaUsedAsLeaf,
    NameMismatch,
    Expired,
    NotYetValid,
    Revoked,
    BadSignature,
    /// Any other certificate problem, or none presented.
    BadCertificate,
    /// The backend sent a TLS alert.
    AlertReceived,
    /// What came back is not TLS.
    NotTls,
    /// No protocol version or cipher suite in common.
    Incompatible,
    /// The URL's host cannot be a TLS server name.
    BadName,
    /// The connection closed or failed during the handshake.
    Closed,
    /// No handshake within `tcpTimeout`.
    Timeout,
    Other,
}

impl TlsFailure {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::UnknownIssuer => "backend tls handshake failed: certificate issuer unknown",
            Self::CaUsedAsLeaf => {
                "backend tls handshake failed: a CA certificate used as the backend's certificate"
            }
            Self::NameMismatch => {
                "backend tls handshake failed: certificate not valid for the backend's name"
            }
            Self::Expired => "backend tls handshake failed: certificate expired",
            Self::NotYetValid => "backend tls handshake failed: certificate not yet valid",
            Self::Revoked => "backend tls handshake failed: certificate revoked",
            Self::BadSignature => "backend tls handshake failed: certificate signature invalid",
            Self::BadCertificate => "backend tls handshake failed: certificate invalid",
            Self::AlertReceived => "backend tls handshake failed: the backend sent an alert",
            Self::NotTls => "backend tls handshake failed: the backend did not answer in TLS",
            Self::Incompatible => {
                "backend tls handshake failed: no TLS version or cipher suite in common"
            }
            Self::BadName => "backend tls handshake failed: the host is not a TLS server name",
            Self::Closed => "backend tls handshake failed: connection closed",
            Self::Timeout => "backend tls handshake failed: timeout",
            Self::Other => "backend tls handshake failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consequences_table() {
        use ProxyError::*;
        let rows = [
            (NoHost, 400, false, false),
            (NoFrontend, 400, false, false),
            (NoLiveBackend, 502, false, false),
            (BadBackendUrl, 502, false, false),
            (RouteSourceUnavailable, 502, false, false),
            (ConnectRefused, 502, true, true),
            (ConnectTimeout, 502, true, true),
            (BackendTimeout { replayable: true }, 504, true, true),
            (BackendTimeout { replayable: false }, 504, true, false),
            (BackendTls(TlsFailure::UnknownIssuer), 502, true, true),
            (SocketLimit, 502, false, true),
            (BackendIo { replayable: true }, 502, false, true),
            (BackendIo { replayable: false }, 502, false, false),
            (UpgradeRefused, 502, false, false),
        ];
        for (error, status, dead, retry) in rows {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.marks_dead(), dead, "{error:?}");
            assert_eq!(error.is_retryable(), retry, "{error:?}");
        }
    }
}
