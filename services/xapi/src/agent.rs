//! Agents and Groups: their inverse functional identifiers (IFIs) and the
//! keys the store indexes them by.

use serde_json::{Map, Value, json};

use crate::statement::Members;

/// The properties that identify an Agent or identified Group.
pub const IFI_PROPERTIES: [&str; 4] = ["mbox", "mbox_sha1sum", "openid", "account"];

/// A stable text key for the agent's IFI, such as `mbox:mailto:a@b.c` or
/// `account:https://learninghub.nhs.uk|12345`. `None` for anonymous groups
/// or objects without exactly one IFI.
pub fn ifi_key(agent: &Value) -> Option<String> {
    let object = agent.as_object()?;
    // One pass over the agent's few members, not a lookup for each IFI.
    let mut found = object.iter().filter(|(name, _)| IFI_PROPERTIES.contains(&name.as_str()));
    let (property, value) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    match property.as_str() {
        "account" => {
            let home = value.member("homePage")?.as_str()?;
            let name = value.member("name")?.as_str()?;
            Some(format!("account:{home}|{name}"))
        }
        "mbox" => Some(format!("mbox:{}", value.as_str()?.to_ascii_lowercase())),
        "mbox_sha1sum" => Some(format!("mbox_sha1sum:{}", value.as_str()?.to_ascii_lowercase())),
        _ => Some(format!("{property}:{}", value.as_str()?)),
    }
}

/// The agent reduced to its identifying properties, as `format=ids` returns it.
pub fn ids_only(agent: &Value) -> Value {
    let Some(object) = agent.as_object() else {
        return agent.clone();
    };
    let mut out = Map::new();
    if let Some(kind) = object.member("objectType") {
        out.insert("objectType".to_owned(), kind.clone());
    }
    for property in IFI_PROPERTIES {
        if let Some(value) = object.get(property) {
            out.insert(property.to_owned(), value.clone());
        }
    }
    let is_group = object.member("objectType").and_then(Value::as_str) == Some("Group");
    if is_group
        && !IFI_PROPERTIES.iter().any(|p| object.contains_key(*p))
        && let Some(Value::Array(members)) = object.member("member")
    {
        out.insert("member".to_owned(), Value::Array(members.iter().map(ids_only).collect()));
    }
    Value::Object(out)
}

/// The key of an Agent or identified Group and of each Group member.
fn push_agent_and_members(agent: &Value, out: &mut Vec<String>) {
    if let Some(key) = ifi_key(agent) {
        out.push(key);
    }
    if let Some(Value::Array(members)) = agent.member("member") {
        out.extend(members.iter().filter_map(ifi_key));
    }
}

/// Every agent key a statement mentions under the broad (`related_agents`)
/// rule: actor, object, authority, context instructor and team, 2.0 context
/// agents and groups, group members, and the same inside a SubStatement.
pub fn related_agent_keys(statement: &Value, out: &mut Vec<String>) {
    let push_agent = push_agent_and_members;
    push_agent(&statement["actor"], out);
    let object = &statement["object"];
    match object.member("objectType").and_then(Value::as_str) {
        Some("Agent") | Some("Group") => push_agent(object, out),
        Some("SubStatement") => related_agent_keys(object, out),
        _ => {}
    }
    push_agent(&statement["authority"], out);
    let context = &statement["context"];
    push_agent(&context["instructor"], out);
    push_agent(&context["team"], out);
    for list in ["contextAgents", "contextGroups"] {
        if let Some(Value::Array(entries)) = context.get(list) {
            for entry in entries {
                push_agent(&entry["agent"], out);
                push_agent(&entry["group"], out);
            }
        }
    }
}

/// The agent keys of the narrow agent filter: actor (and its members) and an
/// Agent/Group object.
pub fn primary_agent_keys(statement: &Value, out: &mut Vec<String>) {
    push_agent_and_members(&statement["actor"], out);
    let object = &statement["object"];
    if matches!(object.member("objectType").and_then(Value::as_str), Some("Agent") | Some("Group")) {
        push_agent_and_members(object, out);
    }
}

/// A Person object (xAPI Agents resource) for the given agent.
pub fn person_for(agent: &Value, names: &[String]) -> Value {
    let mut person = json!({ "objectType": "Person" });
    for property in IFI_PROPERTIES {
        if let Some(value) = agent.get(property) {
            person[property] = json!([value]);
        }
    }
    // The name the caller gave first (unless already seen), then the names
    // seen in statements.
    let given = agent.member("name").and_then(Value::as_str).filter(|name| !names.iter().any(|n| n == name));
    let all: Vec<&str> = given.into_iter().chain(names.iter().map(String::as_str)).collect();
    if !all.is_empty() {
        person["name"] = json!(all);
    }
    person
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_key_joins_home_page_and_name() {
        let agent = json!({"account": {"homePage": "https://learninghub.nhs.uk", "name": "42"}});
        assert_eq!(ifi_key(&agent).as_deref(), Some("account:https://learninghub.nhs.uk|42"));
    }

    #[test]
    fn anonymous_group_has_no_key() {
        let group = json!({"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]});
        assert_eq!(ifi_key(&group), None);
    }

    #[test]
    fn two_ifis_have_no_key() {
        let agent = json!({"mbox": "mailto:a@example.com", "openid": "http://a.example.com"});
        assert_eq!(ifi_key(&agent), None);
    }
}
