//! What `frontend ls` and `frontend show` print (pure): aligned columns for people, one item per
//! line for `grep` and `awk`, or with `--json` one JSON document for programs. Everything read
//! from the store is escaped (`escape`) in the text forms: whoever can write Redis or the routes
//! file must not reach the operator's terminal with CR, LF or ESC. JSON has its own escaping
//! (control characters become `\u001b`), so its strings are the stored text, unaltered.

use std::fmt::Write as _;

use crate::escape::escaped;
use serde_json::{json, Value};

use crate::routes::{BackendState, BackendUrl, FRONTEND_PREFIX, STATE_PREFIX};

use super::edit::{Edit, HostRoutes};

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
    let rows: Vec<(String, String, usize)> = sorted
        .into_iter()
        .map(|s| (escaped(&s.host), escaped(&s.id), s.backends))
        .collect();
    let host_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let id_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (host, id, backends) in rows {
        let plural = if backends == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "{host:host_width$}  {id:id_width$}  {backends} backend{plural}"
        );
    }
    out
}

/// `[{"host": ..., "id": ..., "backends": n}, ...]`, sorted by host: one document.
pub(crate) fn frontends_json(summaries: &[Summary]) -> String {
    let mut sorted: Vec<&Summary> = summaries.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    let items: Vec<Value> = sorted
        .into_iter()
        .map(|s| json!({"host": s.host, "id": s.id, "backends": s.backends}))
        .collect();
    format!("{}\n", Value::Array(items))
}

/// `{"host", "id", "backends": [{"index", "url", "usable", "state", "dead"}], "dead_ttl_ms"}`:
/// one document, `state` being `enabled`, `draining` or `disabled` and `dead_ttl_ms` null when
/// the dead set has no expiry (or no key).
pub(crate) fn frontend_json(host: &str, routes: &HostRoutes) -> String {
    let id = routes.list.first().map_or("", String::as_str);
    let entries = routes.list.get(1..).unwrap_or_default();
    let states = routes.backend_states();
    let backends: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(index, url)| {
            let state = states.get(index).copied().unwrap_or(BackendState::Enabled);
            json!({
                "index": index,
                "url": url,
                "usable": BackendUrl::parse(url).is_ok(),
                "state": state.label(),
                "dead": routes.dead.contains(&index),
            })
        })
        .collect();
    let dead_ttl_ms = routes.dead_ttl.map(|ttl| ttl.as_millis() as u64);
    let document = json!({
        "host": host,
        "id": id,
        "backends": backends,
        "dead_ttl_ms": dead_ttl_ms,
    });
    format!("{document}\n")
}

