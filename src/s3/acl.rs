//! ACLs as they hold here (`?acl` of a bucket or an object): percore keeps
//! none of its own, and says what is true. GetBucketAcl and GetObjectAcl
//! answer the owner (`percore`, every key of `--s3-credentials`) with full
//! control, and, when anonymous reads are on, everyone with READ.
//! PutBucketAcl and PutObjectAcl take what already holds (a canned ACL
//! `unkept` takes, or a policy that grants no more than GET answers: what
//! `s3cmd setacl` sends) and change nothing; anything else is
//! AccessControlListNotSupported, as S3 answers for a bucket whose ACLs are
//! disabled.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::{malformed_xml, S3Error};
use super::unkept::acl_not_supported;
use super::xml::{self, Writer};
use super::{anonymous_reads, bucket, object, unkept, Call};

/// The group anonymous reads grant READ to.
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// The owner's ID and name, as listings give them.
const OWNER: &str = bucket::OWNER_ID;

/// GetBucketAcl (`path` none) or GetObjectAcl.
pub(crate) async fn get(call: &mut Call<'_, '_, '_>, bucket: &str, path: Option<&[u8]>) -> Result<bool, S3Error> {
    must_exist(call, bucket, path).await?;
    let mut out = Writer::document();
    out.root("AccessControlPolicy");
    bucket::owner(&mut out);
    out.open("AccessControlList");
    grant(&mut out, "CanonicalUser", "FULL_CONTROL");
    if anonymous_reads(call.shard()) {
        grant(&mut out, "Group", "READ");
    }
    out.close("AccessControlList");
    out.close("AccessControlPolicy");
    call.xml(out.finish()).await
}

/// The bucket, or the object at `path` in it, must be there.
async fn must_exist(call: &Call<'_, '_, '_>, bucket: &str, path: Option<&[u8]>) -> Result<(), S3Error> {
    match path {
        Some(path) => object::open(call, bucket, path).await.map(drop),
        None => bucket::must_exist(call, bucket).await,
    }
}

fn grant(out: &mut Writer, kind: &str, permission: &str) {
    out.open("Grant");
    out.open_with("Grantee", &[("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"), ("xsi:type", kind)]);
    if kind == "Group" {
        out.leaf("URI", ALL_USERS);
    } else {
        out.leaf("ID", OWNER);
        out.leaf("DisplayName", OWNER);
    }
    out.close("Grantee");
    out.leaf("Permission", permission);
    out.close("Grant");
}

/// PutBucketAcl (`path` none) or PutObjectAcl: taken if it asks for what
/// holds, refused otherwise; nothing changes either way.
pub(crate) async fn put(call: &mut Call<'_, '_, '_>, bucket: &str, path: Option<&[u8]>) -> Result<bool, S3Error> {
    let anonymous = anonymous_reads(call.shard());
    // The canned ACL and grants of the headers (checked for objects with
    // every write, before routing).
    unkept::refuse_on_bucket(|name| call.headers.get(name), anonymous)?;
    let (body, _) = call.body(xml::BODY_BYTES_MAX)?;
    let (document, _) = body.read_all().await?;
    call.body_read();
    if !document.is_empty() {
        for (grantee, permission) in grants(&document).map_err(malformed_xml)? {
            let holds = match grantee {
                Grantee::Owner => true,
                Grantee::AllUsers => permission == "READ" && anonymous,
                Grantee::Other(_) => false,
            };
            if !holds {
                let who = match &grantee {
                    Grantee::Owner => OWNER.to_string(),
                    Grantee::AllUsers => "everyone".to_string(),
                    Grantee::Other(name) => name.clone(),
                };
                return Err(acl_not_supported(&format!(
                    "a grant of {permission} to {who} would not hold: access here is by the keys of \
                     --s3-credentials{}",
                    if anonymous { ", and reads by anyone" } else { " only" }
                )));
            }
        }
    }
    must_exist(call, bucket, path).await?;
    call.empty(200, "").await
}

#[derive(Debug, PartialEq)]
enum Grantee {
    /// The owner, by its ID.
    Owner,
    AllUsers,
    /// Another account or group, by what names it.
    Other(String),
}

/// The grants of an AccessControlPolicy: each grantee with its permission.
fn grants(document: &[u8]) -> Result<Vec<(Grantee, String)>, String> {
    let mut reader = Reader::from_reader(document);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    // The grant being read: who, and its permission.
    let mut who: Option<Grantee> = None;
    let mut permission = String::new();
    let mut seen_root = false;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if path.is_empty() {
                    if name != "AccessControlPolicy" {
                        return Err(format!("the root element must be AccessControlPolicy, not {name}"));
                    }
                    seen_root = true;
                }
                if path.len() > 8 {
                    return Err("elements nested too deep".into());
                }
                path.push(name);
            }
            Event::End(_) => {
                let closed = path.pop();
                if closed.as_deref() == Some("Grant") {
                    let unnamed = || Grantee::Other("a grantee without an ID, URI or email address".into());
                    let grantee = who.take().unwrap_or_else(unnamed);
                    out.push((grantee, std::mem::take(&mut permission)));
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                let text = quick_xml::escape::unescape(&text).map_err(|e| e.to_string())?.into_owned();
                let in_grant = path.iter().any(|p| p == "Grant");
                match path.last().map(String::as_str) {
                    Some("Permission") if in_grant => permission = text,
                    Some("ID") if in_grant && path.iter().any(|p| p == "Grantee") => {
                        who = Some(if text == OWNER { Grantee::Owner } else { Grantee::Other(text) });
                    }
                    Some("URI") if in_grant => {
                        who = Some(if text == ALL_USERS { Grantee::AllUsers } else { Grantee::Other(text) });
                    }
                    Some("EmailAddress") if in_grant => who = Some(Grantee::Other(text)),
                    _ => {}
                }
            }
            Event::Empty(_) if path.is_empty() => return Err("the root element must be AccessControlPolicy".into()),
            Event::Eof => break,
            Event::DocType(_) => return Err("a DOCTYPE is not accepted".into()),
            _ => {}
        }
    }
    if !seen_root {
        return Err("no AccessControlPolicy element".into());
    }
    if !path.is_empty() {
        return Err("the document ends inside an element".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_with_their_grantees() {
        let policy = br#"<AccessControlPolicy><Owner><ID>percore</ID></Owner><AccessControlList>
            <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>percore</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>
            <Grant><Grantee xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>
            <Grant><Grantee xsi:type="AmazonCustomerByEmail"><EmailAddress>a@b.c</EmailAddress></Grantee><Permission>WRITE</Permission></Grant>
            </AccessControlList></AccessControlPolicy>"#;
        assert_eq!(
            grants(policy).unwrap(),
            [
                (Grantee::Owner, "FULL_CONTROL".to_string()),
                (Grantee::AllUsers, "READ".to_string()),
                (Grantee::Other("a@b.c".to_string()), "WRITE".to_string())
            ]
        );
        let unnamed = b"<AccessControlPolicy><AccessControlList><Grant><Grantee><DisplayName>x</DisplayName>\
            </Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>";
        assert!(matches!(&grants(unnamed).unwrap()[0].0, Grantee::Other(_)));
        assert!(grants(b"<Other/>").is_err());
        assert!(grants(b"not xml").is_err());
        assert!(grants(b"<AccessControlPolicy><AccessControlList>").is_err());
    }
}
