#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests over generated valid statements: the validator accepts
//! them, the event log carries them unchanged, and the real API stores and
//! returns them unchanged apart from what the LRS adds (`stored`,
//! `authority`, and `id`, `version` and `timestamp` when the client sent
//! none).

use std::sync::OnceLock;
use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use lrs_server::credentials::{self, Scope};
use lrs_server::{Embedded, EmbeddedOptions};
use lrs_xapi::events::{Event, decode, encode};
use lrs_xapi::statement::{complete_for_storage, normalise_context_activities};
use lrs_xapi::{StatementValidator, XapiVersion};

// ---- generators -------------------------------------------------------------

fn lang_tag() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "en",
        "en-US",
        "en-GB",
        "fr",
        "fr-CA",
        "cy-GB",
        "de-CH-1901",
        "zh-Hant-TW",
        "es-419",
        "x-private",
        "i-klingon",
        "sgn-BE-FR",
    ])
    .prop_map(str::to_owned)
}

/// Any text: plain, any printable Unicode, any ASCII (controls included),
/// and a few characters JSON writers get wrong.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9 .,'-]{0,24}",
        2 => "\\PC{0,16}",
        1 => "[\\x00-\\x7f]{0,8}",
        1 => Just("\u{2028}\u{2029}\u{feff}\"\\/ \u{10ffff}</script>".to_owned()),
    ]
}

fn iri() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ("https?", "[a-z]{1,8}", "[A-Za-z0-9_~/.-]{0,16}").prop_map(|(s, h, p)| format!("{s}://{h}.example.com/{p}")),
        1 => ("[a-z]{1,6}", "[a-z0-9]{1,8}").prop_map(|(n, x)| format!("urn:{n}:{x}")),
        1 => "[a-zéü日本]{1,6}".prop_map(|p| format!("http://example.org/ü/{p}")),
    ]
}

fn language_map() -> impl Strategy<Value = Value> {
    btree_map(lang_tag(), text(), 1..4).prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, json!(v))).collect()))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map("[a-zA-Z_]{1,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn extensions() -> impl Strategy<Value = Value> {
    btree_map(iri(), json_value(), 1..4).prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn uuid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string())
}

fn actor() -> impl Strategy<Value = Value> {
    let ifi = prop_oneof![
        ("[a-z0-9._+-]{1,10}", "[a-z]{1,8}")
            .prop_map(|(user, host)| ("mbox", json!(format!("mailto:{user}@{host}.example.org")))),
        (iri(), "[A-Za-z0-9_-]{1,12}").prop_map(|(home, name)| ("account", json!({"homePage": home, "name": name}))),
    ];
    (ifi, option::of(text()), any::<bool>()).prop_map(|((property, value), name, typed)| {
        let mut agent = Map::new();
        if typed {
            agent.insert("objectType".into(), json!("Agent"));
        }
        if let Some(name) = name {
            agent.insert("name".into(), json!(name));
        }
        agent.insert(property.into(), value);
        Value::Object(agent)
    })
}

fn verb() -> impl Strategy<Value = Value> {
    (iri(), option::of(language_map())).prop_map(|(id, display)| {
        let mut verb = json!({ "id": id });
        if let Some(display) = display {
            verb["display"] = display;
        }
        verb
    })
}

fn activity() -> impl Strategy<Value = Value> {
    let definition = (
        option::of(language_map()),
        option::of(language_map()),
        option::of(iri()),
        option::of(iri()),
        option::of(extensions()),
    )
        .prop_map(|(name, description, kind, more_info, extensions)| {
            let mut definition = Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    definition.insert(key.to_owned(), value);
                }
            };
            put("name", name);
            put("description", description);
            put("type", kind.map(Value::from));
            put("moreInfo", more_info.map(Value::from));
            put("extensions", extensions);
            Value::Object(definition)
        });
    (iri(), option::of(definition), any::<bool>()).prop_map(|(id, definition, typed)| {
        let mut activity = Map::new();
        if typed {
            activity.insert("objectType".into(), json!("Activity"));
        }
        activity.insert("id".into(), json!(id));
        if let Some(definition) = definition {
            activity.insert("definition".into(), definition);
        }
        Value::Object(activity)
    })
}

