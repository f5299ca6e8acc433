//! Hipache's error pages: loaded once per configuration, answered by cloning `Bytes`.
//!
//! Lookup order is Hipache's: `<staticDir>/error_<code>.html`, else `error_default.html`, else the
//! plain-text reason. With `staticDir: null` the pages bundled from `static/` are used.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// Statuses the proxy can answer with a page of its own.
const CODES: [u16; 6] = [400, 500, 502, 503, 504, 404];

const BUNDLED: [(u16, &str); 3] = [
    (400, include_str!("../static/error_400.html")),
    (502, include_str!("../static/error_502.html")),
    (504, include_str!("../static/error_504.html")),
];
const BUNDLED_DEFAULT: &str = include_str!("../static/error_default.html");

/// The pages of one configuration generation.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPages {
    by_code: HashMap<u16, Bytes>,
    default: Option<Bytes>,
}

/// What the caller needs to build an error response body.
pub(crate) enum PageBody {
    Html(Bytes),
    Text(&'static str),
}

/// A response the proxy makes itself, whatever the client's protocol: its status, its page, and
/// the `X-Debug-Error` value when the client asked for debug headers.
pub(crate) struct Generated {
    pub(crate) status: StatusCode,
    pub(crate) page: PageBody,
    pub(crate) debug_error: Option<&'static str>,
    /// The `Location` of a redirect (`server.forceSecure`).
    pub(crate) location: Option<String>,
}

impl Generated {
    /// Hipache answers the `__ping__` probe as plain text.
    pub(crate) fn ping() -> Self {
        Self {
            status: StatusCode::OK,
            page: PageBody::Text("ok"),
            debug_error: None,
            location: None,
        }
    }

    /// A `301` to `location`, with no page.
    pub(crate) fn moved_permanently(location: String) -> Self {
        Self {
            status: StatusCode::MOVED_PERMANENTLY,
            page: PageBody::Text(""),
            debug_error: None,
            location: Some(location),
        }
    }
}

impl PageBody {
    pub(crate) fn size(&self) -> usize {
        match self {
            Self::Html(page) => page.len(),
            Self::Text(text) => text.len(),
        }
    }
}

impl ErrorPages {
    /// The pages shipped in `static/`, compiled into the binary.
    pub(crate) fn bundled() -> Self {
        let by_code = BUNDLED
            .iter()
            .map(|(code, page)| (*code, Bytes::from_static(page.as_bytes())));
        Self {
            by_code: by_code.collect(),
            default: Some(Bytes::from_static(BUNDLED_DEFAULT.as_bytes())),
        }
    }

    /// Reads the pages of `dir` once; missing files fall back as Hipache does at request time.
    pub(crate) fn load(dir: &Path) -> Self {
        let read = |name: &str| std::fs::read(dir.join(name)).ok().map(Bytes::from);
        let by_code = CODES
            .iter()
            .filter_map(|code| read(&format!("error_{code}.html")).map(|page| (*code, page)))
            .collect();
        Self {
            by_code,
            default: read("error_default.html"),
        }
    }

    pub(crate) fn from_config(static_dir: Option<&Path>) -> Self {
        static_dir.map_or_else(Self::bundled, Self::load)
    }

    /// The body for `status`: its page, the default page, or the reason as text.
    pub(crate) fn body(&self, status: StatusCode, reason: &'static str) -> PageBody {
        match self.by_code.get(&status.as_u16()).or(self.default.as_ref()) {
            Some(page) => PageBody::Html(page.clone()),
            None => PageBody::Text(reason),
        }
    }
}

/// An error response's head with Hipache's headers; the caller attaches the body.
pub(crate) fn response_head(status: StatusCode, body: &PageBody) -> http::response::Builder {
    let (content_type, length) = match body {
        PageBody::Html(page) => ("text/html", page.len()),
        PageBody::Text(text) => ("text/plain", text.len()),
    };
    let builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, HeaderValue::from_static(content_type))
        .header(header::CONTENT_LENGTH, HeaderValue::from(length));
    NO_CACHE.iter().fold(builder, |builder, (name, value)| {
        builder.header(*name, HeaderValue::from_static(value))
    })
}

/// Hipache's headers on every page of its own: never cached.
pub(crate) const NO_CACHE: [(&str, &str); 3] = [
    ("Cache-Control", "no-cache"),
    ("Pragma", "no-cache"),
    ("Expires", "-1"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn html(body: PageBody) -> String {
        match body {
            PageBody::Html(page) => String::from_utf8(page.to_vec()).unwrap(),
            PageBody::Text(text) => panic!("expected a page, got text {text:?}"),
        }
    }

    #[test]
    fn bundled_pages_carry_hipache_titles() {
        let pages = ErrorPages::bundled();
        assert!(
            html(pages.body(StatusCode::BAD_REQUEST, "x")).contains("No Application Configured")
        );
        assert!(
            html(pages.body(StatusCode::BAD_GATEWAY, "x")).contains("Application Not Responding")
        );
        assert!(html(pages.body(StatusCode::SERVICE_UNAVAILABLE, "x")).contains("Please try again"));
    }

    #[test]
    fn custom_dir_falls_back_to_default_then_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error_502.html"), "custom 502").unwrap();
        let pages = ErrorPages::load(dir.path());
        assert_eq!(html(pages.body(StatusCode::BAD_GATEWAY, "x")), "custom 502");
        assert!(matches!(
            pages.body(StatusCode::BAD_REQUEST, "no"),
            PageBody::Text("no")
        ));
        std::fs::write(dir.path().join("error_default.html"), "default").unwrap();
        let pages = ErrorPages::load(dir.path());
        assert_eq!(html(pages.body(StatusCode::BAD_REQUEST, "x")), "default");
    }
}
