//! Verification of signed xAPI statements (xAPI 1.0.3 Data §2.6).
//!
//! A signed statement carries an attachment with usageType
//! [`SIGNATURE_USAGE_TYPE`] and contentType `application/octet-stream` whose
//! content is a JWS (RFC 7515) in compact serialization. The JWS payload is the
//! JSON serialization of the statement as it was before the signature
//! attachment was added.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;
use x509_cert::der::{Decode as _, Encode as _};

/// usageType identifying a statement signature attachment.
pub const SIGNATURE_USAGE_TYPE: &str = "http://adlnet.gov/expapi/attachments/signature";

/// contentType a signature attachment must have.
pub const SIGNATURE_CONTENT_TYPE: &str = "application/octet-stream";

/// Upper bound on the size of a JWS we are willing to decode.
const MAX_JWS_LEN: usize = 8 * 1024 * 1024;

/// Errors reported for malformed or invalid statement signatures.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    #[error("statement must be a JSON object")]
    StatementNotObject,
    #[error("signature attachment {index} must have contentType application/octet-stream (got '{content_type}')")]
    BadAttachmentContentType { index: usize, content_type: String },
    #[error("signature attachment {0} has no sha2 property")]
    AttachmentWithoutHash(usize),
    #[error("no attachment data was received for the signature attachment with sha2 '{0}'")]
    MissingSignatureData(String),
    #[error("the signature attachment is too large")]
    TooLarge,
    #[error("the signature is not valid UTF-8 / ASCII text")]
    NotText,
    #[error("the signature is not a JWS compact serialization (expected 3 '.'-separated parts, found {0})")]
    NotCompact(usize),
    #[error("the JWS {0} is empty")]
    EmptySegment(&'static str),
    #[error("the JWS {0} is not valid base64url")]
    InvalidBase64(&'static str),
    #[error("the JWS header is not a JSON object: {0}")]
    InvalidHeader(String),
    #[error("the JWS header has no 'alg'")]
    MissingAlgorithm,
    #[error("the JWS algorithm '{0}' is not allowed (must be RS256, RS384 or RS512)")]
    UnsupportedAlgorithm(String),
    #[error("the JWS header lists critical extensions that are not supported: {0}")]
    UnsupportedCritical(String),
    #[error("the JWS payload is not a valid JSON serialization of a statement: {0}")]
    InvalidPayload(String),
    #[error("the JWS 'x5c' header is malformed: {0}")]
    InvalidX5c(String),
    #[error("the X.509 certificate in 'x5c' could not be decoded: {0}")]
    InvalidCertificate(String),
    #[error("the certificate in 'x5c' does not contain a usable RSA public key: {0}")]
    InvalidPublicKey(String),
    #[error("the JWS signature does not verify against the certificate in 'x5c'")]
    BadSignature,
    #[error("the signed statement (JWS payload) is not equivalent to the received statement: {0}")]
    StatementMismatch(String),
}

/// The JWS algorithms permitted by xAPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    Rs256,
    Rs384,
    Rs512,
}

impl JwsAlgorithm {
    /// Parses a JWS `alg` value (exact, case-sensitive per RFC 7515).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "RS384" => Some(Self::Rs384),
            "RS512" => Some(Self::Rs512),
            _ => None,
        }
    }

    fn verify(self, key: &RsaPublicKey, signing_input: &[u8], sig: &[u8]) -> bool {
        let result = match self {
            Self::Rs256 => key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(signing_input), sig),
            Self::Rs384 => key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(signing_input), sig),
            Self::Rs512 => key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(signing_input), sig),
        };
        result.is_ok()
    }
}