/// The frontend's id, then one line per backend: index, URL, state (live or dead, then drained
/// or disabled when an operator said so).
pub(crate) fn frontend(host: &str, routes: &HostRoutes) -> String {
    let id = escaped(routes.list.first().map_or("", String::as_str));
    let entries = routes.list.get(1..).unwrap_or_default();
    let shown: Vec<String> = entries.iter().map(|entry| escaped(entry)).collect();
    let url_width = shown.iter().map(String::len).max().unwrap_or(0);
    let held = routes.backend_states();
    let mut out = format!("{}  id {id}\n", escaped(host));
    for (index, (entry, shown)) in entries.iter().zip(&shown).enumerate() {
        let mut state = match BackendUrl::parse(entry) {
            Err(error) => format!("unusable: {error}"),
            Ok(_) if routes.dead.contains(&index) => format!("dead ({})", ttl(routes)),
            Ok(_) => "live".to_owned(),
        };
        if let Some(held @ (BackendState::Draining | BackendState::Disabled)) = held.get(index) {
            state = format!("{state}, {}", held.label());
        }
        let _ = writeln!(out, "  {index}  {shown:url_width$}  {state}");
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

/// The one line an edit prints once written, naming the key it wrote.
pub(crate) fn done(host: &str, edit: &Edit) -> String {
    let key = format!("{FRONTEND_PREFIX}{}", escaped(host));
    match edit {
        Edit::AddFrontend { id, urls, replace } => {
            let verb = if *replace { "wrote" } else { "added" };
            let urls: Vec<String> = urls.iter().map(|url| escaped(url)).collect();
            format!(
                "{verb} {key} with id {} and backends {}\n",
                escaped(id),
                urls.join(" ")
            )
        }
        Edit::RemoveFrontend => format!("removed {key} and its dead marks\n"),
        Edit::AddBackend { url } => format!("added backend {} to {key}\n", escaped(url)),
        Edit::RemoveBackend { url } => format!("removed backend {} from {key}\n", escaped(url)),
        Edit::SetState { url, state } => {
            let key = format!("{STATE_PREFIX}{}", escaped(host));
            let url = BackendUrl::parse(url).map_or_else(|_| escaped(url), |u| escaped(u.as_str()));
            match state {
                BackendState::Enabled => format!("removed {url} from {key} (enabled)\n"),
                _ => format!("set {url} to {} in {key}\n", state.as_str()),
            }
        }
    }
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
            states: Vec::new(),
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

    #[test]
    fn show_adds_a_drained_or_disabled_state_and_json_holds_it_all() {
        let routes = HostRoutes {
            list: [
                "site",
                "http://10.0.0.1:80",
                "http://10.0.0.2:80",
                "http://10.0.0.3",
            ]
            .map(String::from)
            .to_vec(),
            dead: vec![1],
            dead_ttl: None,
            states: vec![
                ("http://10.0.0.1:80/".into(), "drain".into()),
                ("http://10.0.0.2:80".into(), "disable".into()),
            ],
        };
        let shown = frontend("a.test", &routes);
        assert!(
            shown.contains("0  http://10.0.0.1:80  live, draining\n"),
            "{shown}"
        );
        assert!(
            shown.contains("1  http://10.0.0.2:80  dead (no expiry), disabled\n"),
            "{shown}"
        );
        assert!(shown.contains("2  http://10.0.0.3     live\n"), "{shown}");
        let parsed: Value = serde_json::from_str(&frontend_json("a.test", &routes)).unwrap();
        assert_eq!(parsed["host"], "a.test");
        assert_eq!(parsed["id"], "site");
        let states: Vec<(&str, bool)> = (parsed["backends"].as_array().unwrap().iter())
            .map(|b| (b["state"].as_str().unwrap(), b["dead"].as_bool().unwrap()))
            .collect();
        assert_eq!(
            states,
            [("draining", false), ("disabled", true), ("enabled", false)]
        );
        assert_eq!(parsed["backends"][2]["url"], "http://10.0.0.3");
        assert_eq!(parsed["backends"][2]["index"], 2);
    }

    #[test]
    fn json_carries_the_stored_text_unaltered() {
        let id = "id\x1b]0;\"x\\\n";
        let summaries = [Summary {
            host: "a.test".into(),
            id: id.into(),
            backends: 1,
        }];
        let printed = frontends_json(&summaries);
        assert_eq!(printed.lines().count(), 1, "{printed}");
        let parsed: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(parsed[0]["id"], id);
        assert_eq!(parsed[0]["backends"], 1);
        assert!(printed.chars().all(|c| c == '\n' || !c.is_control()));
    }

    #[test]
    fn text_from_the_store_reaches_the_terminal_escaped() {
        let summaries = [Summary {
            host: "a\rb.test".into(),
            id: "id\x1b]0;owned\x07\n".into(),
            backends: 1,
        }];
        assert_eq!(
            frontends(&summaries),
            "a\\x0Db.test  id\\x1B]0;owned\\x07\\x0A  1 backend\n"
        );
        let routes = HostRoutes {
            list: ["\x1b[2Jsite", "http://10.0.0.1:80\r\nx"]
                .map(String::from)
                .to_vec(),
            dead: vec![],
            dead_ttl: None,
            states: Vec::new(),
        };
        let shown = frontend("a.test", &routes);
        assert!(
            shown.starts_with("a.test  id \\x1B[2Jsite\n  0  http://10.0.0.1:80\\x0D\\x0Ax  "),
            "{shown}"
        );
        assert!(
            shown.chars().all(|c| c == '\n' || !c.is_control()),
            "{shown}"
        );
    }
}
