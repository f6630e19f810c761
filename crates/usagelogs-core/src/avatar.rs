//! The avatar block Quay attaches to performers.

use sha2::{Digest, Sha256};

/// Quay's default 32-colour avatar palette.
pub const AVATAR_COLORS: [&str; 32] = [
    "#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
    "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#1f77b4", "#17becf", "#9edae5",
    "#393b79", "#5254a3", "#6b6ecf", "#9c9ede", "#9ecae1", "#31a354", "#b5cf6b", "#a1d99b", "#8c6d31", "#ad494a",
    "#e7ba52", "#a55194",
];

/// The hash of an avatar: SHA-256 hex of the lower-cased, trimmed e-mail when there is one, else
/// of the lower-cased name (Quay's `AVATAR_KIND: local`).
pub fn avatar_hash(name: &str, email: Option<&str>) -> String {
    let source = match email.map(str::trim) {
        Some(e) if !e.is_empty() => e.to_lowercase(),
        _ => name.trim().to_lowercase(),
    };
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// The palette colour for a hash: the first two hex digits modulo the palette size.
pub fn avatar_color(hash: &str) -> &'static str {
    let idx = hash.get(..2).and_then(|h| usize::from_str_radix(h, 16).ok()).unwrap_or(0);
    AVATAR_COLORS[idx % AVATAR_COLORS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_of_lowercased_name_or_email() {
        // sha256("alice")
        assert_eq!(avatar_hash("Alice", None), "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90");
        assert_eq!(avatar_hash("x", Some(" Alice ")), avatar_hash("alice", None));
        assert_eq!(avatar_hash("alice", Some("")), avatar_hash("alice", None));
    }

    #[test]
    fn color_from_first_two_hex_digits() {
        assert_eq!(avatar_color("2bd8"), AVATAR_COLORS[0x2b % 32]);
        assert_eq!(avatar_color("00"), "#969696");
        assert_eq!(avatar_color("1f"), "#a55194");
        assert_eq!(avatar_color("ff"), "#a55194");
    }
}