fn b64url() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn b64std() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn media_type(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Returns the (lower-cased) `sha2` values of the statement's signature
/// attachments (usageType [`SIGNATURE_USAGE_TYPE`]), in order.
///
/// Errors if such an attachment does not have contentType
/// `application/octet-stream` (parameters ignored, case-insensitive) or has no
/// `sha2`. An empty vector means the statement is not signed.
pub fn signature_attachment_hashes(statement: &Value) -> Result<Vec<String>, SignatureError> {
    let obj = statement.as_object().ok_or(SignatureError::StatementNotObject)?;
    let Some(Value::Array(attachments)) = obj.get("attachments") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (index, att) in attachments.iter().enumerate() {
        if att.get("usageType").and_then(Value::as_str) != Some(SIGNATURE_USAGE_TYPE) {
            continue;
        }
        let content_type = att.get("contentType").and_then(Value::as_str).unwrap_or("");
        if media_type(content_type) != SIGNATURE_CONTENT_TYPE {
            return Err(SignatureError::BadAttachmentContentType { index, content_type: content_type.to_string() });
        }
        let sha2 = att
            .get("sha2")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(SignatureError::AttachmentWithoutHash(index))?;
        out.push(sha2.to_ascii_lowercase());
    }
    Ok(out)
}

/// Verifies every signature attachment of `statement` (see
/// [`signature_attachment_hashes`]). `attachment_data` maps a lower-case sha2
/// to the received attachment bytes (e.g. from the multipart request). A
/// signature attachment whose data was not received is an error. Statements
/// without a signature attachment pass.
pub fn verify_statement_signatures<'a, F>(statement: &Value, mut attachment_data: F) -> Result<(), SignatureError>
where
    F: FnMut(&str) -> Option<&'a [u8]>,
{
    for sha2 in signature_attachment_hashes(statement)? {
        let bytes = attachment_data(&sha2).ok_or_else(|| SignatureError::MissingSignatureData(sha2.clone()))?;
        verify_signed_statement(statement, bytes)?;
    }
    Ok(())
}

/// Verifies that `jws_bytes` is a well-formed signature of `statement`
/// (xAPI Data §2.6 "LRS Requirements").
///
/// Steps:
/// 1. The JWS must use the compact serialization: three non-empty base64url
///    segments (`header.payload.signature`); surrounding whitespace is ignored.
///    The JSON serialization is not supported.
/// 2. The header must be a JSON object whose `alg` is `RS256`, `RS384` or
///    `RS512`; a `crit` header (RFC 7515 §4.1.11) is rejected as unsupported.
/// 3. The payload must be a JSON object (the signed statement).
/// 4. If the header has `x5c`, it must be a non-empty array of base64 (standard
///    alphabet) DER certificates; the signature is verified with RSASSA-PKCS1-v1_5
///    and the SHA-2 matching `alg` against the public key of the first
///    certificate (the chain itself is not validated: per the spec this check
///    catches mistakes and is not a security measure). Without `x5c` no
///    cryptographic check is made, as the spec only requires it when a
///    certificate is included.
/// 5. The payload must be logically equivalent to `statement` (the statement as
///    received from the client, before the LRS assigns anything) following the
///    statement comparison rules of Data §2.3.1, i.e. differences that could be
///    caused by the exceptions to statement immutability are ignored:
///    * `attachments` (not part of the statement; the received statement also
///      contains the signature attachment itself), `authority`, `stored` and
///      `version` (assigned or overwritten by the LRS) are ignored entirely;
///    * `id` and `timestamp` are ignored when the payload does not have them
///      (the LRS or client may assign them after signing); when the payload has
///      them, the statement must have equivalent values (ids compared
///      case-insensitively, timestamps as instants);
///    * verb `display` and activity `definition`s (in `object`, sub-statements
///      and `context.contextActivities`) are ignored; a single context activity
///      equals a one-element array;
///    * Group `member` lists are compared without regard to order;
///    * the `mailto:` scheme and domain of `mbox` values are case-insensitive;
///    * numbers are compared by value (`1` equals `1.0`); object key order is
///      irrelevant. Everything else must match exactly.
pub fn verify_signed_statement(statement: &Value, jws_bytes: &[u8]) -> Result<(), SignatureError> {
    if !statement.is_object() {
        return Err(SignatureError::StatementNotObject);
    }
    if jws_bytes.len() > MAX_JWS_LEN {
        return Err(SignatureError::TooLarge);
    }
    let text = std::str::from_utf8(jws_bytes).map_err(|_| SignatureError::NotText)?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if !text.is_ascii() {
        return Err(SignatureError::NotText);
    }
    let segments: Vec<&str> = text.split('.').collect();
    let [header_b64, payload_b64, sig_b64] = segments.as_slice() else {
        return Err(SignatureError::NotCompact(segments.len()));
    };
    for (name, seg) in [("header", header_b64), ("payload", payload_b64), ("signature", sig_b64)] {
        if seg.is_empty() {
            return Err(SignatureError::EmptySegment(name));
        }
    }
    let engine = b64url();
    let header_raw = engine.decode(header_b64).map_err(|_| SignatureError::InvalidBase64("header"))?;
    let payload_raw = engine.decode(payload_b64).map_err(|_| SignatureError::InvalidBase64("payload"))?;
    let signature = engine.decode(sig_b64).map_err(|_| SignatureError::InvalidBase64("signature"))?;

    let header: Value =
        serde_json::from_slice(&header_raw).map_err(|e| SignatureError::InvalidHeader(e.to_string()))?;
    let header = header.as_object().ok_or_else(|| SignatureError::InvalidHeader("not an object".into()))?;
    let alg_name = match header.get("alg") {
        None => return Err(SignatureError::MissingAlgorithm),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(SignatureError::UnsupportedAlgorithm(other.to_string())),
    };
    let alg =
        JwsAlgorithm::from_name(alg_name).ok_or_else(|| SignatureError::UnsupportedAlgorithm(alg_name.to_string()))?;
    if let Some(crit) = header.get("crit") {
        return Err(SignatureError::UnsupportedCritical(crit.to_string()));
    }

    let payload: Value =
        serde_json::from_slice(&payload_raw).map_err(|e| SignatureError::InvalidPayload(e.to_string()))?;
    if !payload.is_object() {
        return Err(SignatureError::InvalidPayload("the payload is not a JSON object".into()));
    }

    if let Some(x5c) = header.get("x5c") {
        let key = public_key_from_x5c(x5c)?;
        let signing_input = format!("{header_b64}.{payload_b64}");
        if !alg.verify(&key, signing_input.as_bytes(), &signature) {
            return Err(SignatureError::BadSignature);
        }
    }

    compare_statements(&payload, statement)
}

fn public_key_from_x5c(x5c: &Value) -> Result<RsaPublicKey, SignatureError> {
    let first = match x5c {
        Value::Array(items) => {
            items.first().ok_or_else(|| SignatureError::InvalidX5c("empty certificate chain".into()))?
        }
        _ => return Err(SignatureError::InvalidX5c("not an array".into())),
    };
    let b64 = first.as_str().ok_or_else(|| SignatureError::InvalidX5c("certificate is not a string".into()))?;
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = b64std()
        .decode(compact.as_bytes())
        .map_err(|_| SignatureError::InvalidX5c("certificate is not valid base64".into()))?;
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| SignatureError::InvalidCertificate(e.to_string()))?;
    let spki_der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| SignatureError::InvalidCertificate(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| SignatureError::InvalidPublicKey(e.to_string()))
}