fn score() -> impl Strategy<Value = Value> {
    let scaled = option::of(prop_oneof![(-1.0f64..=1.0).prop_map(|f| json!(f)), (-1i64..=1).prop_map(|i| json!(i))]);
    // (which of raw/min/max to send, raw, min, max) with min < max and raw within.
    let range = option::of(prop_oneof![
        (-1000i64..1000, 1i64..1000, 0.0f64..=1.0, any::<[bool; 3]>()).prop_map(|(min, width, t, which)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let raw = min + ((width as f64) * t).round() as i64;
            (which, json!(raw), json!(min), json!(min + width))
        }),
        (-1e6f64..1e6, 1e-3f64..1e6, 0.0f64..=1.0, any::<[bool; 3]>()).prop_map(|(min, width, t, which)| {
            let max = min + width;
            (which, json!((min + width * t).clamp(min, max)), json!(min), json!(max))
        }),
    ]);
    (scaled, range).prop_map(|(scaled, range)| {
        let mut score = Map::new();
        if let Some(scaled) = scaled {
            score.insert("scaled".into(), scaled);
        }
        if let Some((which, raw, min, max)) = range {
            for (send, key, value) in [(which[0], "raw", raw), (which[1], "min", min), (which[2], "max", max)] {
                if send {
                    score.insert(key.into(), value);
                }
            }
        }
        Value::Object(score)
    })
}

/// ISO 8601 durations: weeks, or days and/or a time part, any component
/// possibly fractional in seconds.
fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..100).prop_map(|weeks| format!("P{weeks}W")),
        (
            option::of(0u32..400),
            option::of(0u32..48),
            option::of(0u32..120),
            option::of((0u32..120, option::of("[0-9]{1,4}")))
        )
            .prop_map(|(days, hours, minutes, seconds)| {
                let mut out = "P".to_owned();
                if let Some(days) = days {
                    out += &format!("{days}D");
                }
                let mut time = String::new();
                if let Some(hours) = hours {
                    time += &format!("{hours}H");
                }
                if let Some(minutes) = minutes {
                    time += &format!("{minutes}M");
                }
                if let Some((seconds, fraction)) = seconds {
                    time += &seconds.to_string();
                    if let Some(fraction) = fraction {
                        time += &format!(".{fraction}");
                    }
                    time += "S";
                }
                if !time.is_empty() {
                    out += "T";
                    out += &time;
                }
                if out == "P" { "PT0S".to_owned() } else { out }
            }),
    ]
}

fn result() -> impl Strategy<Value = Value> {
    (
        option::of(score()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(text()),
        option::of(duration()),
        option::of(extensions()),
    )
        .prop_map(|(score, success, completion, response, duration, extensions)| {
            let mut result = Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    result.insert(key.to_owned(), value);
                }
            };
            put("score", score);
            put("success", success.map(Value::from));
            put("completion", completion.map(Value::from));
            put("response", response.map(Value::from));
            put("duration", duration.map(Value::from));
            put("extensions", extensions);
            Value::Object(result)
        })
}

fn context() -> impl Strategy<Value = Value> {
    (
        option::of(uuid()),
        option::of(extensions()),
        option::of(text()),
        option::of(lang_tag()),
        option::of(vec(activity(), 1..3)),
        option::of(vec(activity(), 1..3)),
    )
        .prop_map(|(registration, extensions, platform, language, parent, grouping)| {
            let mut context = Map::new();
            let mut put = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    context.insert(key.to_owned(), value);
                }
            };
            put("registration", registration.map(Value::from));
            put("extensions", extensions);
            put("platform", platform.map(Value::from));
            put("language", language.map(Value::from));
            let mut lists = Map::new();
            if let Some(parent) = parent {
                lists.insert("parent".into(), Value::Array(parent));
            }
            if let Some(grouping) = grouping {
                lists.insert("grouping".into(), Value::Array(grouping));
            }
            if !lists.is_empty() {
                context.insert("contextActivities".into(), Value::Object(lists));
            }
            Value::Object(context)
        })
}

/// RFC 3339 timestamps (valid for both versions): real dates, an
/// occasional leap second, 0 to 9 fraction digits, `Z`/`z` or an offset.
fn timestamp() -> impl Strategy<Value = String> {
    let offset = prop_oneof![
        Just("Z".to_owned()),
        Just("z".to_owned()),
        (0u32..24, 0u32..60, any::<bool>())
            .prop_filter("no -00:00", |(h, m, negative)| !(*negative && *h == 0 && *m == 0))
            .prop_map(|(h, m, negative)| format!("{}{h:02}:{m:02}", if negative { '-' } else { '+' })),
    ];
    let second = prop_oneof![20 => 0u32..60, 1 => Just(60u32)];
    (1900i32..2200, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60, second, option::of("[0-9]{1,9}"), offset, any::<bool>())
        .prop_filter("a real date", |(y, mo, d, ..)| chrono::NaiveDate::from_ymd_opt(*y, *mo, *d).is_some())
        .prop_map(|(y, mo, d, h, mi, s, fraction, offset, lower)| {
            let t = if lower { 't' } else { 'T' };
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{fraction}{offset}")
        })
}

