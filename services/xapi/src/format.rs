//! The three statement formats of GET: `exact`, `ids` and `canonical`.

use serde_json::{Map, Value};

use crate::agent::ids_only;
use crate::validate::LANGUAGE_MAP_KEYS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementFormat {
    Exact,
    Ids,
    Canonical,
}

impl StatementFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "exact" => Some(Self::Exact),
            "ids" => Some(Self::Ids),
            "canonical" => Some(Self::Canonical),
            _ => None,
        }
    }
}

/// Applies a format to a stored statement. `languages` are the client's
/// `Accept-Language` preferences, best first.
pub fn apply(format: StatementFormat, statement: &Value, languages: &[String]) -> Value {
    match format {
        StatementFormat::Exact => statement.clone(),
        StatementFormat::Ids => ids_statement(statement),
        StatementFormat::Canonical => {
            let mut copy = statement.clone();
            filter_languages(&mut copy, languages);
            copy
        }
    }
}

fn ids_statement(statement: &Value) -> Value {
    let Some(object) = statement.as_object() else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let formatted = match key.as_str() {
            "actor" | "authority" => ids_only(value),
            "verb" => only_id(value),
            "object" => ids_object(value),
            "context" => ids_context(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), formatted);
    }
    Value::Object(out)
}

fn only_id(value: &Value) -> Value {
    let mut out = Map::new();
    if let Some(id) = value.get("id") {
        out.insert("id".to_owned(), id.clone());
    }
    Value::Object(out)
}

fn ids_object(object: &Value) -> Value {
    match object.get("objectType").and_then(Value::as_str).unwrap_or("Activity") {
        "Agent" | "Group" => ids_only(object),
        "SubStatement" => ids_statement(object),
        "StatementRef" => object.clone(),
        _ => {
            let mut out = Map::new();
            if let Some(id) = object.get("id") {
                out.insert("id".to_owned(), id.clone());
            }
            Value::Object(out)
        }
    }
}

fn ids_context(context: &Value) -> Value {
    let Some(object) = context.as_object() else {
        return context.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let formatted = match key.as_str() {
            "instructor" | "team" => ids_only(value),
            "contextActivities" => match value {
                Value::Object(lists) => Value::Object(
                    lists
                        .iter()
                        .map(|(k, list)| {
                            let ids = match list {
                                Value::Array(items) => Value::Array(items.iter().map(ids_object).collect()),
                                single => ids_object(single),
                            };
                            (k.clone(), ids)
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            "contextAgents" | "contextGroups" => match value {
                Value::Array(entries) => Value::Array(
                    entries
                        .iter()
                        .map(|entry| {
                            let mut entry = entry.clone();
                            for who in ["agent", "group"] {
                                if let Some(agent) = entry.get(who).map(ids_only) {
                                    entry[who] = agent;
                                }
                            }
                            entry
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), formatted);
    }
    Value::Object(out)
}

/// Keeps one entry in every language map: the best match for `languages`,
/// else `en-US`/`en`, else the first.
pub fn filter_languages(value: &mut Value, languages: &[String]) {
    match value {
        Value::Object(object) => {
            for (key, child) in object.iter_mut() {
                if key == "extensions" {
                    continue;
                }
                if LANGUAGE_MAP_KEYS.contains(&key.as_str())
                    && let Value::Object(map) = child
                {
                    if let Some(chosen) = choose_language(map, languages) {
                        let text = map.get(&chosen).cloned().unwrap_or(Value::Null);
                        let mut single = Map::new();
                        single.insert(chosen, text);
                        *map = single;
                    }
                    continue;
                }
                filter_languages(child, languages);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| filter_languages(item, languages)),
        _ => {}
    }
}

fn choose_language(map: &Map<String, Value>, languages: &[String]) -> Option<String> {
    for wanted in languages {
        if wanted == "*" {
            break;
        }
        if let Some(key) = map.keys().find(|k| k.eq_ignore_ascii_case(wanted)) {
            return Some(key.clone());
        }
        let prefix = wanted.split('-').next().unwrap_or(wanted);
        if let Some(key) = map.keys().find(|k| k.split('-').next().is_some_and(|p| p.eq_ignore_ascii_case(prefix))) {
            return Some(key.clone());
        }
    }
    for fallback in ["en-US", "en-GB", "en"] {
        if map.contains_key(fallback) {
            return Some(fallback.to_owned());
        }
    }
    map.keys().next().cloned()
}

/// Parses an `Accept-Language` header into tags, best first.
pub fn parse_accept_language(header: &str) -> Vec<String> {
    let mut tags: Vec<(f32, usize, String)> = header
        .split(',')
        .enumerate()
        .filter_map(|(position, item)| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            if tag.is_empty() {
                return None;
            }
            let quality =
                parts.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            Some((quality, position, tag.to_owned()))
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_keeps_the_preferred_language() {
        let statement = json!({"verb": {"id": "http://v", "display": {"en-US": "did", "fr": "a fait"}}});
        let out = apply(StatementFormat::Canonical, &statement, &parse_accept_language("fr;q=0.9, de;q=0.5"));
        assert_eq!(out["verb"]["display"], json!({"fr": "a fait"}));
    }

    #[test]
    fn ids_reduces_agents_and_activities() {
        let statement = json!({
            "actor": {"objectType": "Agent", "name": "Ann", "mbox": "mailto:ann@example.com"},
            "verb": {"id": "http://v", "display": {"en": "v"}},
            "object": {"objectType": "Activity", "id": "http://a", "definition": {"name": {"en": "A"}}}
        });
        let out = apply(StatementFormat::Ids, &statement, &[]);
        assert_eq!(out["actor"], json!({"objectType": "Agent", "mbox": "mailto:ann@example.com"}));
        assert_eq!(out["verb"], json!({"id": "http://v"}));
        assert_eq!(out["object"], json!({"id": "http://a"}));
    }
}
