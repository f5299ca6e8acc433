//! A frontend as the proxy uses it: the list Hipache keeps under `frontend:<host>`, parsed into
//! its id and its usable backends. A leaf: route sources build these, the proxy, the balancer and
//! the metrics read them, and this module imports none of them.

mod backend_url;

use std::sync::Arc;

pub(crate) use backend_url::{BackendUrl, BackendUrlError};

/// One usable backend of a frontend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Backend {
    /// Position in the frontend list minus one: the number Hipache writes into `dead:<host>`.
    pub(crate) index: usize,
    pub(crate) url: BackendUrl,
}

/// A frontend list that matched a request host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frontend {
    /// The key that matched, without prefix: `www.example.com`, `*.example.com` or `*`.
    pub(crate) key: String,
    /// Element 0 of the list, the name shown in the access log. Shared, like `backends`, by
    /// every answer a source builds from the same list (see the Redis source's cache).
    pub(crate) id: Arc<str>,
    /// Entries that parse as backend URLs; unusable ones are skipped (and logged by the source).
    pub(crate) backends: Arc<[Backend]>,
    /// Number of backend entries in the list, usable or not, as Hipache publishes it.
    pub(crate) backend_count: usize,
}

impl Frontend {
    /// Builds a frontend from the raw list (`[id, url, url, ...]`); `None` for an empty list.
    /// Entries that are not URLs are reported through `on_bad_url` and left out, keeping the
    /// indexes of the others as in the list.
    pub(crate) fn from_list(
        key: &str,
        list: &[String],
        mut on_bad_url: impl FnMut(&str, BackendUrlError),
    ) -> Option<Self> {
        let (id, entries) = list.split_first()?;
        let backends: Vec<Backend> = entries
            .iter()
            .enumerate()
            .filter_map(|(index, text)| match BackendUrl::parse(text) {
                Ok(url) => Some(Backend { index, url }),
                Err(error) => {
                    on_bad_url(text, error);
                    None
                }
            })
            .collect();
        Some(Self {
            key: key.to_owned(),
            id: id.as_str().into(),
            backends: backends.into(),
            backend_count: entries.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontend_keeps_list_indexes_and_skips_bad_urls() {
        let list: Vec<String> = ["site", "http://a:1", "not a url", "http://c:3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut bad = Vec::new();
        let frontend = Frontend::from_list("x.test", &list, |t, _| bad.push(t.to_owned())).unwrap();
        assert_eq!(&*frontend.id, "site");
        assert_eq!(frontend.backend_count, 3);
        let indexes: Vec<_> = frontend.backends.iter().map(|b| b.index).collect();
        assert_eq!(indexes, [0, 2]);
        assert_eq!(bad, ["not a url"]);
        assert!(Frontend::from_list("x.test", &[], |_, _| {}).is_none());
    }
}
