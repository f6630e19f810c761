//! JWT bearer authentication.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use std::future::{Ready, ready};
use usagelogs_core::Claims;

/// Why the JWT settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("unsupported JWT algorithm '{0}': use HS256, RS256 or ES256")]
    Algorithm(String),
    #[error("algorithm {0:?} needs a PEM public key (--jwt-public-key)")]
    NeedsPublicKey(Algorithm),
    #[error("algorithm HS256 needs a shared secret (--jwt-secret)")]
    NeedsSecret,
    #[error("cannot read the JWT key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
}

/// The key material a verifier is built from.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(Vec<u8>),
    /// RS256 or ES256 public key, PEM.
    PublicPem(Vec<u8>),
}

/// Parses `HS256`, `RS256` or `ES256`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, JwtConfigError> {
    match name.to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        _ => Err(JwtConfigError::Algorithm(name.to_owned())),
    }
}

/// Verifies bearer tokens with one pinned algorithm.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `algorithm` with `key`; `issuer` and `audience` are checked when given.
    pub fn new(
        algorithm: Algorithm,
        key: &JwtKey,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, JwtConfigError> {
        let key = match (algorithm, key) {
            (Algorithm::HS256, JwtKey::Secret(s)) => DecodingKey::from_secret(s),
            (Algorithm::HS256, JwtKey::PublicPem(_)) => return Err(JwtConfigError::NeedsSecret),
            (Algorithm::RS256, JwtKey::PublicPem(p)) => DecodingKey::from_rsa_pem(p)?,
            (Algorithm::ES256, JwtKey::PublicPem(p)) => DecodingKey::from_ec_pem(p)?,
            (alg, _) => return Err(JwtConfigError::NeedsPublicKey(alg)),
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 30;
        // A configured issuer or audience is required, not merely checked when present.
        let mut required = vec!["exp"];
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self { key, validation })
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        decode::<Claims>(token, &self.key, &self.validation).map(|d| d.claims)
    }
}

/// Signs tokens with an HS256 secret (the `token` command, tests).
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    /// A signer for an HS256 shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self { key: EncodingKey::from_secret(secret) }
    }

    /// A signed JWT carrying `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.key)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::internal(std::io::Error::other("application state missing"))));
        };
        let result = match bearer(req) {
            None => Err(ApiError::Unauthenticated),
            Some(token) => state.jwt.verify(token).map(Caller).map_err(|e| {
                tracing::debug!(reason = %e, "bearer token refused");
                ApiError::Unauthenticated
            }),
        };
        ready(result)
    }
}
