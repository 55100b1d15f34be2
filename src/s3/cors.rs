//! Cross-origin requests (CORS), as S3 serves them: a bucket's rules
//! (PutBucketCors, GetBucketCors, DeleteBucketCors), a browser's preflight
//! (OPTIONS, answered without a signature: browsers send none) and the
//! headers of an actual request from an origin a rule allows, so that a web
//! page elsewhere can use presigned URLs or sign requests itself. Without
//! rules a bucket allows no other origin, as on S3.
//!
//! The rules are stored in an extended attribute of the bucket's directory
//! (`store::Store::mark_dir`, durable before the answer), at most
//! [`STORED_BYTES_MAX`] of them as compact JSON: what fits one attribute on
//! every file system percore runs on (ext4 keeps a value in one block).

use serde::{Deserialize, Serialize};

use super::error::{invalid_request, malformed_xml, S3Error};
use super::xml::{self, Writer};
use super::{bucket, cluster, Call};

/// The extended attribute of a bucket's directory that holds its rules.
pub(crate) const XATTR: &str = "user.percore.s3.cors";

/// The most rules a bucket has (as on S3).
const RULES_MAX: usize = 100;

/// The most bytes the stored rules take.
const STORED_BYTES_MAX: usize = 3072;

/// The methods a rule may allow (as on S3).
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One `CORSRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    origins: Vec<String>,
    methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
}

/// The rules of a `CORSConfiguration` document, checked as S3 checks them.
pub(crate) fn parse(document: &[u8]) -> Result<Vec<Rule>, S3Error> {
    let items = xml::item_fields(document, "CORSConfiguration", "CORSRule").map_err(malformed_xml)?;
    if items.is_empty() || items.len() > RULES_MAX {
        return Err(malformed_xml(format!("a CORSConfiguration has 1 to {RULES_MAX} CORSRule elements")));
    }
    let mut rules = Vec::with_capacity(items.len());
    for fields in items {
        let mut rule = Rule::default();
        for (name, text) in fields {
            let text = text.trim().to_string();
            match name.as_str() {
                "ID" => rule.id = Some(text),
                "AllowedOrigin" => rule.origins.push(text),
                "AllowedMethod" => rule.methods.push(text),
                "AllowedHeader" => rule.headers.push(text),
                "ExposeHeader" => rule.expose.push(text),
                "MaxAgeSeconds" => {
                    let age = text.parse().map_err(|_| malformed_xml(format!("MaxAgeSeconds {text} is no number")))?;
                    rule.max_age = Some(age);
                }
                other => return Err(malformed_xml(format!("a CORSRule has no element {other}"))),
            }
        }
        if rule.origins.is_empty() || rule.methods.is_empty() {
            return Err(malformed_xml("each CORSRule needs an AllowedOrigin and an AllowedMethod"));
        }
        if let Some(method) = rule.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(invalid_request(format!(
                "found unsupported HTTP method in CORS config: {method} (allowed: GET, PUT, HEAD, POST, DELETE)"
            )));
        }
        for (what, patterns) in [("AllowedOrigin", &rule.origins), ("AllowedHeader", &rule.headers)] {
            if let Some(bad) = patterns.iter().find(|p| p.matches('*').count() > 1) {
                return Err(invalid_request(format!("{what} \"{bad}\" can not have more than one wildcard")));
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// The `CORSConfiguration` document of `rules` (GetBucketCors).
fn render(rules: &[Rule]) -> String {
    let mut out = Writer::document();
    out.root("CORSConfiguration");
    for rule in rules {
        out.open("CORSRule");
        if let Some(id) = &rule.id {
            out.leaf("ID", id);
        }
        for (name, values) in [
            ("AllowedOrigin", &rule.origins),
            ("AllowedMethod", &rule.methods),
            ("AllowedHeader", &rule.headers),
            ("ExposeHeader", &rule.expose),
        ] {
            for value in values {
                out.leaf(name, value);
            }
        }
        if let Some(age) = rule.max_age {
            out.leaf("MaxAgeSeconds", age);
        }
        out.close("CORSRule");
    }
    out.close("CORSConfiguration");
    out.finish()
}

/// Whether `text` matches `pattern`, whose one `*` (if any) stands for any
/// run of characters.
fn matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let same = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => same(pattern, text),
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len()
                && text.is_char_boundary(head.len())
                && text.is_char_boundary(text.len() - tail.len())
                && same(head, &text[..head.len()])
                && same(tail, &text[text.len() - tail.len()..])
        }
    }
}

/// The first rule that allows `method` from `origin` with the request
/// headers `headers`, and whether it allows any origin (`*`).
fn allowing<'r>(rules: &'r [Rule], origin: &str, method: &str, headers: &[&str]) -> Option<(&'r Rule, bool)> {
    rules.iter().find_map(|rule| {
        let origin_rule = rule.origins.iter().find(|p| matches(p, origin, false))?;
        let method_ok = rule.methods.iter().any(|m| m == method);
        let headers_ok = headers.iter().all(|h| rule.headers.iter().any(|p| matches(p, h, true)));
        (method_ok && headers_ok).then_some((rule, origin_rule == "*"))
    })
}

/// The header lines that let `origin` read an answer under `rule`.
fn allow_lines(rule: &Rule, origin: &str, any_origin: bool) -> String {
    let mut lines = String::new();
    if any_origin {
        lines.push_str("Access-Control-Allow-Origin: *\r\n");
    } else {
        lines.push_str(&format!("Access-Control-Allow-Origin: {origin}\r\nAccess-Control-Allow-Credentials: true\r\n"));
    }
    if !rule.expose.is_empty() {
        lines.push_str(&format!("Access-Control-Expose-Headers: {}\r\n", rule.expose.join(", ")));
    }
    lines
}

/// Whether `value` is rules as this module stores them (what `percore
/// rebalance` carries to another node), each as `parse` would take it.
pub(crate) fn stored_value_holds(value: &str) -> bool {
    let Ok(rules) = serde_json::from_str::<Vec<Rule>>(value) else { return false };
    let rule_holds = |rule: &Rule| {
        !rule.origins.is_empty()
            && !rule.methods.is_empty()
            && rule.methods.iter().all(|m| METHODS.contains(&m.as_str()))
            && rule.origins.iter().chain(&rule.headers).all(|p| p.matches('*').count() <= 1)
    };
    value.len() <= STORED_BYTES_MAX && (1..=RULES_MAX).contains(&rules.len()) && rules.iter().all(rule_holds)
}

