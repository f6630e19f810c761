//! Key material: the JWT verifier and signer, and the page-token key.

use crate::cli::Common;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;
use usagelogs_http::{JwtKey, JwtVerifier, TokenSigner, parse_algorithm};
use usagelogs_service::PageTokenKey;

/// Where the development secret is kept, in the working directory.
pub const DEV_SECRET_FILE: &str = ".usagelogs-dev-secret";

/// The keys of one process.
#[derive(Debug)]
pub struct Keys {
    pub verifier: JwtVerifier,
    /// Present when tokens are HS256 with a secret we hold.
    pub signer: Option<TokenSigner>,
    pub page_key: PageTokenKey,
    /// Set when the development secret is in use: its file.
    pub dev_secret_file: Option<String>,
}

fn derive(secret: &[u8], label: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Reads the development secret, making it on first use.
fn dev_secret() -> Result<String, String> {
    let path = Path::new(DEV_SECRET_FILE);
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            let secret = random_hex(32);
            std::fs::write(path, format!("{secret}\n"))
                .map_err(|e| format!("cannot write the development secret to {DEV_SECRET_FILE}: {e}"))?;
            Ok(secret)
        }
    }
}

/// Builds the keys from the settings.
pub fn load(common: &Common) -> Result<Keys, String> {
    let algorithm = common.jwt_algorithm.as_deref().map(parse_algorithm).transpose().map_err(|e| e.to_string())?;
    let (key, secret, dev_secret_file) = match (&common.jwt_public_key, &common.jwt_secret) {
        (Some(_), Some(_)) => return Err("give either --jwt-secret or --jwt-public-key, not both".into()),
        (Some(path), None) => {
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            (JwtKey::PublicPem(pem), None, None)
        }
        (None, Some(secret)) if secret.len() < 16 => {
            return Err("--jwt-secret must be at least 16 characters".into());
        }
        (None, Some(secret)) => (JwtKey::Secret(secret.as_bytes().to_vec()), Some(secret.clone()), None),
        (None, None) => {
            let secret = dev_secret()?;
            (JwtKey::Secret(secret.as_bytes().to_vec()), Some(secret), Some(DEV_SECRET_FILE.to_owned()))
        }
    };
    let algorithm = algorithm.unwrap_or(match key {
        JwtKey::Secret(_) => jsonwebtoken::Algorithm::HS256,
        JwtKey::PublicPem(_) => jsonwebtoken::Algorithm::RS256,
    });
    let verifier = JwtVerifier::new(algorithm, &key, common.jwt_issuer.as_deref(), common.jwt_audience.as_deref())
        .map_err(|e| e.to_string())?;
    let signer = secret.as_deref().map(|s| TokenSigner::hs256(s.as_bytes()));
    let page_key = match (&common.page_token_key, &secret) {
        (Some(k), _) => PageTokenKey::new(k.as_bytes().to_vec()),
        (None, Some(s)) => PageTokenKey::new(derive(s.as_bytes(), "usagelogs page tokens")),
        (None, None) => {
            tracing::warn!("no --page-token-key: page tokens will not survive a restart");
            PageTokenKey::new(random_hex(32).into_bytes())
        }
    };
    Ok(Keys { verifier, signer, page_key, dev_secret_file })
}
