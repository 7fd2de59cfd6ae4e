//! `multipart/mixed` parsing and building (RFC 2046 §5.1) plus the xAPI rules
//! for statement requests that carry attachments (xAPI 1.0.3 Communication §1.5.2,
//! Data §2.4.11).
//!
//! The parser is tolerant where real clients differ from the RFC (bare LF line
//! endings, no space after a header colon, a leading CRLF before the first
//! delimiter, no CRLF after the close delimiter) but never panics and bounds the
//! number of parts it will produce.

use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;

/// Maximum number of body parts accepted by [`parse`].
pub const MAX_PARTS: usize = 1000;

/// Maximum boundary length accepted by [`boundary_from_content_type`] and
/// [`parse`]. RFC 2046 limits boundaries to 70 characters; a little slack is
/// allowed for lenient clients.
pub const MAX_BOUNDARY_LEN: usize = 200;

/// Name of the xAPI attachment hash header (lower-cased, as stored in [`Part`]).
pub const HASH_HEADER: &str = "x-experience-api-hash";

/// Errors produced while parsing or validating a multipart body.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MultipartError {
    #[error("Content-Type is not multipart/mixed (got '{0}')")]
    NotMultipartMixed(String),
    #[error("multipart Content-Type has no boundary parameter")]
    MissingBoundary,
    #[error("invalid multipart boundary: {0}")]
    InvalidBoundary(String),
    #[error("malformed Content-Type header: {0}")]
    MalformedContentType(String),
    #[error("multipart body does not contain the opening boundary delimiter")]
    MissingFirstBoundary,
    #[error("multipart body is missing the closing boundary delimiter '--{0}--'")]
    MissingClosingDelimiter(String),
    #[error("multipart part {part}: header line without a colon: '{line}'")]
    HeaderWithoutColon { part: usize, line: String },
    #[error("multipart part {part}: header with an empty name")]
    EmptyHeaderName { part: usize },
    #[error("multipart part {part}: header '{name}' is not valid UTF-8")]
    HeaderNotUtf8 { part: usize, name: String },
    #[error("multipart body has more than {MAX_PARTS} parts")]
    TooManyParts,
    #[error("multipart body contains no parts")]
    NoParts,
    #[error("the first multipart part must have Content-Type application/json (got '{0}')")]
    FirstPartNotJson(String),
    #[error("the first multipart part is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("multipart part {part}: missing X-Experience-API-Hash header")]
    MissingHash { part: usize },
    #[error("multipart part {part}: X-Experience-API-Hash '{hash}' is not a hex SHA-256/384/512 digest")]
    InvalidHash { part: usize, hash: String },
    #[error("multipart part {part}: Content-Transfer-Encoding must be 'binary' (got '{encoding}')")]
    BadTransferEncoding { part: usize, encoding: String },
    #[error(
        "multipart part {part}: X-Experience-API-Hash '{declared}' does not match the part content (computed '{computed}')"
    )]
    HashMismatch { part: usize, declared: String, computed: String },
}

/// One body part of a multipart document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Part {
    /// Header fields in order of appearance; names are lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Raw part content (no transfer decoding is applied).
    pub body: Vec<u8>,
}

impl Part {
    /// A part with no headers.
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Part { headers: Vec::new(), body: body.into() }
    }

    /// Adds a header (the name is lower-cased).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The statements part of an xAPI multipart document (`Content-Type: application/json`).
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Part::new(body).with_header("content-type", "application/json")
    }

    /// An xAPI attachment part with `Content-Type`, `Content-Transfer-Encoding: binary`
    /// and `X-Experience-API-Hash` headers.
    pub fn attachment(content_type: &str, sha2: &str, body: impl Into<Vec<u8>>) -> Self {
        Part::new(body)
            .with_header("content-type", content_type)
            .with_header("content-transfer-encoding", "binary")
            .with_header(HASH_HEADER, sha2)
    }

    /// First value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The full `Content-Type` header value, if present.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The lower-cased media type (`type/subtype`, parameters removed), if present.
    pub fn media_type(&self) -> Option<String> {
        self.content_type().map(media_type)
    }
}

/// An attachment part of an xAPI statement request, validated by
/// [`split_statement_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPart {
    /// Value of the `X-Experience-API-Hash` header, lower-case hex; verified to be
    /// the SHA-256, SHA-384 or SHA-512 (by length) of `body`.
    pub sha2: String,
    /// The part's `Content-Type` header value, or the empty string if the part had none.
    pub content_type: String,
    /// Raw attachment bytes.
    pub body: Vec<u8>,
}

