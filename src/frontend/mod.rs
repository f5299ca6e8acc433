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

/// What an operator set for a backend, apart from anything the health checks say (HAProxy's
/// `set server ... state`): stored as the word of [`BackendState::as_str`] under its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BackendState {
    /// In rotation.
    Enabled,
    /// No new client is sent to it; a client whose sticky cookie names it keeps going there.
    Draining,
    /// No request goes to it (HAProxy's maintenance).
    Disabled,
}

impl BackendState {
    /// The stored word: `drain`, `disable`, or `enable` (which is stored as no entry at all).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enable",
            Self::Draining => "drain",
            Self::Disabled => "disable",
        }
    }

    /// The state a stored word stands for; `None` for a word this version does not know, which
    /// leaves the backend enabled.
    pub(crate) fn parse(word: &str) -> Option<Self> {
        [Self::Enabled, Self::Draining, Self::Disabled]
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(word.trim()))
    }

    /// How `frontend show` and `--json` name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Draining => "draining",
            Self::Disabled => "disabled",
        }
    }
}

/// The backends of a frontend that an operator took out of rotation, by index (see
/// [`Backend::index`]). Resolved from URLs when the routes are read, so an edit of the list
/// that moves indexes cannot move a state onto another backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Held {
    pub(crate) draining: Vec<usize>,
    pub(crate) disabled: Vec<usize>,
}

impl Held {
    /// The indexes of `backends` whose URL, in any spelling (`http://a:80` is `http://a:80/`),
    /// has a state among `states` (`(url, word)` pairs as stored). Unknown words and URLs that
    /// name no backend are ignored.
    pub(crate) fn resolve<'s>(
        backends: &[Backend],
        states: impl IntoIterator<Item = (&'s str, &'s str)>,
    ) -> Self {
        let mut held = Self::default();
        for (url, word) in states {
            let (Ok(url), Some(state)) = (BackendUrl::parse(url), BackendState::parse(word)) else {
                continue;
            };
            let indexes = backends
                .iter()
                .filter(|backend| backend.url.as_str() == url.as_str())
                .map(|backend| backend.index);
            match state {
                BackendState::Enabled => {}
                BackendState::Draining => held.draining.extend(indexes),
                BackendState::Disabled => held.disabled.extend(indexes),
            }
        }
        for indexes in [&mut held.draining, &mut held.disabled] {
            indexes.sort_unstable();
            indexes.dedup();
        }
        held
    }

    /// The state of the backend at `index`.
    pub(crate) fn state_of(&self, index: usize) -> BackendState {
        if self.disabled.contains(&index) {
            BackendState::Disabled
        } else if self.draining.contains(&index) {
            BackendState::Draining
        } else {
            BackendState::Enabled
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.draining.is_empty() && self.disabled.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_resolved_by_url_in_any_spelling() {
        let list: Vec<String> = ["site", "http://a:1", "http://b:2", "http://c:3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let frontend = Frontend::from_list("x.test", &list, |_, _| {}).unwrap();
        let held = Held::resolve(
            &frontend.backends,
            [
                ("http://A:1/", "drain"),
                ("http://c:3", "DISABLE"),
                ("http://b:2", "enable"),
                ("http://gone:9", "disable"),
                ("http://b:2", "sleep"),
                ("not a url", "disable"),
            ],
        );
        assert_eq!(held.draining, [0]);
        assert_eq!(held.disabled, [2]);
        assert_eq!(held.state_of(1), BackendState::Enabled);
        assert_eq!(held.state_of(2), BackendState::Disabled);
        assert!(Held::resolve(&frontend.backends, []).is_empty());
    }

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