/// Compares the signed statement with the received one (rules documented on
/// [`verify_signed_statement`]).
fn compare_statements(payload: &Value, statement: &Value) -> Result<(), SignatureError> {
    let (Some(p), Some(s)) = (payload.as_object(), statement.as_object()) else {
        return Err(SignatureError::StatementNotObject);
    };
    let mut p = p.clone();
    let mut s = s.clone();
    for key in ["attachments", "authority", "stored", "version"] {
        p.remove(key);
        s.remove(key);
    }
    for key in ["id", "timestamp"] {
        if !p.contains_key(key) {
            s.remove(key);
        }
    }
    for map in [&mut p, &mut s] {
        if let Some(Value::String(id)) = map.get_mut("id") {
            *id = id.to_ascii_lowercase();
        }
        normalize_statement(map);
    }
    let (p, s) = (Value::Object(p), Value::Object(s));
    match first_difference(&p, &s, "") {
        None => Ok(()),
        Some(path) => Err(SignatureError::StatementMismatch(format!(
            "they differ at '{}'",
            if path.is_empty() { "/" } else { &path }
        ))),
    }
}

/// Applies the immutability-exception normalisations to a statement or
/// sub-statement object.
fn normalize_statement(map: &mut Map<String, Value>) {
    if let Some(Value::Object(verb)) = map.get_mut("verb") {
        verb.remove("display");
    }
    if let Some(Value::String(ts)) = map.get_mut("timestamp") {
        // Unparseable timestamps are compared verbatim.
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) {
            *ts = t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        }
    }
    if let Some(actor) = map.get_mut("actor") {
        normalize_agent(actor);
    }
    if let Some(Value::Object(result)) = map.get_mut("result")
        && let Some(Value::String(duration)) = result.get_mut("duration")
    {
        *duration = crate::statement::duration_to_hundredths(duration);
    }
    if let Some(Value::Object(object)) = map.get_mut("object") {
        let object_type = object.get("objectType").and_then(Value::as_str).unwrap_or("Activity").to_string();
        match object_type.as_str() {
            "Activity" => {
                object.remove("definition");
            }
            "Agent" | "Group" => normalize_agent_map(object),
            "SubStatement" => normalize_statement(object),
            _ => {}
        }
    }
    if let Some(Value::Object(context)) = map.get_mut("context") {
        for key in ["instructor", "team"] {
            if let Some(agent) = context.get_mut(key) {
                normalize_agent(agent);
            }
        }
        if let Some(Value::String(reg)) = context.get_mut("registration") {
            *reg = reg.to_ascii_lowercase();
        }
        if let Some(Value::Object(ca)) = context.get_mut("contextActivities") {
            for (_, list) in ca.iter_mut() {
                // A single Activity is equivalent to a one-element array.
                if list.is_object() {
                    *list = Value::Array(vec![list.take()]);
                }
                if let Value::Array(items) = list {
                    for item in items {
                        if let Value::Object(a) = item {
                            a.remove("definition");
                        }
                    }
                }
            }
        }
    }
}