/// Lower-cased media type of a Content-Type value, without parameters
/// (`"Application/JSON; charset=utf-8"` → `"application/json"`).
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Extracts the boundary from a `multipart/mixed` Content-Type value, e.g.
/// `multipart/mixed; boundary="abc"` or `multipart/mixed;boundary=abc`.
/// The media type and the parameter name are matched case-insensitively.
pub fn boundary_from_content_type(ct: &str) -> Result<String, MultipartError> {
    let mt = media_type(ct);
    if mt != "multipart/mixed" {
        return Err(MultipartError::NotMultipartMixed(mt));
    }
    let params = ct.split_once(';').map(|(_, p)| p).unwrap_or("");
    for (name, value) in parse_params(params)? {
        if name.eq_ignore_ascii_case("boundary") {
            validate_boundary(&value)?;
            return Ok(value);
        }
    }
    Err(MultipartError::MissingBoundary)
}

/// Parses `; name=value; name="quoted \" value"` parameter lists.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, MultipartError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Skip separators and whitespace.
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim().to_string();
        if chars.peek() != Some(&'=') {
            // Parameter without value: ignore it (e.g. a stray token).
            continue;
        }
        chars.next(); // '='
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(MultipartError::MalformedContentType(format!(
                    "unterminated quoted value for parameter '{name}'"
                )));
            }
            // Skip anything up to the next ';'.
            while chars.peek().is_some_and(|c| *c != ';') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        if name.is_empty() {
            return Err(MultipartError::MalformedContentType("parameter with an empty name".to_string()));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn validate_boundary(b: &str) -> Result<(), MultipartError> {
    if b.is_empty() {
        return Err(MultipartError::InvalidBoundary("empty boundary".into()));
    }
    if b.len() > MAX_BOUNDARY_LEN {
        return Err(MultipartError::InvalidBoundary(format!("boundary longer than {MAX_BOUNDARY_LEN} characters")));
    }
    if b.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(MultipartError::InvalidBoundary("boundary contains control or non-ASCII characters".into()));
    }
    Ok(())
}

/// Result of examining the bytes right after a `--boundary` occurrence.
enum DelimiterKind {
    /// Delimiter line; the next part starts at the contained offset.
    Part(usize),
    /// Close delimiter (`--boundary--`).
    Close,
    /// Not a delimiter (the boundary is followed by other characters).
    NotDelimiter,
    /// Body ends right after `--boundary` (or its padding).
    Eof,
}

/// `pos` is the offset just after `--boundary`.
fn classify_delimiter(body: &[u8], pos: usize) -> DelimiterKind {
    let rest = &body[pos.min(body.len())..];
    if rest.starts_with(b"--") {
        return DelimiterKind::Close;
    }
    let mut i = 0;
    while i < rest.len() && (rest[i] == b' ' || rest[i] == b'\t') {
        i += 1;
    }
    match rest.get(i) {
        None => DelimiterKind::Eof,
        Some(b'\n') => DelimiterKind::Part(pos + i + 1),
        Some(b'\r') if rest.get(i + 1) == Some(&b'\n') => DelimiterKind::Part(pos + i + 2),
        // A lone CR at the very end: treat like end of input.
        Some(b'\r') if i + 1 == rest.len() => DelimiterKind::Eof,
        Some(_) => DelimiterKind::NotDelimiter,
    }
}

/// Finds the next line starting with `dash_boundary` at or after `from`
/// (the line must start at `from` itself or just after an LF). Returns the
/// offset of the line start.
fn find_delimiter_line(body: &[u8], dash_boundary: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        if i > body.len() {
            return None;
        }
        if (i == 0 || body[i - 1] == b'\n') && body[i..].starts_with(dash_boundary) {
            return Some(i);
        }
        let nl = body[i..].iter().position(|&b| b == b'\n')?;
        i += nl + 1;
    }
}