/// The bucket's rules (none if it has none or does not exist).
async fn rules(call: &Call<'_, '_, '_>, bucket: &str) -> Vec<Rule> {
    let Ok(dir) = call.shard().store.root().open_dir(bucket).await else { return Vec::new() };
    let mut value = vec![0u8; STORED_BYTES_MAX + 1024];
    match rustix::fs::fgetxattr(&dir, XATTR, &mut value) {
        Ok(n) => serde_json::from_slice(&value[..n]).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The CORS header lines for an actual request from `origin` (the
/// `Origin` header) to `bucket`: those of the first rule that allows its
/// origin and method; none if no rule does.
pub(crate) async fn actual(call: &Call<'_, '_, '_>, bucket: &str, origin: &str, method: &str) -> String {
    let rules = rules(call, bucket).await;
    if rules.is_empty() {
        return String::new();
    }
    let mut lines = String::from("Vary: Origin\r\n");
    if let Some((rule, any)) = allowing(&rules, origin, method, &[]) {
        lines.push_str(&allow_lines(rule, origin, any));
    }
    lines
}

fn forbidden(why: &str) -> S3Error {
    S3Error::new(403, "AccessForbidden", format!("CORSResponse: {why}"))
}

/// A browser's preflight (OPTIONS) for `bucket`: allowed by a rule, or 403.
pub(crate) async fn preflight(call: &mut Call<'_, '_, '_>, bucket: Option<&str>) -> Result<bool, S3Error> {
    let origin = call.headers.get("origin").map(str::to_string);
    let method = call.headers.get("access-control-request-method").map(str::to_string);
    let (Some(origin), Some(method)) = (origin, method) else {
        return Err(S3Error::new(
            400,
            "BadRequest",
            "a CORS preflight (OPTIONS) needs the Origin and Access-Control-Request-Method headers",
        ));
    };
    let Some(bucket) = bucket else {
        return Err(forbidden("CORS is configured per bucket: this request names none"));
    };
    // (A missing bucket has no rules: an unsigned request learns nothing
    // of which buckets exist.)
    let requested = call.headers.get("access-control-request-headers").unwrap_or("").to_string();
    let headers: Vec<&str> = requested.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
    let rules = rules(call, bucket).await;
    if rules.is_empty() {
        return Err(forbidden(&format!(
            "CORS is not enabled for the bucket {bucket}: give it rules with PutBucketCors \
             (aws s3api put-bucket-cors) to let pages from other origins use it"
        )));
    }
    let Some((rule, any)) = allowing(&rules, &origin, &method, &headers) else {
        return Err(forbidden(&format!(
            "this CORS request is not allowed: no rule of the bucket {bucket} allows {method} from {origin} \
             with the headers [{requested}]"
        )));
    };
    let mut lines = allow_lines(rule, &origin, any);
    lines.push_str(&format!("Access-Control-Allow-Methods: {}\r\n", rule.methods.join(", ")));
    if !headers.is_empty() {
        lines.push_str(&format!("Access-Control-Allow-Headers: {}\r\n", headers.join(", ")));
    }
    if let Some(age) = rule.max_age {
        lines.push_str(&format!("Access-Control-Max-Age: {age}\r\n"));
    }
    lines.push_str("Vary: Origin, Access-Control-Request-Headers, Access-Control-Request-Method\r\n");
    call.empty(200, &lines).await
}

/// Sets (`Some`) or removes (`None`) the bucket's rules on its owner shard.
async fn store(bucket: &str, rules: Option<Vec<Rule>>) -> Result<(), S3Error> {
    let value = rules.map(|rules| serde_json::to_vec(&rules).expect("strings serialize"));
    if let Some(value) = value.as_ref().filter(|v| v.len() > STORED_BYTES_MAX) {
        return Err(invalid_request(format!(
            "the CORS rules take {} bytes stored; percore keeps at most {STORED_BYTES_MAX} per bucket (an \
             extended attribute of its directory): use fewer or shorter rules",
            value.len()
        )));
    }
    bucket::store_setting(bucket, XATTR, value).await
}

/// PutBucketCors.
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    bucket::must_exist(call, bucket).await?;
    let rules = parse(&document)?;
    store(bucket, Some(rules)).await?;
    // Preflights and answers come from every node.
    let partly = "the rules are set on the nodes that answered; set them again";
    cluster::on_every_node(call, "PUT", bucket, "cors", &document, 200, partly).await?;
    call.empty(200, "").await
}

/// GetBucketCors.
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    let rules = rules(call, bucket).await;
    if rules.is_empty() {
        return Err(S3Error::new(404, "NoSuchCORSConfiguration", "the CORS configuration does not exist"));
    }
    call.xml(render(&rules)).await
}

/// DeleteBucketCors.
pub(crate) async fn delete(call: &mut Call<'_, '_, '_>, bucket: &str) -> Result<bool, S3Error> {
    bucket::must_exist(call, bucket).await?;
    store(bucket, None).await?;
    let partly = "the rules are removed from the nodes that answered; remove them again";
    cluster::on_every_node(call, "DELETE", bucket, "cors", &[], 204, partly).await?;
    call.empty(204, "").await
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &[u8] = b"<CORSConfiguration><CORSRule><ID>web</ID>\
        <AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedOrigin>http://127.0.0.1:8080</AllowedOrigin>\
        <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>\
        <AllowedHeader>Content-*</AllowedHeader><AllowedHeader>x-amz-meta-name</AllowedHeader>\
        <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>\
        <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>HEAD</AllowedMethod></CORSRule>\
        </CORSConfiguration>";

    #[test]
    fn rules_parse_render_and_match_as_on_s3() {
        let rules = parse(DOC).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].origins, ["https://*.example.com", "http://127.0.0.1:8080"]);
        assert_eq!(parse(render(&rules).as_bytes()).unwrap(), rules, "what GetBucketCors says parses back");
        let allowed = |origin, method, headers: &[&str]| {
            allowing(&rules, origin, method, headers).map(|(r, any)| (r.id.clone(), any))
        };
        assert_eq!(
            allowed("https://a.example.com", "PUT", &["content-type", "X-Amz-Meta-Name"]),
            Some((Some("web".into()), false))
        );
        assert_eq!(allowed("http://127.0.0.1:8080", "GET", &[]), Some((Some("web".into()), false)));
        assert_eq!(
            allowed("https://example.com", "GET", &[]),
            None,
            "the wildcard stands for at least the dot's prefix"
        );
        assert_eq!(allowed("https://a.example.com", "DELETE", &[]), None);
        assert_eq!(allowed("https://a.example.com", "PUT", &["authorization"]), None);
        assert_eq!(allowed("http://anywhere", "HEAD", &[]), Some((None, true)));
        let lines = allow_lines(&rules[0], "http://127.0.0.1:8080", false);
        assert!(lines.contains("Access-Control-Allow-Origin: http://127.0.0.1:8080\r\n"), "{lines}");
        assert!(lines.contains("Access-Control-Expose-Headers: ETag\r\n"), "{lines}");
        assert!(matches("*", "", false) && matches("a*", "a", false) && !matches("ab*b", "ab", false));
        assert!(matches("Content-*", "content-type", true) && !matches("Content-*", "content-type", false));
    }

    #[test]
    fn bad_rules_are_refused_saying_why() {
        for (doc, code) in [
            (&b"<CORSConfiguration/>"[..], "MalformedXML"),
            (b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", "MalformedXML"),
            (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>", "InvalidRequest"),
            (b"<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>", "InvalidRequest"),
            (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><Color>red</Color></CORSRule></CORSConfiguration>", "MalformedXML"),
            (b"<Other/>", "MalformedXML"),
        ] {
            assert_eq!(parse(doc).unwrap_err().code, code, "{}", String::from_utf8_lossy(doc));
        }
        let many = format!(
            "<CORSConfiguration>{}</CORSConfiguration>",
            "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>".repeat(101)
        );
        assert_eq!(parse(many.as_bytes()).unwrap_err().code, "MalformedXML");
    }
}
