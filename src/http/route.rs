//! Where a request goes: a pure function of its method and path, tested as
//! a table. Who may go there (the tokens) is `auth`'s; what happens there
//! is the handlers' (`probe`, `get`, `list`, `put`).

use super::request::{Method, Request};

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// `/`: the page for browsers.
    Home,
    Ping,
    Health,
    Metrics,
    /// A directory listing: the path after `/files/`, empty or ending in `/`.
    List(&'a str),
    /// GET or HEAD of a file: the path after `/files/`, still encoded.
    File(&'a str),
    /// PUT of a file (any path under `/files/`: the handler checks it).
    Put(&'a str),
    Delete(&'a str),
    /// A known path, another method: 405 with this `Allow`.
    NotAllowed(&'static str),
    NotFound,
}

/// Whose token the request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Anyone,
    /// The read token, or the write token (writers read too), if set.
    Reader,
    /// The write token, if set.
    Writer,
}

/// A routed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    pub(crate) target: Target<'a>,
    pub(crate) access: Access,
    /// The route's label in the metrics (by path alone).
    pub(crate) label: &'static str,
}

/// Routes `request`.
pub(crate) fn route(request: &Request) -> Route<'_> {
    let path = request.path.as_str();
    let method = &request.method;
    let read = matches!(method, Method::Get | Method::Head);
    let (target, access) = match path {
        "/" | "/ping" | "/health" | "/metrics" if !read => (Target::NotAllowed("GET, HEAD"), Access::Anyone),
        "/" => (Target::Home, Access::Anyone),
        "/ping" => (Target::Ping, Access::Anyone),
        "/health" => (Target::Health, Access::Anyone),
        "/metrics" => (Target::Metrics, Access::Reader),
        _ => match path.strip_prefix("/files/") {
            None => (Target::NotFound, Access::Anyone),
            Some(rest) => {
                let dir = rest.is_empty() || rest.ends_with('/');
                let access = match method {
                    Method::Put | Method::Delete => Access::Writer,
                    _ => Access::Reader,
                };
                let target = match method {
                    Method::Put => Target::Put(rest),
                    Method::Get | Method::Head if dir => Target::List(rest),
                    _ if dir => Target::NotAllowed("GET, HEAD"),
                    Method::Get | Method::Head => Target::File(rest),
                    Method::Delete => Target::Delete(rest),
                    Method::Other(_) => Target::NotAllowed("GET, HEAD, PUT, DELETE"),
                };
                (target, access)
            }
        },
    };
    Route { target, access, label: label(path) }
}

/// The metrics label of a path (what `route` puts in `Route::label`).
fn label(path: &str) -> &'static str {
    match path {
        "/" => "home",
        "/ping" => "ping",
        "/health" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/files/") && p.ends_with('/') => "list",
        p if p.starts_with("/files/") => "files",
        _ => "other",
    }
}

/// The metrics label of a method: POST by name too (S3's multipart
/// uploads and batch deletes), anything else `OTHER`, so a client cannot
/// make labels without end.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Other(name) if name == "POST" => "POST",
        Method::Other(_) => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::Body;

    fn request(method: Method, path: &str) -> Request {
        Request {
            method,
            path: path.into(),
            query: None,
            body: Body::None,
            keep_alive: true,
            expect_continue: false,
            if_match: None,
            if_none_match: None,
            bearer: None,
            if_modified_since: None,
            if_unmodified_since: None,
            if_range: None,
            range: None,
            prefers_html: false,
            s3_carried: None,
        }
    }

    #[test]
    fn the_route_table() {
        use Access::*;
        use Method::{Get, Head};
        let (put, delete) = (|| Method::Put, || Method::Delete);
        use Target::*;
        let post = || Method::Other("POST".into());
        let table: Vec<(Method, &str, Target<'_>, Access, &str)> = vec![
            (Get, "/ping", Ping, Anyone, "ping"),
            (Head, "/ping", Ping, Anyone, "ping"),
            (put(), "/ping", NotAllowed("GET, HEAD"), Anyone, "ping"),
            (delete(), "/health", NotAllowed("GET, HEAD"), Anyone, "health"),
            (Get, "/health", Health, Anyone, "health"),
            (Get, "/metrics", Metrics, Reader, "metrics"),
            (post(), "/metrics", NotAllowed("GET, HEAD"), Anyone, "metrics"),
            (put(), "/metrics", NotAllowed("GET, HEAD"), Anyone, "metrics"),
            (Get, "/files/", List(""), Reader, "list"),
            (Head, "/files/a/b/", List("a/b/"), Reader, "list"),
            (delete(), "/files/a/", NotAllowed("GET, HEAD"), Writer, "list"),
            (post(), "/files/a/", NotAllowed("GET, HEAD"), Reader, "list"),
            (put(), "/files/a/", Put("a/"), Writer, "list"),
            (Get, "/files/a/b", File("a/b"), Reader, "files"),
            (Head, "/files/a%20b", File("a%20b"), Reader, "files"),
            (put(), "/files/a/b", Put("a/b"), Writer, "files"),
            (delete(), "/files/a/b", Delete("a/b"), Writer, "files"),
            (post(), "/files/a", NotAllowed("GET, HEAD, PUT, DELETE"), Reader, "files"),
            (Get, "/", Home, Anyone, "home"),
            (Head, "/", Home, Anyone, "home"),
            (put(), "/", NotAllowed("GET, HEAD"), Anyone, "home"),
            (put(), "/elsewhere", NotFound, Anyone, "other"),
            (Get, "/files", NotFound, Anyone, "other"),
            (Get, "/pingx", NotFound, Anyone, "other"),
        ];
        for (method, path, target, access, label) in table {
            let req = request(method.clone(), path);
            let got = route(&req);
            assert_eq!(got, Route { target, access, label }, "{method:?} {path}");
        }
    }

    #[test]
    fn method_labels_are_few() {
        assert_eq!(method_label(&Method::Other("POST".into())), "POST");
        for name in ["PATCH", "post", "X-ANYTHING", "OPTIONS"] {
            assert_eq!(method_label(&Method::Other(name.into())), "OTHER", "{name}");
        }
    }
}