/// Parses a multipart body delimited by `boundary` (without the leading `--`).
///
/// The preamble before the first delimiter and the epilogue after the close
/// delimiter are ignored. Line endings may be CRLF or bare LF. The line break
/// preceding each delimiter belongs to the delimiter, not to the part body.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    validate_boundary(boundary)?;
    let mut dash_boundary = Vec::with_capacity(boundary.len() + 2);
    dash_boundary.extend_from_slice(b"--");
    dash_boundary.extend_from_slice(boundary.as_bytes());

    // Opening delimiter.
    let mut search_from = 0;
    let mut part_start = loop {
        let Some(line) = find_delimiter_line(body, &dash_boundary, search_from) else {
            return Err(MultipartError::MissingFirstBoundary);
        };
        match classify_delimiter(body, line + dash_boundary.len()) {
            DelimiterKind::Part(start) => break start,
            DelimiterKind::Close => return Err(MultipartError::NoParts),
            DelimiterKind::Eof => {
                return Err(MultipartError::MissingClosingDelimiter(boundary.to_string()));
            }
            DelimiterKind::NotDelimiter => search_from = line + 1,
        }
    };

    let mut parts = Vec::new();
    loop {
        if parts.len() >= MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        let index = parts.len();
        // Locate the delimiter that ends this part.
        let mut search_from = part_start;
        let (line, next) = loop {
            let Some(line) = find_delimiter_line(body, &dash_boundary, search_from) else {
                return Err(MultipartError::MissingClosingDelimiter(boundary.to_string()));
            };
            match classify_delimiter(body, line + dash_boundary.len()) {
                DelimiterKind::NotDelimiter => search_from = line + 1,
                DelimiterKind::Eof => {
                    return Err(MultipartError::MissingClosingDelimiter(boundary.to_string()));
                }
                DelimiterKind::Close => break (line, None),
                DelimiterKind::Part(start) => break (line, Some(start)),
            }
        };
        // The part ends before the line break preceding the delimiter line.
        // A delimiter directly at `part_start` means an empty part without headers.
        let mut end = line;
        if end > part_start && body[end - 1] == b'\n' {
            end -= 1;
            if end > part_start && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let raw = &body[part_start..end.max(part_start)];
        parts.push(parse_part(raw, index)?);
        match next {
            Some(start) => part_start = start,
            None => break,
        }
    }
    Ok(parts)
}

/// Splits raw part bytes (without the line break preceding the next delimiter)
/// into headers and body.
fn parse_part(raw: &[u8], index: usize) -> Result<Part, MultipartError> {
    // Locate the end of the header block: an empty line.
    let mut headers_end = None; // (end of header bytes, start of body)
    let mut pos = 0;
    loop {
        if pos >= raw.len() {
            break;
        }
        let rest = &raw[pos..];
        // Empty line at the current line start?
        if rest.starts_with(b"\r\n") {
            headers_end = Some((pos, pos + 2));
            break;
        }
        if rest.starts_with(b"\n") {
            headers_end = Some((pos, pos + 1));
            break;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => pos += nl + 1,
            None => break,
        }
    }
    // Without a blank line the whole part is a header block with an empty body
    // (e.g. `--b CRLF Header: v CRLF CRLF --b`, where the last CRLF belongs to
    // the delimiter); invalid header lines are reported by `parse_headers`.
    let (hdr_end, body_start) = headers_end.unwrap_or((raw.len(), raw.len()));
    let headers = parse_headers(&raw[..hdr_end], index)?;
    Ok(Part { headers, body: raw[body_start.min(raw.len())..].to_vec() })
}

fn parse_headers(block: &[u8], index: usize) -> Result<Vec<(String, String)>, MultipartError> {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // Folded continuation of the previous header.
            match headers.last_mut() {
                Some((_, value)) => {
                    value.push(b' ');
                    value.extend_from_slice(trim_bytes(line));
                    continue;
                }
                None => {
                    return Err(MultipartError::HeaderWithoutColon {
                        part: index,
                        line: String::from_utf8_lossy(line).into_owned(),
                    });
                }
            }
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(MultipartError::HeaderWithoutColon {
                part: index,
                line: String::from_utf8_lossy(line).chars().take(200).collect(),
            });
        };
        let name = trim_bytes(&line[..colon]);
        if name.is_empty() {
            return Err(MultipartError::EmptyHeaderName { part: index });
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        headers.push((name, trim_bytes(&line[colon + 1..]).to_vec()));
    }
    headers
        .into_iter()
        .map(|(name, value)| match String::from_utf8(value) {
            Ok(v) => Ok((name, v)),
            Err(_) => Err(MultipartError::HeaderNotUtf8 { part: index, name }),
        })
        .collect()
}

