//! `token_prefix`: any text through `parse_prefix`. An accepted token is exactly
//! `clk_{region}_{kind}_{43 URL-safe characters}` with the parts reported.

use shared::token::parse_prefix;

/// Length of the secret part of a token.
const SECRET_LEN: usize = 43;

/// Runs every check on `data` read as UTF-8.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(prefix) = parse_prefix(text) else {
        return;
    };
    let head = format!("clk_{}_{}_", prefix.region, prefix.kind.code());
    let secret = text
        .strip_prefix(&head)
        .unwrap_or_else(|| panic!("{text:?} does not start with {head:?}"));
    assert_eq!(secret.len(), SECRET_LEN, "{text:?}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{text:?}"
    );
}
