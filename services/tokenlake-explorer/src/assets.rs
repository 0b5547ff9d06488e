//! The web application's files, compiled into the binary: no build step, nothing fetched from
//! elsewhere at run time.

/// (path, content type, body) of every asset.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

/// The recipes shipped with tokenlake, offered in the recipe preview.
pub const RECIPES: &[(&str, &str)] = &[(
    "ziya2.toml",
    include_str!("../../../deploy/recipes/ziya2.toml"),
)];

/// The policy every response carries: this origin's scripts and styles only, no inline script,
/// no frames, no plugins, form posts and fetches to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                       data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
                       frame-ancestors 'none'";
