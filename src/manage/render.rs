//! What `frontend ls` and `frontend show` print (pure): aligned columns for people, one item per
//! line for `grep` and `awk`.

use std::fmt::Write as _;

use crate::routes::BackendUrl;

use super::edit::HostRoutes;

/// One line of `frontend ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) host: String,
    pub(crate) id: String,
    /// Entries after the id, usable or not.
    pub(crate) backends: usize,
}

/// `HOST  ID  N backend(s)`, sorted by host.
pub(crate) fn frontends(summaries: &[Summary]) -> String {
    let mut sorted: Vec<&Summary> = summaries.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    let host_width = sorted.iter().map(|s| s.host.len()).max().unwrap_or(0);
    let id_width = sorted.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for summary in sorted {
        let plural = if summary.backends == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{:host_width$}  {:id_width$}  {} backend{plural}",
            summary.host, summary.id, summary.backends
        );
    }
    out
}

/// The frontend's id, then one line per backend: index, URL, state.
pub(crate) fn frontend(host: &str, routes: &HostRoutes) -> String {
    let id = routes.list.first().map_or("", String::as_str);
    let entries = routes.list.get(1..).unwrap_or_default();
    let url_width = entries.iter().map(String::len).max().unwrap_or(0);
    let mut out = format!("{host}  id {id}\n");
    for (index, entry) in entries.iter().enumerate() {
        let state = match BackendUrl::parse(entry) {
            Err(error) => format!("unusable: {error}"),
            Ok(_) if routes.dead.contains(&index) => format!("dead ({})", ttl(routes)),
            Ok(_) => "live".to_owned(),
        };
        let _ = writeln!(out, "  {index}  {entry:url_width$}  {state}");
    }
    let orphans: Vec<String> = routes
        .dead
        .iter()
        .filter(|&&index| index >= entries.len())
        .map(usize::to_string)
        .collect();
    if !orphans.is_empty() {
        let _ = writeln!(
            out,
            "  dead marks without a backend: {} ({})",
            orphans.join(", "),
            ttl(routes)
        );
    }
    out
}

fn ttl(routes: &HostRoutes) -> String {
    match routes.dead_ttl {
        // Round up: "0 s left" would read as already expired.
        Some(left) => format!("{} s left", left.as_millis().div_ceil(1000)),
        None => "no expiry".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ls_is_sorted_and_aligned() {
        let summaries = [
            Summary {
                host: "www.example.com".into(),
                id: "site".into(),
                backends: 2,
            },
            Summary {
                host: "*".into(),
                id: "catch-all".into(),
                backends: 1,
            },
        ];
        assert_eq!(
            frontends(&summaries),
            "*                catch-all  1 backend\n\
             www.example.com  site       2 backends\n"
        );
        assert_eq!(frontends(&[]), "");
    }

    #[test]
    fn show_gives_index_url_and_state_with_time_left() {
        let routes = HostRoutes {
            list: ["site", "http://10.0.0.1:80", "nonsense", "http://10.0.0.2"]
                .map(String::from)
                .to_vec(),
            dead: vec![2, 7],
            dead_ttl: Some(Duration::from_millis(26_100)),
        };
        assert_eq!(
            frontend("a.test", &routes),
            "a.test  id site\n  \
               0  http://10.0.0.1:80  live\n  \
               1  nonsense            unusable: missing scheme (expected http://host:port)\n  \
               2  http://10.0.0.2     dead (27 s left)\n  \
               dead marks without a backend: 7 (27 s left)\n"
        );
        let routes = HostRoutes {
            dead_ttl: None,
            dead: vec![0],
            ..routes
        };
        assert!(frontend("a.test", &routes).contains("0  http://10.0.0.1:80  dead (no expiry)"));
    }
}
