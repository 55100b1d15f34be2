//! AWS's published Signature V4 examples, checked against the verifier
//! (`sigv4`).

mod tests {
    use crate::s3::date::parse_amz_date;
    use crate::s3::head::{Headers, Query};
    use crate::s3::settings::Settings;
    use crate::s3::sigv4::*;

    /// AWS's published example (S3 docs, "Example: GET Object"): the same
    /// signature from the same request.
    #[test]
    fn the_documented_get_object_example() {
        let head = b"GET /test.txt HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\nRange: bytes=0-9\r\n\
            x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\
            x-amz-date: 20130524T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 \
            Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
            SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
            Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n\r\n";
        let headers = Headers::parse(head);
        let query = Query::default();
        let request = Request { method: "GET", path: "/test.txt", query: &query, headers: &headers };
        let s = Settings::for_tests("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let now = parse_amz_date("20130524T000100Z").unwrap();
        let verified = verify(&s, &KeyCache::default(), &request, now).unwrap().expect("signed");
        assert!(matches!(verified.payload, Payload::Sha256(_)));
        // An hour later: too skewed.
        let later = now + 3600;
        assert_eq!(verify(&s, &KeyCache::default(), &request, later).err().unwrap().code, "RequestTimeTooSkewed");
        // Another secret: no match.
        let other = Settings::for_tests("AKIAIOSFODNN7EXAMPLE", "another");
        assert_eq!(verify(&other, &KeyCache::default(), &request, now).err().unwrap().code, "SignatureDoesNotMatch");
        // SigV4 signs lowercase names: another case is refused as malformed.
        let shouted =
            std::str::from_utf8(head).unwrap().replace("SignedHeaders=host;range", "SignedHeaders=Host;range");
        let headers = Headers::parse(shouted.as_bytes());
        let request = Request { method: "GET", path: "/test.txt", query: &query, headers: &headers };
        let err = verify(&s, &KeyCache::default(), &request, now).err().unwrap();
        assert_eq!((err.status, err.code), (400, "AuthorizationHeaderMalformed"), "{}", err.message);
    }

    /// AWS's published presigned example (S3 docs, "Example: presigned URL").
    #[test]
    fn the_documented_presigned_example() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let query = Query::parse(Some(q)).unwrap();
        let headers = Headers::parse(b"GET /test.txt HTTP/1.1\r\nHost: examplebucket.s3.amazonaws.com\r\n\r\n");
        let request = Request { method: "GET", path: "/test.txt", query: &query, headers: &headers };
        let s = Settings::for_tests("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let now = parse_amz_date("20130524T010000Z").unwrap();
        assert!(verify(&s, &KeyCache::default(), &request, now).unwrap().is_some());
        let expired = now + 86400;
        let err = verify(&s, &KeyCache::default(), &request, expired).err().unwrap();
        assert_eq!((err.status, err.code), (403, "AccessDenied"), "{}", err.message);
    }
}
