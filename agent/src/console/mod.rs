//! The test console: plain HTML, CSS and JavaScript compiled into the binary (no build step,
//! no third-party origin). `serve` and `route` serve the chat page at `/`; `route` also serves
//! the A/B page at `/ab` (it knows the variants; its data routes are in
//! [`crate::route::console`]).
//!
//! Every asset goes out with a strict Content-Security-Policy: scripts and styles only from
//! this origin and never inline, requests only to this origin, no frames, no plugins. Model
//! output is put into the page as text nodes (the Markdown renderer builds elements, it never
//! parses HTML), so an answer containing `<script>` is shown, not run.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy every console asset is served with.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path, content type and text.
type Asset = (&'static str, &'static str, &'static str);

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const SHARED: [Asset; 3] = [
    (
        "/console/console.css",
        CSS,
        include_str!("assets/console.css"),
    ),
    ("/console/console.js", JS, include_str!("assets/console.js")),
    (
        "/console/markdown.js",
        JS,
        include_str!("assets/markdown.js"),
    ),
];
const CHAT: [Asset; 2] = [
    ("/", HTML, include_str!("assets/chat.html")),
    ("/console/chat.js", JS, include_str!("assets/chat.js")),
];
const AB: [Asset; 2] = [
    ("/ab", HTML, include_str!("assets/ab.html")),
    ("/console/ab.js", JS, include_str!("assets/ab.js")),
];

/// The chat page and the files it loads.
pub fn chat_pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    with(Router::new(), SHARED.iter().chain(CHAT.iter()))
}

/// The chat page and the A/B page (`route`).
pub fn all_pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    with(chat_pages(), AB.iter())
}

fn with<'a, S: Clone + Send + Sync + 'static>(
    mut router: Router<S>,
    assets: impl Iterator<Item = &'a Asset>,
) -> Router<S> {
    for &(path, content_type, body) in assets {
        router = router.route(path, get(move || async move { serve(content_type, body) }));
    }
    router
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary; a browser revalidates rather than keep an old page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> impl Iterator<Item = &'static Asset> {
        SHARED.iter().chain(CHAT.iter()).chain(AB.iter())
    }

    /// The pages load only their own files: no inline script or style (the policy forbids
    /// them, so they would silently not run), no other origin.
    #[test]
    fn pages_use_no_inline_code_and_no_other_origin() {
        for &(path, _, body) in all().filter(|a| a.1 == HTML) {
            assert!(!body.contains("//"), "{path}: a URL to another origin");
            assert!(!body.contains("<style"), "{path}: inline style");
            assert!(!body.contains(" style="), "{path}: inline style");
            assert!(!has_inline_handler(body), "{path}: an inline event handler");
            for (at, _) in body.match_indices("<script") {
                let tag = &body[at..at + body[at..].find('>').unwrap_or(body.len() - at)];
                assert!(tag.contains("src=\"/console/"), "{path}: inline script");
            }
        }
    }

    /// ` onclick=` and the like.
    fn has_inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let name: String = html[i + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            !name.is_empty() && html[i + 3 + name.len()..].starts_with('=')
        })
    }

    /// Model output reaches the page only as text: no asset assigns HTML.
    #[test]
    fn no_asset_parses_html() {
        for &(path, _, body) in all() {
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!body.contains(sink), "{path} uses {sink}");
            }
        }
    }
}