#[derive(Debug, Clone)]
struct Generated {
    statement: Value,
    /// The endpoint version it is sent with.
    version: XapiVersion,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        option::of((uuid(), any::<bool>())),
        actor(),
        verb(),
        activity(),
        option::of(result()),
        option::of(context()),
        option::of(timestamp()),
        any::<bool>(),
        0usize..4,
    )
        .prop_map(|(id, actor, verb, object, result, context, timestamp, v2, version_choice)| {
            let mut statement = Map::new();
            if let Some((id, upper)) = id {
                statement.insert("id".into(), json!(if upper { id.to_uppercase() } else { id }));
            }
            statement.insert("actor".into(), actor);
            statement.insert("verb".into(), verb);
            statement.insert("object".into(), object);
            if let Some(result) = result {
                statement.insert("result".into(), result);
            }
            if let Some(context) = context {
                statement.insert("context".into(), context);
            }
            if let Some(timestamp) = timestamp {
                statement.insert("timestamp".into(), json!(timestamp));
            }
            let (version, properties): (XapiVersion, &[&str]) = if v2 {
                (XapiVersion::V2_0_0, &["1.0.0", "1.0.3", "2.0.0"])
            } else {
                (XapiVersion::V1_0_3, &["1.0.0", "1.0.3", "1.0"])
            };
            if let Some(property) = properties.get(version_choice) {
                statement.insert("version".into(), json!(property));
            }
            Generated { statement: Value::Object(statement), version }
        })
}

// ---- the LRS under test -----------------------------------------------------

fn validator() -> &'static StatementValidator {
    static VALIDATOR: OnceLock<StatementValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| StatementValidator::new().expect("the schemas compile"))
}

fn authority() -> Value {
    json!({"objectType": "Agent", "name": "test", "account": {"homePage": "https://example.com/lrs", "name": "test"}})
}

/// An LRS as `lrs serve` runs it, on 127.0.0.1, as the API tests start it.
struct Server {
    runtime: tokio::runtime::Runtime,
    address: String,
    client: reqwest::Client,
    key: String,
    secret: String,
    _data_dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Static, so never dropped: under target/fuzz-work, named after this
        // process, where later runs remove it once the process has ended.
        lrs_fuzz::server::remove_stale_work_dirs();
        let root = lrs_fuzz::server::work_root();
        std::fs::create_dir_all(&root).unwrap();
        let prefix = format!("{}-roundtrip-", std::process::id());
        let data_dir = tempfile::Builder::new().prefix(&prefix).tempdir_in(&root).unwrap();
        let (credential, secret) =
            credentials::add(data_dir.path(), "roundtrip", None, None, vec![Scope::All]).expect("credential");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut options = EmbeddedOptions::new(data_dir.path());
        options.store.cache_bytes = 16 * 1024 * 1024;
        let address = runtime.block_on(async move {
            let store = Embedded::open(options).expect("the LRS starts");
            let router = store.router();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = format!("http://{}", listener.local_addr().expect("address"));
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
                drop(store);
            });
            address
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Server { runtime, address, client, key: credential.key, secret, _data_dir: data_dir }
    })
}

impl Server {
    /// POSTs one statement and GETs it back with format=exact: the POST
    /// status and body, then the GET status and body.
    fn post_and_get(&self, statement: &Value, version: XapiVersion) -> (u16, String, Option<(u16, String)>) {
        let version = version.header_value();
        self.runtime.block_on(async {
            let post = self
                .client
                .post(format!("{}/xapi/statements", self.address))
                .basic_auth(&self.key, Some(&self.secret))
                .header("X-Experience-API-Version", version)
                .json(statement)
                .send()
                .await
                .expect("POST sent");
            let post_status = post.status().as_u16();
            let post_body = post.text().await.expect("POST body");
            let Some(id) = serde_json::from_str::<Vec<String>>(&post_body).ok().and_then(|ids| ids.into_iter().next())
            else {
                return (post_status, post_body, None);
            };
            let get = self
                .client
                .get(format!("{}/xapi/statements", self.address))
                .query(&[("statementId", id.as_str()), ("format", "exact")])
                .basic_auth(&self.key, Some(&self.secret))
                .header("X-Experience-API-Version", version)
                .send()
                .await
                .expect("GET sent");
            let get_status = get.status().as_u16();
            (post_status, post_body, Some((get_status, get.text().await.expect("GET body"))))
        })
    }
}

