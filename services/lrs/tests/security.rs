//! What the server must never do with secrets and personal data, checked on
//! the real binary: its logs (JSON, at debug level) over a run that touches
//! every kind of request never contain a statement body, a name, an email
//! address, a document, a secret or a token; and a client that keeps
//! failing to sign in is slowed down with 429.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

struct Server {
    child: Child,
    origin: String,
    key: String,
    secret: String,
    stderr: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &std::path::Path, log_level: &str) -> Server {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap(), "--log-format", "json"])
        .env("RUST_LOG", log_level)
        .env_remove("LRS_CHECK_ARGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr.reopen().unwrap()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut key, mut secret) = (String::new(), String::new());
    let origin = loop {
        let line = lines.next().expect("the server printed its endpoint").unwrap();
        if let Some(value) = line.trim().strip_prefix("key:") {
            key = value.trim().to_owned();
        } else if let Some(value) = line.trim().strip_prefix("secret:") {
            secret = value.trim().to_owned();
        } else if let Some(endpoint) = line.strip_prefix("xAPI endpoint: ") {
            break endpoint.trim().trim_end_matches("/xapi/").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, origin, key, secret, stderr }
}

const NAME: &str = "Zebedee Quillfeather";
const EMAIL: &str = "zebedee.quillfeather@example.nhs.uk";
const DOCUMENT: &str = "bookmark-page-4711-of-the-secret-chapter";
const RESPONSE: &str = "my free-text answer mentions my diagnosis";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_bodies_names_documents_secrets_or_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "debug");
    let client = reqwest::Client::new();
    let xapi = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{}{path}", server.origin))
            .basic_auth(&server.key, Some(&server.secret))
            .header("X-Experience-API-Version", "2.0.0")
    };
    let statement = json!({
        "actor": {"name": NAME, "mbox": format!("mailto:{EMAIL}")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-GB": "answered"}},
        "object": {"id": "http://example.org/quiz/1"},
        "result": {"response": RESPONSE}
    });
    assert_eq!(xapi(reqwest::Method::POST, "/xapi/statements").json(&statement).send().await.unwrap().status(), 200);
    let agent = format!("{{\"mbox\":\"mailto:{EMAIL}\"}}");
    let encoded: String = form_urlencoded::byte_serialize(agent.as_bytes()).collect();
    let query = format!("/xapi/statements?agent={encoded}");
    assert_eq!(xapi(reqwest::Method::GET, &query).send().await.unwrap().status(), 200);
    let state = format!("/xapi/activities/state?activityId=http://example.org/quiz/1&stateId=s&agent={encoded}");
    let put = xapi(reqwest::Method::PUT, &state).header("Content-Type", "text/plain").body(DOCUMENT);
    assert_eq!(put.send().await.unwrap().status(), 204);
    assert_eq!(xapi(reqwest::Method::GET, &state).send().await.unwrap().status(), 200);
    // Refused requests: a bad statement naming the person, a wrong secret,
    // a bearer token, a malformed body.
    let mut bad = statement.clone();
    bad["verb"] = json!("not an object");
    assert_eq!(xapi(reqwest::Method::POST, "/xapi/statements").json(&bad).send().await.unwrap().status(), 400);
    let wrong_secret = "wrong-secret-Hx9q2Lm";
    let response = client
        .get(format!("{}/xapi/statements", server.origin))
        .basic_auth(&server.key, Some(wrong_secret))
        .header("X-Experience-API-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6ZWJlZGVlIn0.c2lnbmF0dXJlLXRva2VuLXNlY3JldA";
    let response = client
        .get(format!("{}/xapi/statements", server.origin))
        .bearer_auth(token)
        .header("X-Experience-API-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = xapi(reqwest::Method::POST, "/xapi/statements")
        .header("Content-Type", "application/json")
        .body(format!("{{\"actor\": {{\"name\": \"{NAME}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Wait until the access line of the last request is in the log.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(server.stderr.path()).unwrap();
        if log.lines().filter(|l| l.contains("lrs::access")).count() >= 8 {
            break log;
        }
        assert!(Instant::now() < deadline, "the access log is missing lines:\n{log}");
        tokio::task::yield_now().await;
    };
    for line in log.lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "a log line is not JSON: {line}");
    }
    let basic = base64_basic(&server.key, &server.secret);
    for (what, needle) in [
        ("the learner's name", NAME),
        ("the learner's email", EMAIL),
        ("a document", DOCUMENT),
        ("a free-text response", RESPONSE),
        ("the secret", server.secret.as_str()),
        ("a wrong secret", wrong_secret),
        ("a bearer token", token),
        ("a Basic header", basic.as_str()),
        ("a query string", "agent="),
    ] {
        assert!(!log.contains(needle), "the log contains {what}:\n{log}");
    }
}

fn base64_basic(key: &str, secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_sign_ins_from_one_client_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "warn");
    let client = reqwest::Client::new();
    let attempt = |secret: String| {
        client
            .get(format!("{}/xapi/statements", server.origin))
            .basic_auth("someone-guessing", Some(secret))
            .header("X-Experience-API-Version", "2.0.0")
            .send()
    };
    let mut statuses = Vec::new();
    for guess in 0..25 {
        statuses.push(attempt(format!("guess-{guess}")).await.unwrap().status().as_u16());
    }
    let first_429 = statuses.iter().position(|s| *s == 429).expect("the client is slowed down");
    assert!(statuses[..first_429].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(first_429 >= 5, "a few mistakes are tolerated: {statuses:?}");
    assert!(statuses[first_429..].iter().all(|s| *s == 429), "{statuses:?}");
    let response = attempt("another".to_owned()).await.unwrap();
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    // The address is throttled whatever key it tries next; requests without
    // credentials (public resources) still pass.
    let response = client
        .get(format!("{}/xapi/statements", server.origin))
        .basic_auth(&server.key, Some(&server.secret))
        .header("X-Experience-API-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "the address is slowed down, whichever key it uses");
    let honest = client
        .get(format!("{}/xapi/about", server.origin))
        .header("X-Experience-API-Version", "2.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(honest.status(), 200, "requests without credentials are not refused for it");
}

fn test_data(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// `lrs serve --tls-cert --tls-key` speaks HTTPS (checked with a rustls
/// client that trusts only the test certificate) and refuses plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_with_a_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (test_data("test-only-tls-cert.pem"), test_data("test-only-tls-key.pem"));
    let child = Command::new(env!("CARGO_BIN_EXE_lrs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
        .env_remove("LRS_CHECK_ARGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed when dropped, also when an assertion fails.
    let mut server = Server {
        child,
        origin: String::new(),
        key: String::new(),
        secret: String::new(),
        stderr: tempfile::NamedTempFile::new().unwrap(),
    };
    let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
    let endpoint = loop {
        let line = lines.next().expect("the server printed its endpoint").unwrap();
        if let Some(endpoint) = line.strip_prefix("xAPI endpoint: ") {
            break endpoint.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let address = endpoint.trim_start_matches("https://").trim_end_matches("/xapi/").to_owned();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(test_data("test-only-tls-ca.pem")).unwrap();
    for certificate in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let certificate: rustls::pki_types::CertificateDer<'static> = certificate.unwrap();
        roots.add(certificate).unwrap();
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake with the test certificate");
    tls.write_all(
        b"GET /xapi/about HTTP/1.1\r\nHost: localhost\r\nX-Experience-API-Version: 2.0.0\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"version\""), "{answer}");

    // Plain HTTP to the TLS port gets no xAPI answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{address}/xapi/about"))
        .header("X-Experience-API-Version", "2.0.0")
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true), "plain HTTP must not be served on the TLS port");
    drop(server);
}
