#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Learning Hub pages over real HTTP on loopback: every page and every
//! asset it references is served with its content type and a strict
//! Content-Security-Policy, pages hold no inline script or style, and the
//! organisation picker's endpoint (`/ui/api/organisations`) answers within
//! the caller's analytics grant exactly as the analytics API does.
//!
//! The browser tests (`tests/browser/`) drive the pages themselves.

#[path = "api/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};

use lrs_server::credentials::{self, Scope};
use support::{TestApp, spawn_app_with};

const PAGES: [&str; 4] = ["/ui/", "/ui/uptake", "/ui/learning", "/ui/statements"];
const ISSUER: &str = "https://auth.learninghub.nhs.uk";
const AUDIENCE: &str = "lrs";

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

async fn spawn() -> TestApp {
    let jwt =
        lrs_server::jwt::JwtVerifier::from_pem_files(&[data_file("test-only-jwt-rsa-public.pem")], ISSUER, AUDIENCE)
            .expect("test JWT key loads");
    spawn_app_with(move |o| o.jwt = Some(jwt)).await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn assert_strict_csp(response: &reqwest::Response, what: &str) {
    let csp = header(response, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: CSP {csp:?}");
    assert!(csp.contains("script-src 'self'"), "{what}: CSP {csp:?}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: CSP {csp:?}");
    assert_eq!(header(response, "x-content-type-options"), "nosniff", "{what}");
}

/// Values of `attribute="…"` in an HTML text.
fn attribute_values(html: &str, attribute: &str) -> Vec<String> {
    let needle = format!(" {attribute}=\"");
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&needle) {
        rest = &rest[start + needle.len()..];
        if let Some(end) = rest.find('"') {
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// Relative module imports of a script: `from './x.js'`.
fn imports(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['\'', '"'] {
        let needle = format!("from {quote}./");
        let mut rest = script;
        while let Some(start) = rest.find(&needle) {
            rest = &rest[start + needle.len()..];
            if let Some(end) = rest.find(quote) {
                out.push(format!("/ui/assets/{}", &rest[..end]));
                rest = &rest[end..];
            }
        }
    }
    out
}

#[tokio::test]
async fn pages_and_their_assets_are_served_with_types_and_a_strict_policy() {
    let app = spawn().await;
    let mut assets = BTreeSet::new();
    for page in PAGES {
        let response = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8", "{page}");
        assert_strict_csp(&response, page);
        let html = response.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"), "{page}");
        assert!(html.contains("<html lang=\"en-GB\">"), "{page}");
        assert!(html.contains("name=\"viewport\""), "{page}");
        // The policy forbids inline script and style: none may be relied on.
        assert!(!html.contains("<script>") && !html.contains("<style"), "{page} has inline script or style");
        assert!(attribute_values(&html, "style").is_empty(), "{page} has style attributes");
        assert!(!html.contains(" onclick=") && !html.contains(" onload="), "{page} has inline handlers");
        // Every label names a control of the page.
        for target in attribute_values(&html, "for") {
            assert!(html.contains(&format!("id=\"{target}\"")), "{page}: label for missing #{target}");
        }
        let referenced: Vec<String> = attribute_values(&html, "src")
            .into_iter()
            .chain(attribute_values(&html, "href"))
            .filter(|url| url.starts_with("/ui/assets/"))
            .collect();
        assert!(referenced.iter().any(|u| u.ends_with(".css")), "{page} links no stylesheet");
        if page != "/ui/" {
            assert!(referenced.iter().any(|u| u.ends_with(".js")), "{page} loads no script");
        }
        assets.extend(referenced);
        // Every page links every other page.
        for other in ["/ui/uptake", "/ui/learning", "/ui/statements"] {
            assert!(html.contains(&format!("href=\"{other}\"")), "{page} does not link {other}");
        }
    }
    let mut pending: Vec<String> = assets.iter().cloned().collect();
    let mut fetched = BTreeSet::new();
    while let Some(asset) = pending.pop() {
        if !fetched.insert(asset.clone()) {
            continue;
        }
        let response = app.client.get(app.url(&asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let expected = match asset.rsplit('.').next() {
            Some("css") => "text/css; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(header(&response, "content-type"), expected, "{asset}");
        assert_strict_csp(&response, &asset);
        let text = response.text().await.unwrap();
        assert!(!text.is_empty(), "{asset} is empty");
        if asset.ends_with(".js") {
            assert!(!text.contains("innerHTML") && !text.contains("eval("), "{asset} writes raw HTML or evaluates");
            pending.extend(imports(&text));
        }
    }
    for module in ["/ui/assets/common.js", "/ui/assets/charts.js"] {
        assert!(fetched.contains(module), "{module} is never loaded: {fetched:?}");
    }

    let head = app.client.head(app.url("/ui/uptake")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let unknown = app.client.get(app.url("/ui/assets/nothing.js")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_strict_csp(&unknown, "404");
    assert!(unknown.text().await.unwrap().contains("\"error\""));
    let bare = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = bare.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&redirect, "location"), "/ui/");
}

fn learner_token(account: &str) -> String {
    let pem = std::fs::read(data_file("test-only-jwt-rsa-private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": account, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 });
    encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
}

async fn organisations(app: &TestApp, auth: (&str, &str), query: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!("/ui/api/organisations{query}")))
        .basic_auth(auth.0, Some(auth.1))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(header(&response, "content-security-policy").contains("default-src 'self'"));
    (status, response.json().await.unwrap())
}

fn codes(answer: &Value) -> BTreeSet<String> {
    answer["organisations"].as_array().unwrap().iter().map(|o| o["code"].as_str().unwrap().to_owned()).collect()
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

#[tokio::test]
async fn the_organisation_picker_lists_only_what_the_grant_allows() {
    let app = spawn().await;
    let csv = std::fs::read_to_string(data_file("test-organisations.csv")).unwrap();
    let imported = app
        .client
        .post(app.url("/admin/organisations"))
        .basic_auth(&app.key, Some(&app.secret))
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), StatusCode::OK);

    let grant = |name: &str, organisations: &[&str]| {
        let (credential, secret) =
            credentials::add(app.data_dir.path(), name, None, None, vec![Scope::StatementsRead]).unwrap();
        credentials::grant_organisations(
            app.data_dir.path(),
            &credential.key,
            organisations.iter().map(|o| (*o).to_owned()).collect(),
        )
        .unwrap();
        (credential.key, secret)
    };
    let trust = grant("trust-analyst", &["RJ1"]);
    let everywhere = grant("national-analyst", &["*"]);
    let (platform_key, platform_secret) =
        credentials::add(app.data_dir.path(), "platform", None, None, vec![Scope::All]).unwrap();
    let platform = (platform_key.key, platform_secret);

    // The directory reaches the Learning Hub views a moment after the import.
    let deadline = Instant::now() + Duration::from_secs(10);
    let trust_view = loop {
        let (status, answer) = organisations(&app, (&trust.0, &trust.1), "").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if codes(&answer).len() == 3 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(codes(&trust_view), set(&["RJ1", "RJ122", "RJ122W"]));
    assert_eq!(trust_view["everything"], json!(false));
    let rows = trust_view["organisations"].as_array().unwrap();
    let row = |code: &str| rows.iter().find(|r| r["code"] == code).unwrap().clone();
    // The granted organisation's parent (QKK) is outside the grant: not named.
    assert_eq!(row("RJ1")["parent"], Value::Null);
    assert_eq!(row("RJ1")["name"], "Guy's and St Thomas' NHS Foundation Trust");
    assert_eq!(row("RJ122W")["parent"], "RJ122");

    let (status, below) = organisations(&app, (&trust.0, &trust.1), "?root=RJ122").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(codes(&below), set(&["RJ122", "RJ122W"]));
    for outside in ["QKK", "RJZ", "NOPE1"] {
        let (status, answer) = organisations(&app, (&trust.0, &trust.1), &format!("?root={outside}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{outside}: {answer}");
        assert!(answer.get("organisations").is_none());
        assert_eq!(answer["error"]["message"], "this caller may not see that organisation");
    }
    let (status, _) = organisations(&app, (&trust.0, &trust.1), "?root=not-a-code").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = organisations(&app, (&trust.0, &trust.1), "?other=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, all) = organisations(&app, (&everywhere.0, &everywhere.1), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["everything"], json!(true));
    let (status, icb) = organisations(&app, (&everywhere.0, &everywhere.1), "?root=QKK").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(codes(&icb), set(&["QKK", "RJ1", "RJZ", "RJ122", "RJ122W"]));

    // No grant, bad credentials, no credential, a learner: nothing.
    let (status, _) = organisations(&app, (&platform.0, &platform.1), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = organisations(&app, (&trust.0, "wrong"), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let anonymous = app.client.get(app.url("/ui/api/organisations")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let learner = app
        .client
        .get(app.url("/ui/api/organisations?root=RJ1"))
        .bearer_auth(learner_token("100001"))
        .send()
        .await
        .unwrap();
    assert_eq!(learner.status(), StatusCode::FORBIDDEN);
}
