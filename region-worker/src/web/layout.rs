//! The shell of every server-rendered page: one accessible layout, no JavaScript
//! required, every interpolated value escaped by the template engine (maud).

use std::fmt::Write as _;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Escaper, Markup, PreEscaped, Render, html};

use super::assets::STYLE;

/// The id of every page's `<main>`, the skip link's target.
const MAIN_ID: &str = "main";

/// Text to interpolate into a page. maud escapes `&`, `<`, `>` and `"`; the pages have
/// always escaped `'` as well (`&#39;`), so a value stays inert even inside a
/// single-quoted attribute, and what the pages show does not change with the engine.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a>(pub &'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        let mut parts = self.0.split('\'');
        if let Some(first) = parts.next() {
            let _ = Escaper::new(buffer).write_str(first);
        }
        for part in parts {
            buffer.push_str("&#39;");
            let _ = Escaper::new(buffer).write_str(part);
        }
    }
}

/// A whole page titled `title` around `body`. Every page answer is also `no-store` and
/// carries the pages' CSP: both are set for every HTML answer in
/// [`crate::routes`]' security headers.
///
/// The body sits in the one `<main>` landmark; a "Skip to main content" link comes
/// first, so a keyboard or screen-reader user can pass over whatever a page puts before
/// its content (a breadcrumb, a banner). `<main>` takes focus from that link
/// (`tabindex="-1"`) so the next Tab continues inside it. Pages bring their own `h1`.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (Text(title)) " · ClosedLoop AI" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href={ "#" (MAIN_ID) } { "Skip to main content" }
                main id=(MAIN_ID) tabindex="-1" { (body) }
            }
        }
    }
}

/// The body of a page that explains an error in words.
pub fn message(title: &str, explanation: &str) -> Markup {
    html! {
        h1 { (Text(title)) }
        p.error { (Text(explanation)) }
    }
}

/// A page that explains an error in words, answered with `status`.
pub fn error_page(status: StatusCode, title: &str, explanation: &str) -> Response {
    (status, page(title, message(title, explanation))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_apostrophes() {
        let html = html! { p title=(Text("a\"b")) { (Text("<a href=\"x\">'&'</a>")) } };
        assert_eq!(
            html.into_string(),
            "<p title=\"a&quot;b\">&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;</p>"
        );
    }

    #[test]
    fn the_layout_wraps_the_body() {
        let html = page("It's <here>", html! { p { "hi" } }).into_string();
        assert!(
            html.starts_with("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
        );
        assert!(html.contains("<title>It&#39;s &lt;here&gt; · ClosedLoop AI</title>"));
        assert!(html.contains(&format!("<style>{STYLE}</style>")));
        assert!(html.ends_with(
            "<body><a class=\"skip\" href=\"#main\">Skip to main content</a>\
             <main id=\"main\" tabindex=\"-1\"><p>hi</p></main></body></html>"
        ));
    }
}
