//! Learners sign in through the Learning Hub's identity provider and
//! present its bearer JWT. The signature is checked against configured
//! public keys (RS256/384/512, ES256/384), with issuer, audience and
//! expiry; the subject is the learner's Learning Hub account name.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// How to check learner tokens.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<(DecodingKey, Vec<Algorithm>)>,
    issuer: String,
    audience: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("cannot read the JWT key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the JWT key file {path} holds no RSA or EC public key in PEM")]
    NotAKey { path: String },
    #[error("learner sign-in needs at least one key, an issuer and an audience")]
    Incomplete,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl JwtVerifier {
    /// Loads PEM public keys (RSA or EC) from files.
    pub fn from_pem_files(paths: &[impl AsRef<Path>], issuer: &str, audience: &str) -> Result<Self, JwtSetupError> {
        if paths.is_empty() || issuer.is_empty() || audience.is_empty() {
            return Err(JwtSetupError::Incomplete);
        }
        let mut keys = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let pem = std::fs::read(path)
                .map_err(|e| JwtSetupError::Read { path: path.display().to_string(), reason: e.to_string() })?;
            keys.push(
                Self::key_from_pem(&pem).ok_or_else(|| JwtSetupError::NotAKey { path: path.display().to_string() })?,
            );
        }
        Ok(Self { keys, issuer: issuer.to_owned(), audience: audience.to_owned() })
    }

    fn key_from_pem(pem: &[u8]) -> Option<(DecodingKey, Vec<Algorithm>)> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Some((key, vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Some((key, vec![Algorithm::ES256, Algorithm::ES384]));
        }
        None
    }

    /// The account name of a valid token; `None` when the token is forged,
    /// expired, for another audience or issuer, or malformed.
    pub fn learner_account(&self, token: &str) -> Option<String> {
        let header = decode_header(token).ok()?;
        for (key, algorithms) in &self.keys {
            if !algorithms.contains(&header.alg) {
                continue;
            }
            let mut validation = Validation::new(header.alg);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            validation.leeway = 30;
            validation.validate_nbf = true;
            if let Ok(data) = decode::<Claims>(token, key, &validation) {
                let subject = data.claims.sub.trim().to_owned();
                return (!subject.is_empty()).then_some(subject);
            }
        }
        None
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}