fn normalize_agent(v: &mut Value) {
    if let Value::Object(map) = v {
        normalize_agent_map(map);
    }
}

fn normalize_agent_map(map: &mut Map<String, Value>) {
    if let Some(Value::String(mbox)) = map.get_mut("mbox") {
        *mbox = normalize_mbox(mbox);
    }
    if let Some(Value::Array(members)) = map.get_mut("member") {
        for m in members.iter_mut() {
            normalize_agent(m);
        }
        members.sort_by_cached_key(canonical_string);
    }
}

/// Lower-cases the `mailto:` scheme and the domain of an mbox IRI.
fn normalize_mbox(mbox: &str) -> String {
    let rest = match mbox.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("mailto:") => &mbox[7..],
        _ => return mbox.to_string(),
    };
    match rest.rsplit_once('@') {
        Some((local, domain)) => format!("mailto:{local}@{}", domain.to_lowercase()),
        None => format!("mailto:{rest}"),
    }
}

/// Key-order-independent serialisation used to sort unordered lists.
fn canonical_string(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_string(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_string).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Returns the JSON-pointer-like path of the first difference, if any.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}/{k}");
                match y.get(k) {
                    Some(vb) => {
                        if let Some(d) = first_difference(va, vb, &p) {
                            return Some(d);
                        }
                    }
                    None => return Some(p),
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| format!("{path}/{k}"))
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some(path.to_string());
            }
            x.iter().zip(y).enumerate().find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{path}/{i}")))
        }
        (Value::Number(x), Value::Number(y)) => {
            let equal = if x.is_f64() || y.is_f64() { x.as_f64() == y.as_f64() } else { x == y };
            (!equal).then(|| path.to_string())
        }
        _ => (a != b).then(|| path.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey as _;
    use serde_json::json;

    const KEY_DER: &[u8] = include_bytes!("../tests/data/signing_key.pk8.der");
    const CERT_DER: &[u8] = include_bytes!("../tests/data/signing_cert.der");
    /// Signed with the openssl CLI (RS384, x5c) over `signed_statement_payload.json`.
    const OPENSSL_JWS: &[u8] = include_bytes!("../tests/data/signed_statement_rs384.jws");
    const OPENSSL_PAYLOAD: &[u8] = include_bytes!("../tests/data/signed_statement_payload.json");
    /// The example JWS from xAPI Data, Appendix D.
    const SPEC_JWS: &[u8] = include_bytes!("../tests/data/spec_example_signature.jws");

    fn enc(data: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    fn statement() -> Value {
        json!({
            "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb",
            "actor": {"mbox": "mailto:learner@example.com", "name": "Learner", "objectType": "Agent"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-US": "attempted"}},
            "object": {"id": "http://example.com/activities/a", "objectType": "Activity",
                       "definition": {"name": {"en-US": "A"}}},
            "result": {"score": {"scaled": 0.5, "raw": 1}},
            "timestamp": "2024-01-01T10:00:00.000+02:00"
        })
    }

    fn sign(header: &Value, payload: &[u8], alg: JwsAlgorithm) -> String {
        let key = RsaPrivateKey::from_pkcs8_der(KEY_DER).unwrap();
        let input = format!("{}.{}", enc(header.to_string().as_bytes()), enc(payload));
        let sig = match alg {
            JwsAlgorithm::Rs256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input.as_bytes())).unwrap(),
            JwsAlgorithm::Rs384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input.as_bytes())).unwrap(),
            JwsAlgorithm::Rs512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input.as_bytes())).unwrap(),
        };
        format!("{input}.{}", enc(&sig))
    }

    fn x5c_header(alg: &str) -> Value {
        json!({"alg": alg, "x5c": [base64::engine::general_purpose::STANDARD.encode(CERT_DER)]})
    }

    /// The statement as received: the signed one plus the signature attachment.
    fn with_signature_attachment(mut stmt: Value, jws: &str) -> Value {
        stmt["attachments"] = json!([{
            "usageType": SIGNATURE_USAGE_TYPE,
            "display": {"en-US": "Signature"},
            "contentType": "application/octet-stream",
            "length": jws.len(),
            "sha2": hex::encode(Sha256::digest(jws.as_bytes()))
        }]);
        stmt
    }

    #[test]
    fn valid_rs256_with_x5c() {
        let stmt = statement();
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs256);
        let received = with_signature_attachment(stmt, &jws);
        assert_eq!(verify_signed_statement(&received, jws.as_bytes()), Ok(()));
        // Trailing newline in the attachment is tolerated.
        let with_nl = format!("{jws}\r\n");
        assert_eq!(verify_signed_statement(&received, with_nl.as_bytes()), Ok(()));
    }

    #[test]
    fn valid_rs384_rs512_and_wrong_hash() {
        let stmt = statement();
        for (name, alg) in [("RS384", JwsAlgorithm::Rs384), ("RS512", JwsAlgorithm::Rs512)] {
            let jws = sign(&x5c_header(name), stmt.to_string().as_bytes(), alg);
            assert_eq!(verify_signed_statement(&stmt, jws.as_bytes()), Ok(()));
        }
        // Header says RS256 but the signature was made with SHA-512.
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs512);
        assert_eq!(verify_signed_statement(&stmt, jws.as_bytes()), Err(SignatureError::BadSignature));
    }

    #[test]
    fn openssl_signed_fixture() {
        let payload: Value = serde_json::from_slice(OPENSSL_PAYLOAD).unwrap();
        let jws = std::str::from_utf8(OPENSSL_JWS).unwrap();
        let mut received = with_signature_attachment(payload, jws);
        // LRS-assigned properties are ignored.
        received["stored"] = json!("2024-05-02T00:00:00Z");
        received["authority"] = json!({"mbox": "mailto:lrs@example.com"});
        received["version"] = json!("1.0.3");
        assert_eq!(verify_signed_statement(&received, OPENSSL_JWS), Ok(()));
    }

    #[test]
    fn spec_appendix_d_example() {
        let stmt = json!({
            "version": "1.0.0",
            "id": "33cff416-e331-4c9d-969e-5373a1756120",
            "actor": {"mbox": "mailto:example@example.com", "name": "Example Learner", "objectType": "Agent"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced", "display": {"en-US": "experienced"}},
            "object": {
                "id": "https://www.youtube.com/watch?v=xh4kIiH3Sm8",
                "objectType": "Activity",
                "definition": {
                    "name": {"en-US": "Tax Tips & Information : How to File a Tax Return "},
                    "description": {"en-US": "Filing a tax return will require filling out either a 1040, 1040A or 1040EZ form"}
                }
            },
            "timestamp": "2013-04-01T12:00:00Z",
            "attachments": [{
                "usageType": "http://adlnet.gov/expapi/attachments/signature",
                "display": {"en-US": "Signature"},
                "description": {"en-US": "A test signature"},
                "contentType": "application/octet-stream",
                "length": 4235,
                "sha2": "672fa5fa658017f1b72d65036f13379c6ab05d4ab3b6664908d8acf0b6a0c634"
            }]
        });
        assert_eq!(verify_signed_statement(&stmt, SPEC_JWS), Ok(()));
    }

    #[test]
    fn tampered_payload() {
        let stmt = statement();
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs256);
        let mut tampered_stmt = stmt.clone();
        tampered_stmt["result"]["score"]["raw"] = json!(2);
        let segs: Vec<&str> = jws.split('.').collect();
        let tampered = format!("{}.{}.{}", segs[0], enc(tampered_stmt.to_string().as_bytes()), segs[2]);
        assert_eq!(verify_signed_statement(&tampered_stmt, tampered.as_bytes()), Err(SignatureError::BadSignature));
        // Tampered signature bytes.
        let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segs[2]).unwrap();
        sig[10] ^= 1;
        let bad_sig = format!("{}.{}.{}", segs[0], segs[1], enc(&sig));
        assert_eq!(verify_signed_statement(&stmt, bad_sig.as_bytes()), Err(SignatureError::BadSignature));
    }

    #[test]
    fn payload_differs_from_statement() {
        let stmt = statement();
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs256);
        let mut other = stmt.clone();
        other["result"]["score"]["raw"] = json!(99);
        assert!(matches!(
            verify_signed_statement(&other, jws.as_bytes()),
            Err(SignatureError::StatementMismatch(m)) if m.contains("/result/score/raw")
        ));
        let mut other = stmt.clone();
        other["id"] = json!("00000000-0000-4000-8000-000000000000");
        assert!(matches!(verify_signed_statement(&other, jws.as_bytes()), Err(SignatureError::StatementMismatch(_))));
        // Payload has an id but the received statement does not.
        let mut other = stmt.clone();
        other.as_object_mut().unwrap().remove("id");
        assert!(matches!(verify_signed_statement(&other, jws.as_bytes()), Err(SignatureError::StatementMismatch(_))));
        // Extra property in the received statement.
        let mut other = stmt.clone();
        other["context"] = json!({"language": "en"});
        assert!(matches!(
            verify_signed_statement(&other, jws.as_bytes()),
            Err(SignatureError::StatementMismatch(m)) if m.contains("/context")
        ));
    }

    #[test]
    fn immutability_exceptions_are_ignored() {
        // Payload without id/timestamp; verb display and definitions present.
        let mut signed = statement();
        signed.as_object_mut().unwrap().remove("id");
        signed.as_object_mut().unwrap().remove("timestamp");
        signed["actor"] = json!({"objectType": "Group", "member": [
            {"mbox": "mailto:a@Example.com"}, {"mbox": "mailto:b@example.com"}]});
        signed["context"] = json!({"contextActivities": {"parent": [
            {"id": "http://example.com/p", "definition": {"name": {"en-US": "P"}}}]}});
        let jws = sign(&json!({"alg": "RS256"}), signed.to_string().as_bytes(), JwsAlgorithm::Rs256);

        let mut received = signed.clone();
        received["id"] = json!("11111111-2222-4333-8444-555555555555");
        received["timestamp"] = json!("2024-01-01T08:00:00Z");
        received["verb"].as_object_mut().unwrap().remove("display");
        received["object"].as_object_mut().unwrap().remove("definition");
        received["actor"]["member"] = json!([
            {"mbox": "mailto:b@example.com"}, {"mbox": "MAILTO:a@example.COM"}]);
        received["context"]["contextActivities"]["parent"] = json!({"id": "http://example.com/p"});
        received["result"]["score"]["raw"] = json!(1.0);
        assert_eq!(verify_signed_statement(&received, jws.as_bytes()), Ok(()));

        // Same instant in another timezone, upper-case id.
        let stmt = statement();
        let jws = sign(&json!({"alg": "RS512"}), stmt.to_string().as_bytes(), JwsAlgorithm::Rs512);
        let mut received = stmt.clone();
        received["timestamp"] = json!("2024-01-01T08:00:00Z");
        received["id"] = json!("9E13CEFD-53D3-4EAC-B5ED-2CF6693903BB");
        assert_eq!(verify_signed_statement(&received, jws.as_bytes()), Ok(()));
        received["timestamp"] = json!("2024-01-01T08:00:01Z");
        assert!(matches!(
            verify_signed_statement(&received, jws.as_bytes()),
            Err(SignatureError::StatementMismatch(_))
        ));
    }

    #[test]
    fn bad_algorithm() {
        let stmt = statement();
        let p = enc(stmt.to_string().as_bytes());
        for alg in ["HS256", "none", "rs256", "ES256", "PS256"] {
            let jws = format!("{}.{p}.{}", enc(json!({"alg": alg}).to_string().as_bytes()), enc(b"sig"));
            assert_eq!(
                verify_signed_statement(&stmt, jws.as_bytes()),
                Err(SignatureError::UnsupportedAlgorithm(alg.to_string()))
            );
        }
        let jws = format!("{}.{p}.{}", enc(b"{\"typ\":\"JWT\"}"), enc(b"sig"));
        assert_eq!(verify_signed_statement(&stmt, jws.as_bytes()), Err(SignatureError::MissingAlgorithm));
        let jws = format!("{}.{p}.{}", enc(b"{\"alg\":256}"), enc(b"sig"));
        assert!(matches!(verify_signed_statement(&stmt, jws.as_bytes()), Err(SignatureError::UnsupportedAlgorithm(_))));
        let jws = format!("{}.{p}.{}", enc(b"{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"b64\":false}"), enc(b"sig"));
        assert!(matches!(verify_signed_statement(&stmt, jws.as_bytes()), Err(SignatureError::UnsupportedCritical(_))));
    }

    #[test]
    fn not_three_parts() {
        let stmt = statement();
        assert_eq!(verify_signed_statement(&stmt, b"abc.def"), Err(SignatureError::NotCompact(2)));
        assert_eq!(verify_signed_statement(&stmt, b"a.b.c.d.e"), Err(SignatureError::NotCompact(5)));
        assert_eq!(verify_signed_statement(&stmt, b""), Err(SignatureError::NotCompact(1)));
        assert_eq!(
            verify_signed_statement(&stmt, b"{\"payload\":\"x\",\"signatures\":[]}"),
            Err(SignatureError::NotCompact(1))
        );
        assert_eq!(verify_signed_statement(&stmt, b"abc..def"), Err(SignatureError::EmptySegment("payload")));
    }

    #[test]
    fn non_base64_and_garbage() {
        let stmt = statement();
        let h = enc(json!({"alg": "RS256"}).to_string().as_bytes());
        let p = enc(stmt.to_string().as_bytes());
        assert_eq!(
            verify_signed_statement(&stmt, format!("!!!.{p}.abc").as_bytes()),
            Err(SignatureError::InvalidBase64("header"))
        );
        assert_eq!(
            verify_signed_statement(&stmt, format!("{h}.{p}*.abc").as_bytes()),
            Err(SignatureError::InvalidBase64("payload"))
        );
        assert_eq!(
            verify_signed_statement(&stmt, format!("{h}.{p}.a+b/").as_bytes()),
            Err(SignatureError::InvalidBase64("signature"))
        );
        assert_eq!(verify_signed_statement(&stmt, &[0xff, b'.', b'a', b'.', b'b']), Err(SignatureError::NotText));
        // Header not JSON / not an object.
        assert!(matches!(
            verify_signed_statement(&stmt, format!("{}.{p}.abc", enc(b"nope")).as_bytes()),
            Err(SignatureError::InvalidHeader(_))
        ));
        assert!(matches!(
            verify_signed_statement(&stmt, format!("{}.{p}.abc", enc(b"[1]")).as_bytes()),
            Err(SignatureError::InvalidHeader(_))
        ));
        // Conformance "breakJson": first quote replaced by an apostrophe.
        let broken = stmt.to_string().replacen('"', "'", 1);
        assert!(matches!(
            verify_signed_statement(&stmt, format!("{h}.{}.abc", enc(broken.as_bytes())).as_bytes()),
            Err(SignatureError::InvalidPayload(_))
        ));
        assert!(matches!(
            verify_signed_statement(&stmt, format!("{h}.{}.abc", enc(b"[]")).as_bytes()),
            Err(SignatureError::InvalidPayload(_))
        ));
        // Fuzz-ish: every prefix of a valid JWS must fail cleanly or pass.
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs256);
        for end in 0..jws.len() {
            let _ = verify_signed_statement(&stmt, &jws.as_bytes()[..end]);
        }
    }

    #[test]
    fn no_x5c_checks_structure_only() {
        let stmt = statement();
        // Signature bytes are not checked without a certificate...
        let jws = format!(
            "{}.{}.{}",
            enc(json!({"alg": "RS256"}).to_string().as_bytes()),
            enc(stmt.to_string().as_bytes()),
            enc(b"not really a signature")
        );
        assert_eq!(verify_signed_statement(&stmt, jws.as_bytes()), Ok(()));
        // ...but the statement still has to match.
        let mut other = stmt.clone();
        other["verb"]["id"] = json!("http://example.com/other");
        assert!(matches!(verify_signed_statement(&other, jws.as_bytes()), Err(SignatureError::StatementMismatch(_))));
    }

    #[test]
    fn malformed_x5c() {
        let stmt = statement();
        let p = stmt.to_string();
        let cases = [
            json!({"alg": "RS256", "x5c": "notarray"}),
            json!({"alg": "RS256", "x5c": []}),
            json!({"alg": "RS256", "x5c": [1]}),
            json!({"alg": "RS256", "x5c": ["***"]}),
            json!({"alg": "RS256", "x5c": [base64::engine::general_purpose::STANDARD.encode(b"not a certificate")]}),
        ];
        for header in cases {
            let jws = sign(&header, p.as_bytes(), JwsAlgorithm::Rs256);
            let r = verify_signed_statement(&stmt, jws.as_bytes());
            assert!(
                matches!(r, Err(SignatureError::InvalidX5c(_) | SignatureError::InvalidCertificate(_))),
                "{header}: {r:?}"
            );
        }
    }

    #[test]
    fn signature_attachment_lookup() {
        let stmt = statement();
        let jws = sign(&x5c_header("RS256"), stmt.to_string().as_bytes(), JwsAlgorithm::Rs256);
        let received = with_signature_attachment(stmt.clone(), &jws);
        let hashes = signature_attachment_hashes(&received).unwrap();
        assert_eq!(hashes, vec![hex::encode(Sha256::digest(jws.as_bytes()))]);
        assert_eq!(signature_attachment_hashes(&stmt).unwrap(), Vec::<String>::new());

        let data = jws.clone().into_bytes();
        let lookup = |h: &str| (h == hashes[0]).then_some(data.as_slice());
        assert_eq!(verify_statement_signatures(&received, lookup), Ok(()));
        assert!(matches!(
            verify_statement_signatures(&received, |_| None),
            Err(SignatureError::MissingSignatureData(_))
        ));

        // Conformance "bad content type".
        let mut bad = received.clone();
        bad["attachments"][0]["contentType"] = json!("text/plain; charset=ascii");
        assert!(matches!(
            signature_attachment_hashes(&bad),
            Err(SignatureError::BadAttachmentContentType { index: 0, .. })
        ));
        let mut bad = received.clone();
        bad["attachments"][0].as_object_mut().unwrap().remove("sha2");
        assert_eq!(signature_attachment_hashes(&bad), Err(SignatureError::AttachmentWithoutHash(0)));
        assert_eq!(signature_attachment_hashes(&json!([])), Err(SignatureError::StatementNotObject));
        assert_eq!(verify_signed_statement(&json!("x"), jws.as_bytes()), Err(SignatureError::StatementNotObject));
    }
}