fn trim_bytes(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

/// Canonical capitalisation for well-known header names.
fn display_header_name(name: &str) -> String {
    if name.eq_ignore_ascii_case(HASH_HEADER) {
        return "X-Experience-API-Hash".to_string();
    }
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Serialises `parts` as a `multipart/mixed` body with CRLF line endings.
/// Header names are written in canonical capitalisation; CR/LF characters in
/// header names or values are replaced by spaces. The caller must pick a
/// boundary that does not occur in any part (e.g. [`new_boundary`]).
pub fn build(boundary: &str, parts: &[Part]) -> Vec<u8> {
    let capacity = parts
        .iter()
        .map(|p| {
            p.body.len() + boundary.len() + 8 + p.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
        })
        .sum::<usize>()
        + boundary.len()
        + 8;
    let mut out = Vec::with_capacity(capacity);
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    for part in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &part.headers {
            out.extend_from_slice(display_header_name(&clean(name)).as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(clean(value).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&part.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// A fresh random boundary (derived from a v4 UUID).
pub fn new_boundary() -> String {
    format!("xapi-{}", uuid::Uuid::new_v4().simple())
}

/// The `Content-Type` header value for a body built with [`build`].
pub fn content_type_for(boundary: &str) -> String {
    format!("multipart/mixed; boundary=\"{boundary}\"")
}

/// Lower-case hex digest of `data` with the SHA-2 variant implied by the length
/// of `hex_digest` (64 → SHA-256, 96 → SHA-384, 128 → SHA-512).
fn digest_matching(hex_len: usize, data: &[u8]) -> Option<String> {
    match hex_len {
        64 => Some(hex::encode(Sha256::digest(data))),
        96 => Some(hex::encode(Sha384::digest(data))),
        128 => Some(hex::encode(Sha512::digest(data))),
        _ => None,
    }
}

/// Applies the xAPI rules to the parts of a statement request:
///
/// * there must be at least one part, and the first must have Content-Type
///   `application/json` (parameters such as `charset` are allowed) and contain
///   valid JSON (a statement or an array of statements; not checked further here);
/// * every other part must have an `X-Experience-API-Hash` header whose value is
///   a hex SHA-256/384/512 digest (selected by length 64/96/128, case-insensitive)
///   equal to the digest of the part content;
/// * `Content-Transfer-Encoding`, if present, must be `binary` (case-insensitive).
///   A missing header is accepted: the spec says the LRS SHOULD assume binary,
///   and the conformance suite only rejects a different value (`base64`).
///
/// Matching the hashes against the statements' `attachments[].sha2` values
/// (every part must be referenced, every non-fileUrl attachment must be present)
/// is left to the caller.
pub fn split_statement_request(parts: Vec<Part>) -> Result<(serde_json::Value, Vec<AttachmentPart>), MultipartError> {
    let mut iter = parts.into_iter();
    let first = iter.next().ok_or(MultipartError::NoParts)?;
    let first_type = first.media_type().unwrap_or_default();
    if first_type != "application/json" {
        return Err(MultipartError::FirstPartNotJson(first.content_type().unwrap_or("").to_string()));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&first.body).map_err(|e| MultipartError::InvalidJson(e.to_string()))?;

    let mut attachments = Vec::new();
    for (offset, part) in iter.enumerate() {
        let index = offset + 1;
        let encoding =
            part.header("content-transfer-encoding").filter(|enc| !enc.trim().eq_ignore_ascii_case("binary"));
        if let Some(enc) = encoding {
            return Err(MultipartError::BadTransferEncoding { part: index, encoding: enc.to_string() });
        }
        let declared = part
            .header(HASH_HEADER)
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(MultipartError::MissingHash { part: index })?
            .to_ascii_lowercase();
        if !declared.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MultipartError::InvalidHash { part: index, hash: declared });
        }
        let Some(computed) = digest_matching(declared.len(), &part.body) else {
            return Err(MultipartError::InvalidHash { part: index, hash: declared });
        };
        if computed != declared {
            return Err(MultipartError::HashMismatch { part: index, declared, computed });
        }
        let content_type = part.content_type().unwrap_or("").to_string();
        attachments.push(AttachmentPart { sha2: declared, content_type, body: part.body });
    }
    Ok((json, attachments))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const B: &str = "-------314159265358979323846";

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn boundary_parsing() {
        assert_eq!(boundary_from_content_type("multipart/mixed; boundary=abc").unwrap(), "abc");
        assert_eq!(
            boundary_from_content_type("Multipart/Mixed;BOUNDARY=\"abcABC0123'()+_,-./:=?\"").unwrap(),
            "abcABC0123'()+_,-./:=?"
        );
        assert_eq!(boundary_from_content_type("multipart/mixed; charset=utf-8; boundary = \"a b\" ").unwrap(), "a b");
        assert_eq!(boundary_from_content_type("multipart/mixed; boundary=\"a\\\"b\"").unwrap(), "a\"b");
        assert_eq!(boundary_from_content_type("multipart/mixed;"), Err(MultipartError::MissingBoundary));
        assert_eq!(boundary_from_content_type("multipart/mixed"), Err(MultipartError::MissingBoundary));
        assert!(matches!(
            boundary_from_content_type("multipart/form-data; boundary=abc"),
            Err(MultipartError::NotMultipartMixed(_))
        ));
        assert!(matches!(
            boundary_from_content_type("multipart/mixed; boundary="),
            Err(MultipartError::InvalidBoundary(_))
        ));
        assert!(matches!(
            boundary_from_content_type("multipart/mixed; boundary=\"abc"),
            Err(MultipartError::MalformedContentType(_))
        ));
    }

    fn conformance_style_body(stmt: &str, att: &[u8], hash: &str) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(format!("--{B}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
        msg.extend_from_slice(stmt.as_bytes());
        msg.extend_from_slice(
            format!(
                "\r\n--{B}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}\r\n\r\n"
            )
            .as_bytes(),
        );
        msg.extend_from_slice(att);
        msg.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
        msg
    }

    #[test]
    fn parses_conformance_style_body() {
        let att = b"here is a simple attachment";
        let body = conformance_style_body("{\"a\":1}", att, &sha256_hex(att));
        let parts = parse(&body, B).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), Some("application/json"));
        assert_eq!(parts[0].body, b"{\"a\":1}");
        assert_eq!(parts[1].header("Content-Transfer-Encoding"), Some("binary"));
        assert_eq!(parts[1].body, att);
        let (json, atts) = split_statement_request(parts).unwrap();
        assert_eq!(json, serde_json::json!({"a": 1}));
        assert_eq!(atts.len(), 1);
        assert_eq!(atts[0].sha2, sha256_hex(att));
        assert_eq!(atts[0].content_type, "text/plain");
        assert_eq!(atts[0].body, att);
    }

    #[test]
    fn parses_signed_statement_helper_style_body() {
        // Leading CRLF, no space after colons, no CRLF after the close delimiter.
        let sig = b"aaa.bbb.ccc";
        let hash = sha256_hex(sig);
        let body = format!(
            "\r\n--{B}\r\nContent-Type:application/json\r\n\r\n{{}}\r\n--{B}\r\nContent-Type:application/octet-stream\r\nContent-Transfer-Encoding:binary\r\nX-Experience-API-Hash:{hash}\r\n\r\naaa.bbb.ccc\r\n--{B}--"
        );
        let parts = parse(body.as_bytes(), B).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].header(HASH_HEADER), Some(hash.as_str()));
        assert_eq!(parts[1].body, sig);
    }

    #[test]
    fn accepts_bare_lf_preamble_epilogue_and_padding() {
        let body = format!(
            "this is a preamble\n--{B}  \nContent-Type: application/json\n\n[1,2]\n--{B}\t\nX-Test: a\n  folded\n\nline1\nline2\n\n--{B}--  \nepilogue --{B}\n"
        );
        let parts = parse(body.as_bytes(), B).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"[1,2]");
        assert_eq!(parts[1].header("x-test"), Some("a folded"));
        assert_eq!(parts[1].body, b"line1\nline2\n");
    }

    #[test]
    fn boundary_prefix_inside_content_is_not_a_delimiter() {
        let body = format!("--{B}\r\nContent-Type: text/plain\r\n\r\n--{B}X not a delimiter\r\nmore\r\n--{B}--\r\n");
        let parts = parse(body.as_bytes(), B).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, format!("--{B}X not a delimiter\r\nmore").as_bytes());
    }

    #[test]
    fn binary_body_preserved() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let built = build(
            "bnd",
            &[
                Part::json("{}"),
                Part::attachment("image/jpeg", &sha256_hex(&data), data.clone()),
                Part::new(Vec::new()),
            ],
        );
        let parts = parse(&built, "bnd").unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].body, data);
        assert!(parts[2].headers.is_empty());
        assert!(parts[2].body.is_empty());
    }

    #[test]
    fn build_roundtrip_and_format() {
        let boundary = new_boundary();
        assert!(boundary.len() > 20);
        assert_ne!(boundary, new_boundary());
        let parts =
            vec![Part::json("{\"x\":true}"), Part::attachment("text/plain", &sha256_hex(b"hi"), b"hi".to_vec())];
        let built = build(&boundary, &parts);
        let text = String::from_utf8(built.clone()).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n")));
        assert!(text.contains("X-Experience-API-Hash: "));
        assert!(text.contains("Content-Transfer-Encoding: binary\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
        let ct = content_type_for(&boundary);
        assert_eq!(boundary_from_content_type(&ct).unwrap(), boundary);
        let reparsed = parse(&built, &boundary).unwrap();
        assert_eq!(reparsed, parts);
    }

    #[test]
    fn part_with_headers_and_empty_body() {
        let body = format!("--{B}\r\nContent-Type: text/plain\r\n\r\n--{B}\r\nX-A: 1\r\n--{B}--");
        let parts = parse(body.as_bytes(), B).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].body.is_empty());
        assert_eq!(parts[1].header("x-a"), Some("1"));
        assert!(parts[1].body.is_empty());
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse(b"no boundary here", B), Err(MultipartError::MissingFirstBoundary));
        assert_eq!(parse(b"", B), Err(MultipartError::MissingFirstBoundary));
        let unclosed = format!("--{B}\r\nContent-Type: text/plain\r\n\r\nabc\r\n");
        assert!(matches!(parse(unclosed.as_bytes(), B), Err(MultipartError::MissingClosingDelimiter(_))));
        let unclosed2 = format!("--{B}\r\nContent-Type: text/plain\r\n\r\nabc\r\n--{B}");
        assert!(matches!(parse(unclosed2.as_bytes(), B), Err(MultipartError::MissingClosingDelimiter(_))));
        let no_colon = format!("--{B}\r\nContent-Type text/plain\r\n\r\nabc\r\n--{B}--");
        assert!(matches!(parse(no_colon.as_bytes(), B), Err(MultipartError::HeaderWithoutColon { part: 0, .. })));
        let empty_name = format!("--{B}\r\n: x\r\n\r\nabc\r\n--{B}--");
        assert_eq!(parse(empty_name.as_bytes(), B), Err(MultipartError::EmptyHeaderName { part: 0 }));
        let no_parts = format!("--{B}--\r\n");
        assert_eq!(parse(no_parts.as_bytes(), B), Err(MultipartError::NoParts));
        assert!(matches!(parse(b"--\r\n", ""), Err(MultipartError::InvalidBoundary(_))));
        // Header block that runs into the body without a blank line.
        let unterminated = format!("--{B}\r\nContent-Type: a\r\nabc\r\n\r\n--{B}--");
        assert!(parse(unterminated.as_bytes(), B).is_err());
    }

    #[test]
    fn too_many_parts() {
        let mut body = String::new();
        for _ in 0..=MAX_PARTS {
            body.push_str(&format!("--{B}\r\n\r\nx\r\n"));
        }
        body.push_str(&format!("--{B}--"));
        assert_eq!(parse(body.as_bytes(), B), Err(MultipartError::TooManyParts));
        let mut ok = String::new();
        for _ in 0..MAX_PARTS {
            ok.push_str(&format!("--{B}\r\n\r\nx\r\n"));
        }
        ok.push_str(&format!("--{B}--"));
        assert_eq!(parse(ok.as_bytes(), B).unwrap().len(), MAX_PARTS);
    }

    #[test]
    fn never_panics_on_prefixes_and_garbage() {
        let att = b"attachment";
        let body = conformance_style_body("{\"a\":1}", att, &sha256_hex(att));
        for end in 0..body.len() {
            let _ = parse(&body[..end], B);
            let _ = parse(&body[end..], B);
        }
        let mut garbage: Vec<u8> = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let choices = [b'-', b'\r', b'\n', b':', b'a', b' ', 0xff];
            garbage.push(choices[(x >> 16) as usize % choices.len()]);
        }
        let _ = parse(&garbage, "a");
        let _ = parse(&garbage, "-");
        let _ = parse(&garbage, "--");
    }

    #[test]
    fn xapi_rules() {
        let att = b"here is a simple attachment";
        let good_hash = sha256_hex(att);

        // First part must be application/json.
        let parts = vec![Part::new("{}").with_header("content-type", "text/plain")];
        assert!(matches!(split_statement_request(parts), Err(MultipartError::FirstPartNotJson(_))));
        assert!(matches!(split_statement_request(vec![Part::new("{}")]), Err(MultipartError::FirstPartNotJson(_))));
        assert_eq!(split_statement_request(vec![]), Err(MultipartError::NoParts));
        // Charset parameter is fine; invalid JSON is not.
        let ok = Part::new("{}").with_header("content-type", "Application/JSON; charset=utf-8");
        assert!(split_statement_request(vec![ok]).is_ok());
        assert!(matches!(split_statement_request(vec![Part::json("{not json")]), Err(MultipartError::InvalidJson(_))));

        // Missing hash (conformance: second statements part without hash).
        let parts = vec![Part::json("{}"), Part::json("{}")];
        assert_eq!(split_statement_request(parts), Err(MultipartError::MissingHash { part: 1 }));
        let parts = vec![
            Part::json("{}"),
            Part::new(att.to_vec())
                .with_header("content-type", "text/plain")
                .with_header("content-transfer-encoding", "binary"),
        ];
        assert_eq!(split_statement_request(parts), Err(MultipartError::MissingHash { part: 1 }));

        // Wrong transfer encoding.
        let parts = vec![
            Part::json("{}"),
            Part::new(att.to_vec())
                .with_header("content-transfer-encoding", "base64")
                .with_header(HASH_HEADER, good_hash.clone()),
        ];
        assert!(matches!(split_statement_request(parts), Err(MultipartError::BadTransferEncoding { part: 1, .. })));

        // Missing transfer encoding is assumed binary; missing content type → "".
        let parts = vec![Part::json("{}"), Part::new(att.to_vec()).with_header(HASH_HEADER, good_hash.to_uppercase())];
        let (_, atts) = split_statement_request(parts).unwrap();
        assert_eq!(atts[0].sha2, good_hash);
        assert_eq!(atts[0].content_type, "");

        // Hash mismatch (conformance uses a valid-looking but wrong SHA-256).
        let parts = vec![
            Part::json("{}"),
            Part::attachment(
                "text/plain",
                "b018994f8bbe0f08992a65c48c8c8c56f09e9baceaa6227ed85c90ae52b73c89",
                att.to_vec(),
            ),
        ];
        assert!(matches!(split_statement_request(parts), Err(MultipartError::HashMismatch { part: 1, .. })));

        // Bad hash syntax.
        for bad in ["xyz", "abcd", &"g".repeat(64)] {
            let parts = vec![Part::json("{}"), Part::attachment("text/plain", bad, att.to_vec())];
            assert!(matches!(split_statement_request(parts), Err(MultipartError::InvalidHash { part: 1, .. })));
        }

        // SHA-384 and SHA-512 by length.
        let h384 = hex::encode(Sha384::digest(att));
        let h512 = hex::encode(Sha512::digest(att));
        let parts = vec![
            Part::json("[]"),
            Part::attachment("text/plain", &h384, att.to_vec()),
            Part::attachment("text/plain", &h512, att.to_vec()),
        ];
        let (json, atts) = split_statement_request(parts).unwrap();
        assert_eq!(json, serde_json::json!([]));
        assert_eq!(atts.len(), 2);
        assert_eq!(atts[1].sha2, h512);
    }

    #[test]
    fn missing_delimiter_between_parts_is_rejected_as_json_error() {
        // Conformance "boundary not provided in body": the attachment headers end
        // up inside the JSON part, which then fails to parse.
        let att = b"here is a simple attachment";
        let body = format!(
            "--{B}\r\nContent-Type: application/json\r\n\r\n{{}}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}\r\n\r\nhere is a simple attachment\r\n--{B}--\r\n",
            sha256_hex(att)
        );
        let parts = parse(body.as_bytes(), B).unwrap();
        assert!(matches!(split_statement_request(parts), Err(MultipartError::InvalidJson(_))));
    }
}
