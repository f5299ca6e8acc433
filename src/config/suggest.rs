//! Unknown keys: the warning that names the file and, when one is close, the known key the
//! operator probably meant (`server.acessLog` → `server.accessLog`, top-level `workers` →
//! `server.workers`).
//!
//! The known keys are read from the raw mirror's serde derives (`fields`), so a key added to
//! `raw` is suggested without being listed twice.

use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::raw::{
    RawBindObject, RawConfig, RawEndpoint, RawHealthCheck, RawListen, RawLogging, RawLruCache,
    RawMetrics, RawServer,
};

/// `<file>: unknown key <key> ignored`, with `; did you mean <known>?` when one is close.
pub(super) fn unknown_key_warning(source: &Path, key: &str) -> String {
    let file = source.display();
    match closest_known(key) {
        Some(known) => format!("{file}: unknown key {key} ignored; did you mean {known}?"),
        None => format!("{file}: unknown key {key} ignored"),
    }
}

/// The known key nearest to `key` (`http.bind[0].adress` → `http.bind[0].address`): in the same
/// section within a few edits (a third of the name), else the nearest in another section.
pub(super) fn closest_known(key: &str) -> Option<String> {
    let (parent, leaf) = match key.rfind('.') {
        Some(dot) => (&key[..dot], &key[dot + 1..]),
        None => ("", key),
    };
    let wanted = normalize(leaf);
    let allowed = (wanted.chars().count() / 3).max(1);
    let near = |section: &str| {
        section_fields(section)
            .iter()
            .map(|field| (distance(&wanted, &normalize(field)), *field))
            .filter(|(d, _)| *d <= allowed)
            .min_by_key(|(d, _)| *d)
    };
    let parent_section = without_indexes(parent);
    if let Some((_, field)) = near(&parent_section) {
        return Some(join(parent, field));
    }
    SECTIONS
        .iter()
        .filter(|section| **section != parent_section)
        .filter_map(|section| near(section).map(|(d, field)| (d, join(section, field))))
        .min_by_key(|(d, _)| *d)
        .map(|(_, key)| key)
}

/// The sections an operator writes keys into, parents first (for the cross-section lookup, the
/// first of equally near sections wins).
const SECTIONS: [&str; 13] = [
    "",
    "server",
    "http",
    "https",
    "http.bind",
    "https.bind",
    "server.lruCache",
    "logging",
    "logging.web",
    "logging.udp",
    "metrics",
    "server.https",
    "healthCheck",
];

fn section_fields(section: &str) -> &'static [&'static str] {
    match section {
        "" => fields::<RawConfig>(),
        "server" => fields::<RawServer>(),
        "server.lruCache" => fields::<RawLruCache>(),
        "http" | "https" | "server.https" => fields::<RawListen>(),
        "http.bind" | "https.bind" | "server.address" | "server.https.bind" => {
            fields::<RawBindObject>()
        }
        "logging" => fields::<RawLogging>(),
        "logging.web" | "logging.udp" => fields::<RawEndpoint>(),
        "metrics" => fields::<RawMetrics>(),
        "healthCheck" => fields::<RawHealthCheck>(),
        _ => &[],
    }
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// `http.bind[0]` → `http.bind`.
fn without_indexes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Case and word separators do not count: `access_log` and `AccessLog` both mean `accessLog`.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The key names a derived `Deserialize` struct accepts (after `rename`), as serde hands them to
/// `deserialize_struct`.
fn fields<T: Deserialize<'static>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // Always an error: the recorder stops the derive as soon as it has named its fields.
    let _ = T::deserialize(FieldRecorder(&mut names));
    names
}

struct FieldRecorder<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldRecorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_the_serde_names() {
        let server = fields::<RawServer>();
        assert!(server.contains(&"deadBackendTTL") && server.contains(&"accessLog"));
        assert!(fields::<RawConfig>().contains(&"redisMasterHost"));
    }

    #[test]
    fn a_typo_suggests_the_key_in_the_same_section() {
        let near = |key| closest_known(key);
        assert_eq!(near("server.acessLog").as_deref(), Some("server.accessLog"));
        assert_eq!(near("server.workrs").as_deref(), Some("server.workers"));
        assert_eq!(
            near("server.dead_backend_ttl").as_deref(),
            Some("server.deadBackendTTL")
        );
        assert_eq!(
            near("http.bind[1].adress").as_deref(),
            Some("http.bind[1].address")
        );
        assert_eq!(near("drivers").as_deref(), Some("driver"));
        // serde_ignored reports an unknown section, not the keys inside it.
        assert_eq!(near("sever").as_deref(), Some("server"));
        assert_eq!(
            near("server.lruCache.sise").as_deref(),
            Some("server.lruCache.size")
        );
    }

    #[test]
    fn a_key_in_the_wrong_section_suggests_where_it_belongs() {
        assert_eq!(closest_known("workers").as_deref(), Some("server.workers"));
        assert_eq!(
            closest_known("http.accessLog").as_deref(),
            Some("server.accessLog")
        );
        assert_eq!(
            closest_known("accesLog").as_deref(),
            Some("server.accessLog")
        );
    }

    #[test]
    fn nothing_close_suggests_nothing() {
        assert_eq!(closest_known("top"), None);
        assert_eq!(closest_known("server.fooBar"), None);
    }

    #[test]
    fn warning_names_the_file() {
        assert_eq!(
            unknown_key_warning(Path::new("/etc/hipache.json"), "server.wokers"),
            "/etc/hipache.json: unknown key server.wokers ignored; did you mean server.workers?"
        );
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
