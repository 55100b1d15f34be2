//! Bucket names and keys as paths of the store. A bucket is a top-level
//! directory; a key is a path beneath it, so it follows the store's rules
//! (`files::check_path`): a key the store cannot hold as it is (a doubled
//! `/`, a `.` or `..` segment, a control character, a segment over 255
//! bytes, the reserved `.percore-` prefix) is refused with a clear error,
//! never changed into another key. A key that ends in `/` is a folder
//! (`folder`): the directory it names.

use super::error::S3Error;

/// Checks a bucket name against S3's rules: 3 to 63 characters of
/// lower-case letters, digits, `.` and `-`, starting and ending with a
/// letter or digit, no `..`, not an IP address.
pub(crate) fn check_bucket(name: &str) -> Result<(), S3Error> {
    let bytes = name.as_bytes();
    let ok = (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(S3Error::new(
            400,
            "InvalidBucketName",
            format!(
                "the bucket name `{name}` is not valid: 3-63 lower-case letters, digits, `.` and `-`, starting and \
                 ending with a letter or digit"
            ),
        ))
    }
}

/// The longest key, in bytes (as on S3).
pub(crate) const KEY_BYTES_MAX: usize = 1024;

/// The store path of `key` in `bucket`, or why the store cannot hold it.
pub(crate) fn object_path(bucket: &str, key: &str) -> Result<Vec<u8>, S3Error> {
    store_path(bucket, key, key)
}

/// The store path of the folder `key` (a key that ends in `/`): the
/// directory it names.
pub(crate) fn folder_path(bucket: &str, key: &str) -> Result<Vec<u8>, S3Error> {
    store_path(bucket, key, key.strip_suffix('/').unwrap_or(key))
}

/// `bucket/name`, checked as a path of the store (`key` names it in errors).
fn store_path(bucket: &str, key: &str, name: &str) -> Result<Vec<u8>, S3Error> {
    if key.len() > KEY_BYTES_MAX {
        return Err(S3Error::new(400, "KeyTooLongError", format!("your key is too long (over {KEY_BYTES_MAX} bytes)")));
    }
    let mut path = Vec::with_capacity(bucket.len() + 1 + name.len());
    path.extend_from_slice(bucket.as_bytes());
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    match crate::files::check_path(&path) {
        Ok(()) => Ok(path),
        Err(crate::files::PathError::Invalid(why)) => Err(S3Error::new(
            400,
            "InvalidArgument",
            format!(
                "percore stores keys as file paths and cannot store `{key}` ({why}): use keys without empty, `.` \
                 or `..` segments, control characters or the reserved `.percore-` prefix (a key that ends in `/` \
                 is a folder, which holds no bytes)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_keys() {
        for good in ["abc", "my-bucket.2", "a1b"] {
            assert!(check_bucket(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "192.168.1.1", ".percore-x", "a_b"] {
            assert_eq!(check_bucket(bad).unwrap_err().code, "InvalidBucketName", "{bad}");
        }
        assert_eq!(object_path("bkt", "a/b c.txt").unwrap(), b"bkt/a/b c.txt");
        for bad in ["a/", "a//b", "./a", "a/../b", "a\u{1}b", ".percore-1", "a\\b"] {
            assert_eq!(object_path("bkt", bad).unwrap_err().code, "InvalidArgument", "{bad:?}");
        }
        assert_eq!(object_path("bkt", &"k".repeat(1025)).unwrap_err().code, "KeyTooLongError");
        assert_eq!(folder_path("bkt", "a/b/").unwrap(), b"bkt/a/b");
        for bad in ["/", "a//", "a/./", "a/../", ".percore-x/"] {
            let err = folder_path("bkt", bad).unwrap_err();
            assert_eq!(err.code, "InvalidArgument", "{bad:?}");
            assert!(err.message.contains(&format!("`{bad}`")), "{bad:?}: {}", err.message);
        }
    }
}
