//! Opaque page tokens: a keyset position signed with HMAC-SHA256 and bound to the query it was
//! issued for.
//!
//! Layout before base64url: version (1 byte), datetime in microseconds (8), id (8), expiry in
//! Unix seconds (8), binding (16: a SHA-256 prefix of the endpoint, scope and filters), then
//! the HMAC (32) over all of that.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use usagelogs_store::Cursor;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 8 + 8 + 8 + 16;
const MAC_LEN: usize = 32;

/// The key page tokens are signed with.
#[derive(Clone)]
pub struct PageTokenKey(Vec<u8>);

impl std::fmt::Debug for PageTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenKey(..)")
    }
}

/// Why a token was refused (all of them answer `Invalid page token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("issued for another query")]
    WrongBinding,
    #[error("expired")]
    Expired,
}

/// What a token is bound to: every part that selects entries, except the window's drift.
pub fn binding(parts: &[&str]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

impl PageTokenKey {
    /// A key from secret bytes (any length; 32 or more recommended).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(secret.into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
    }

    /// Signs `cursor` for the query bound by `bind`, valid until `expires`.
    pub fn issue(&self, cursor: Cursor, bind: [u8; 16], expires: OffsetDateTime) -> String {
        let micros = (cursor.datetime.unix_timestamp_nanos() / 1000) as i64;
        let mut buf = Vec::with_capacity(BODY_LEN + MAC_LEN);
        buf.push(VERSION);
        buf.extend_from_slice(&micros.to_be_bytes());
        buf.extend_from_slice(&cursor.id.to_be_bytes());
        buf.extend_from_slice(&expires.unix_timestamp().to_be_bytes());
        buf.extend_from_slice(&bind);
        let mut mac = self.mac();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Checks a token and returns its cursor.
    pub fn verify(&self, token: &str, bind: [u8; 16], now: OffsetDateTime) -> Result<Cursor, TokenError> {
        if token.len() > 256 {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| TokenError::Malformed)?;
        if raw.len() != BODY_LEN + MAC_LEN || raw[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = raw.split_at(BODY_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| TokenError::BadSignature)?;
        let int = |range: std::ops::Range<usize>| i64::from_be_bytes(body[range].try_into().unwrap_or([0; 8]));
        let (micros, id, expires) = (int(1..9), int(9..17), int(17..25));
        if body[25..41] != bind {
            return Err(TokenError::WrongBinding);
        }
        if now.unix_timestamp() >= expires {
            return Err(TokenError::Expired);
        }
        let datetime =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).map_err(|_| TokenError::Malformed)?;
        Ok(Cursor { datetime, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn round_trip_and_every_refusal() {
        let key = PageTokenKey::new(b"k".repeat(32));
        let now = datetime!(2024-03-05 12:00 UTC);
        let cursor = Cursor { datetime: datetime!(2024-03-05 11:00:00.123456 UTC), id: 42 };
        let b = binding(&["org", "acme"]);
        let t = key.issue(cursor, b, now + Duration::days(2));
        assert_eq!(key.verify(&t, b, now), Ok(cursor));
        assert_eq!(key.verify(&t, binding(&["org", "other"]), now), Err(TokenError::WrongBinding));
        assert_eq!(key.verify(&t, b, now + Duration::days(2)), Err(TokenError::Expired));
        assert_eq!(PageTokenKey::new(b"x".to_vec()).verify(&t, b, now), Err(TokenError::BadSignature));
        assert_eq!(key.verify("", b, now), Err(TokenError::Malformed));
        assert_eq!(key.verify("gAAAAAB-not-ours", b, now), Err(TokenError::Malformed));
        // Flip each character: never accepted.
        for i in 0..t.len() {
            let mut chars: Vec<char> = t.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let tampered: String = chars.into_iter().collect();
            if tampered != t {
                assert!(key.verify(&tampered, b, now).is_err(), "position {i}");
            }
        }
        // Parts are length-prefixed: ["ab", "c"] and ["a", "bc"] differ.
        assert_ne!(binding(&["ab", "c"]), binding(&["a", "bc"]));
    }
}
