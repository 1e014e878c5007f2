//! The opaque token format. Every secret we issue is `clk_{region}_{kind}_{secret}`,
//! where `secret` is 32 random bytes in unpadded base64url. The visible region lets a
//! worker refuse another region's token without a store lookup; the visible kind lets
//! it refuse an API token where an MCP token is required. Only the SHA-256 of a token
//! is ever stored.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::ids::RegionId;

/// What a token is for. Its short code is part of the token's visible prefix, and it is
/// what stores keep (Postgres `tokens.kind`, the `kind` of a token's Redis entry): serde
/// reads and writes the same code, so entries written as plain strings read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A SCIM bearer token (operator-issued or from the SCIM OAuth server).
    Scim,
    /// A refresh token of the SCIM OAuth server.
    Refresh,
    /// A personal API token.
    Api,
    /// A personal MCP token.
    Mcp,
    /// A browser session id (the value of the session cookie).
    Session,
    /// A one-time code: admin sign-in links, session hand-off, OAuth codes.
    OneTime,
}

impl TokenKind {
    /// Every kind, for parsing and tests.
    pub const ALL: [TokenKind; 6] = [
        TokenKind::Scim,
        TokenKind::Refresh,
        TokenKind::Api,
        TokenKind::Mcp,
        TokenKind::Session,
        TokenKind::OneTime,
    ];

    /// The short code written in the token prefix and in stores.
    pub fn code(self) -> &'static str {
        match self {
            TokenKind::Scim => "scim",
            TokenKind::Refresh => "rt",
            TokenKind::Api => "api",
            TokenKind::Mcp => "mcp",
            TokenKind::Session => "ses",
            TokenKind::OneTime => "otc",
        }
    }

    /// The kind with the given short code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Parses a stored short code; the error names the code that is not one.
    pub fn parse(code: &str) -> Result<Self, UnknownTokenKind> {
        Self::from_code(code).ok_or_else(|| UnknownTokenKind(code.to_owned()))
    }
}

/// A kind code that is not one of ours (a store holding something we never wrote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token kind {0:?}")]
pub struct UnknownTokenKind(pub String);

impl Serialize for TokenKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for TokenKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The SHA-256 of a token, the only form in which a token is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes any presented secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Lower-case hex, as used in Redis keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes are not secrets, but a short form keeps logs readable.
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

/// A freshly minted token: the secret to hand out once, and its hash to store.
pub struct NewToken {
    /// The full token text, `clk_{region}_{kind}_{secret}`. Shown to its owner once.
    pub secret: String,
    /// What the stores keep.
    pub hash: TokenHash,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"[redacted]")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Mints a new token of `kind` for `region`.
pub fn mint(region: &RegionId, kind: TokenKind) -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "clk_{}_{}_{}",
        region,
        kind.code(),
        URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = TokenHash::of(&secret);
    NewToken { secret, hash }
}

/// The visible parts of a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrefix<'a> {
    /// The region named in the prefix (not yet validated against anything).
    pub region: &'a str,
    /// The kind named in the prefix.
    pub kind: TokenKind,
}

/// Reads the prefix of a presented token. `None` when the text is not one of our
/// tokens at all (wrong shape, unknown kind, or a secret part of the wrong length).
pub fn parse_prefix(token: &str) -> Option<TokenPrefix<'_>> {
    let rest = token.strip_prefix("clk_")?;
    let (region, rest) = rest.split_once('_')?;
    let (kind, secret) = rest.split_once('_')?;
    let kind = TokenKind::from_code(kind)?;
    let well_formed = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed || RegionId::parse(region).is_err() {
        return None;
    }
    Some(TokenPrefix { region, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_back() {
        let us = RegionId::parse("us").unwrap();
        for kind in TokenKind::ALL {
            let t = mint(&us, kind);
            let p = parse_prefix(&t.secret).expect("parses");
            assert_eq!(p.region, "us");
            assert_eq!(p.kind, kind);
            assert_eq!(t.hash, TokenHash::of(&t.secret));
        }
    }

    #[test]
    fn foreign_text_is_not_a_token() {
        for bad in [
            "",
            "non-token",
            "clk_us_scim_short",
            "clk_US_scim_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "clk_us_nope_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "clk_us_scim_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=",
        ] {
            assert!(parse_prefix(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_serialise_as_their_stored_codes() {
        for kind in TokenKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.code()));
            assert_eq!(serde_json::from_str::<TokenKind>(&json).unwrap(), kind);
            assert_eq!(TokenKind::parse(kind.code()), Ok(kind));
        }
        // The codes stores hold, spelled out: changing one would strand stored tokens.
        let codes: Vec<_> = TokenKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes, ["scim", "rt", "api", "mcp", "ses", "otc"]);
        assert!(serde_json::from_str::<TokenKind>("\"Scim\"").is_err());
        assert_eq!(
            TokenKind::parse("refresh"),
            Err(UnknownTokenKind("refresh".into()))
        );
    }

    #[test]
    fn two_tokens_differ() {
        let eu = RegionId::parse("eu").unwrap();
        assert_ne!(
            mint(&eu, TokenKind::Api).secret,
            mint(&eu, TokenKind::Api).secret
        );
    }
}
