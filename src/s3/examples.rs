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
        // The signature as SigV4 writes it, and only so: not in upper case, cut short, or longer.
        let text = std::str::from_utf8(head).unwrap();
        let signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        for (changed, why) in [
            (signature.to_uppercase(), "upper case"),
            (signature[..63].to_string(), "63 digits"),
            (format!("{signature}0"), "65 digits"),
            (String::new(), "empty"),
            (format!("{}g", &signature[..63]), "not hex"),
        ] {
            let headers = Headers::parse(text.replace(signature, &changed).as_bytes());
            let request = Request { method: "GET", path: "/test.txt", query: &query, headers: &headers };
            let err = verify(&s, &KeyCache::default(), &request, now).err().expect(why);
            assert_eq!(err.code, "SignatureDoesNotMatch", "{why}");
        }
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

    /// AWS's published example of signed chunks with a trailer (S3 docs,
    /// "Signature calculations for trailing headers"): 64 KiB and 1 KiB of
    /// `a`, the empty chunk, then a CRC32C and the trailer's signature
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`, as the Java SDK sends
    /// over HTTP). Every signature holds, the CRC32C is the data's; a
    /// trailer signed otherwise, or a changed checksum, is refused.
    #[test]
    fn the_documented_signed_chunks_with_a_trailer() {
        use crate::s3::checksum::{encode, Algorithm, Hasher};
        use crate::s3::chunked::Decoder;
        const SEED: &str = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        const TRAILER_SIGNATURE: &str = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";
        let body = |trailer: &str, signature: &str| {
            let mut body =
                b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n".to_vec();
            body.extend(vec![b'a'; 0x10000]);
            body.extend(
                b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
            );
            body.extend(vec![b'a'; 0x400]);
            body.extend(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
            body.extend(format!("{trailer}\r\nx-amz-trailer-signature:{signature}\r\n\r\n").into_bytes());
            body
        };
        let decode = |body: &[u8]| {
            let chain =
                Chain::from_seed("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524T000000Z", "us-east-1", SEED);
            let mut decoder = Decoder::new(Some(Box::new(chain)));
            let mut out = Vec::new();
            // Fed as a socket would hand it over, in pieces.
            for piece in body.chunks(1000) {
                decoder.feed(piece, &mut out)?;
            }
            decoder.finish(true)?;
            Ok::<_, crate::s3::S3Error>((out, decoder.trailer_value("x-amz-checksum-crc32c").map(str::to_string)))
        };
        let (data, crc) =
            decode(&body("x-amz-checksum-crc32c:sOO8/Q==", TRAILER_SIGNATURE)).expect("the example holds");
        assert_eq!(data, vec![b'a'; 0x10400]);
        let mut hasher = Hasher::new(Algorithm::Crc32c);
        hasher.update(&data);
        assert_eq!(crc.as_deref(), Some(encode(&hasher.finish()).as_str()));
        let forged = "0".repeat(64);
        assert_eq!(decode(&body("x-amz-checksum-crc32c:sOO8/Q==", &forged)).unwrap_err().code, "SignatureDoesNotMatch");
        let changed = decode(&body("x-amz-checksum-crc32c:AAAAAA==", TRAILER_SIGNATURE)).unwrap_err();
        assert_eq!(changed.code, "SignatureDoesNotMatch");
    }
}
