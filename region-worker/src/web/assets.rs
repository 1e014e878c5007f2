//! The pages' static assets, each in its own file beside this module, and the
//! Content-Security-Policy that allows exactly them. Pages embed the assets inline (no
//! extra request, nothing to cache-bust); the policy allows each by its SHA-256, so a
//! changed asset is allowed the moment it is compiled in, and nothing else ever runs.

use std::sync::LazyLock;

use base64::Engine as _;
use maud::{Markup, PreEscaped, html};
use sha2::Digest as _;

/// The stylesheet of every page.
pub const STYLE: &str = include_str!("assets/base.css");

/// The extra styles of Integrations > Okta (the base layout is narrow and has no
/// tables).
pub const INTEGRATIONS_STYLE: &str = include_str!("assets/integrations.css");

/// Progressive enhancement of Integrations > Okta: copy buttons, shown only when the
/// clipboard works.
pub const COPY_SCRIPT: &str = include_str!("assets/copy.js");

/// The `<style>` block of Integrations > Okta's extra styles. Assets are inserted
/// unescaped (they are ours, compiled in, and their hashes must match byte for byte);
/// a page never marks anything else as pre-escaped.
pub fn integrations_style() -> Markup {
    html! { style { (PreEscaped(INTEGRATIONS_STYLE)) } }
}

/// The `<script>` block of the copy buttons.
pub fn copy_script() -> Markup {
    html! { script { (PreEscaped(COPY_SCRIPT)) } }
}

/// The `Content-Security-Policy` of every page: nothing loads but the pages' own inline
/// stylesheets and copy-button script, each allowed by its SHA-256 (no `unsafe-inline`),
/// images from the page itself; no frames may embed a page (the consent page's button
/// cannot be clickjacked); no `<base>`, no plugins. `form-action` is left open: the
/// sign-in and sign-out forms end in redirects to the customer's own Okta domain.
pub fn content_security_policy() -> &'static str {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        format!(
            "default-src 'none'; style-src 'sha256-{}' 'sha256-{}'; script-src 'sha256-{}'; \
             img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
            hash(STYLE),
            hash(INTEGRATIONS_STYLE),
            hash(COPY_SCRIPT),
        )
    });
    &POLICY
}

/// The base64 SHA-256 of an inline block, as CSP hash sources name it.
fn hash(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_every_asset_by_its_hash() {
        let policy = content_security_policy();
        for asset in [STYLE, INTEGRATIONS_STYLE, COPY_SCRIPT] {
            assert!(policy.contains(&format!("'sha256-{}'", hash(asset))));
            // Inline blocks end at the first closing tag: an asset must not contain one.
            assert!(!asset.contains("</"), "an asset closes its own block");
        }
        assert!(!policy.contains("unsafe-inline"));
    }
}