// ---- properties -------------------------------------------------------------

/// `cases` unless `PROPTEST_CASES` says otherwise. Failing cases are kept
/// in `services/fuzz/proptest-regressions/` (the test runs with the crate
/// directory as its working directory).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/roundtrip.txt"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The generator makes valid statements, and a statement crosses the
    /// event log unchanged, as sent and as completed for storage.
    #[test]
    fn generated_statements_are_valid_and_survive_the_event_log(generated in generated()) {
        let Generated { statement, version } = generated;
        let verdict = validator().validate(version, &statement);
        prop_assert!(verdict.is_ok(), "the {} validator refuses {:#}: {:?}", version, statement, verdict);

        let sent = Event::StatementsStored { statements: vec![statement.clone()], attachments: Vec::new() };
        let decoded = decode(&encode(&sent));
        prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
        prop_assert_eq!(decoded.unwrap(), sent);

        let mut stored = statement.clone();
        normalise_context_activities(&mut stored);
        complete_for_storage(&mut stored, Uuid::new_v4(), chrono::Utc::now(), &authority(), version);
        let verdict = validator().validate(version, &stored);
        prop_assert!(verdict.is_ok(), "the stored form is invalid: {:?}", verdict);
        let event = Event::StatementsStored { statements: vec![stored], attachments: Vec::new() };
        let decoded = decode(&encode(&event));
        prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
        prop_assert_eq!(decoded.unwrap(), event);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// POST then GET (format=exact) returns the statement as sent, apart
    /// from what the LRS adds.
    #[test]
    fn generated_statements_survive_the_api_unchanged(generated in generated()) {
        let Generated { mut statement, version } = generated;
        // Shrinking replays cases: a fresh id per run keeps them from
        // colliding (same id, other content is a 409), in the case sent.
        if let Some(Value::String(id)) = statement.get("id") {
            let fresh = Uuid::new_v4().to_string();
            let upper = id.chars().any(|c| c.is_ascii_uppercase());
            statement["id"] = json!(if upper { fresh.to_uppercase() } else { fresh });
        }
        let (post_status, post_body, get) = server().post_and_get(&statement, version);
        prop_assert_eq!(post_status, 200, "POST ({}) refused a valid statement: {}\n{:#}", version, post_body, statement);
        let ids: Vec<String> = serde_json::from_str(&post_body).unwrap();
        prop_assert_eq!(ids.len(), 1);
        let id = &ids[0];
        let (get_status, get_body) = get.unwrap();
        prop_assert_eq!(get_status, 200, "GET {} failed: {}", id, get_body);
        let mut got: Value = serde_json::from_str(&get_body).unwrap();

        let sent = statement.as_object().unwrap();
        let object = got.as_object_mut().unwrap();
        let stored = object.remove("stored");
        prop_assert!(stored.as_ref().is_some_and(Value::is_string), "no stored: {}", get_body);
        prop_assert!(object.remove("authority").is_some(), "no authority: {}", get_body);
        match sent.get("id").and_then(Value::as_str) {
            // The LRS writes ids in canonical (lower-case) form; ids compare
            // case-insensitively.
            Some(sent_id) => {
                prop_assert!(sent_id.eq_ignore_ascii_case(id), "POST returned {} for {}", id, sent_id);
                let got_id = object.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                prop_assert!(got_id.eq_ignore_ascii_case(sent_id), "GET returned id {} for {}", got_id, sent_id);
                object.insert("id".into(), json!(sent_id));
            }
            None => prop_assert_eq!(object.remove("id"), Some(json!(id))),
        }
        if !sent.contains_key("version") {
            prop_assert_eq!(object.remove("version"), Some(json!(version.default_statement_version())));
        }
        if !sent.contains_key("timestamp") {
            prop_assert_eq!(object.remove("timestamp"), stored, "the timestamp of a statement without one is its stored");
        }
        prop_assert_eq!(&got, &statement, "the statement came back altered");
    }
}
