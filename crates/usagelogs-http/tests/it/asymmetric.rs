//! RS256 and ES256 tokens verified with a PEM public key; the pinned algorithm refuses the rest,
//! including the HMAC-with-the-public-key confusion.

use crate::support::*;
use actix_web::http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use usagelogs_http::{JwtKey, JwtVerifier};

const RS_PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("keys/rs256-public.pem");
const ES_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
const ES_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");

fn sign(alg: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(alg), &tokens::claims("acme"), key).unwrap()
}

async fn check(alg: Algorithm, public: &[u8], good: String, others: Vec<String>) {
    let verifier = JwtVerifier::new(alg, &JwtKey::PublicPem(public.to_vec()), None, None).unwrap();
    let api = TestApp::new().with_verifier(verifier).with_entries([entry("push_repo", "acme")]).start().await;
    let path = "/api/v1/organization/acme/logs";
    assert_eq!(api.get(path, Some(&good)).await.status, StatusCode::OK, "{alg:?}");
    for token in others {
        let r = api.get(path, Some(&token)).await;
        assert_api_error(&r, 401, "invalid_token", &[]);
    }
}

#[actix_web::test]
async fn rs256_with_a_public_key() {
    let good = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap());
    let es = sign(Algorithm::ES256, &EncodingKey::from_ec_pem(ES_PRIVATE).unwrap());
    // The public key used as an HMAC secret: the classic algorithm confusion.
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(RS_PUBLIC));
    check(Algorithm::RS256, RS_PUBLIC, good, vec![es, confused, tokens::user("acme"), tokens::alg_none("acme")]).await;
}

#[actix_web::test]
async fn es256_with_a_public_key() {
    let good = sign(Algorithm::ES256, &EncodingKey::from_ec_pem(ES_PRIVATE).unwrap());
    let rs = sign(Algorithm::RS256, &EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap());
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(ES_PUBLIC));
    check(Algorithm::ES256, ES_PUBLIC, good, vec![rs, confused, tokens::user("acme")]).await;
}

#[test]
fn a_key_of_the_wrong_kind_is_a_clear_error() {
    assert!(JwtVerifier::new(Algorithm::RS256, &JwtKey::Secret(b"secret".to_vec()), None, None).is_err());
    assert!(JwtVerifier::new(Algorithm::HS256, &JwtKey::PublicPem(RS_PUBLIC.to_vec()), None, None).is_err());
    assert!(JwtVerifier::new(Algorithm::RS256, &JwtKey::PublicPem(b"not a pem".to_vec()), None, None).is_err());
}

#[actix_web::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let verifier = JwtVerifier::new(
        Algorithm::HS256,
        &JwtKey::Secret(SECRET.to_vec()),
        Some("https://sso.example.com"),
        Some("usagelogs"),
    )
    .unwrap();
    let api = TestApp::new().with_verifier(verifier).with_entries([entry("push_repo", "acme")]).start().await;
    let path = "/api/v1/organization/acme/logs";
    let with = |iss: Option<&str>, aud: Option<&str>| {
        let mut c = tokens::claims("acme");
        c.iss = iss.map(str::to_owned);
        c.aud = aud.map(|a| serde_json::json!(a));
        tokens::sign(&c)
    };
    assert_eq!(
        api.get(path, Some(&with(Some("https://sso.example.com"), Some("usagelogs")))).await.status,
        StatusCode::OK
    );
    for bad in [
        with(None, Some("usagelogs")),
        with(Some("https://sso.example.com"), None),
        with(Some("https://evil.example.com"), Some("usagelogs")),
        with(Some("https://sso.example.com"), Some("other")),
    ] {
        assert_api_error(&api.get(path, Some(&bad)).await, 401, "invalid_token", &[]);
    }
}
