//! PKCE (RFC 7636) with the `S256` method only: `plain` would let a code intercepted
//! with its challenge be redeemed. Pure functions, tested against the RFC's vector.
//! Shared by both sides the worker plays: the SCIM OAuth server checks challenges
//! (`routes::oauth`), the Okta sign-in makes them (`okta::oidc`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared::token::TokenHash;
use subtle::ConstantTimeEq;

/// The one supported `code_challenge_method`.
pub const S256: &str = "S256";

/// Whether `s` is 43 to 128 characters of the RFC 7636 alphabet
/// (`[A-Za-z0-9-._~]`), the form of both verifiers and challenges.
fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `challenge` can be an S256 challenge: base64url of a SHA-256, 43 characters.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && well_formed(challenge)
}

/// Whether `verifier` is a well-formed code verifier (RFC 7636 §4.1).
pub fn valid_verifier(verifier: &str) -> bool {
    well_formed(verifier)
}

/// The S256 challenge of `verifier`: `BASE64URL(SHA256(verifier))`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(TokenHash::of(verifier).0)
}

/// Whether `verifier` is well-formed and hashes to `challenge` (constant time).
pub fn verify(challenge: &str, verifier: &str) -> bool {
    valid_verifier(verifier) && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_vector() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        assert!(valid_challenge(CHALLENGE));
        assert!(verify(CHALLENGE, VERIFIER));
        assert!(!verify(CHALLENGE, &VERIFIER.replace('d', "e")));
        assert!(!verify(CHALLENGE, CHALLENGE));
    }

    #[test]
    fn shapes() {
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(valid_verifier(&"a~.-_".repeat(10)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(50))));
        assert!(!valid_challenge(&"a".repeat(44)));
        assert!(!valid_challenge(&format!("{}=", "a".repeat(42))));
    }
}
