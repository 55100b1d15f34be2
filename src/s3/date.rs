//! The dates of signatures: `YYYYMMDDTHHMMSSZ` to and from seconds since
//! the epoch, and S3's ISO 8601 form. Hand-written: one well-known
//! function (days from a civil date) and its inverse, smaller than a date
//! crate.

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
pub(crate) fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = text.get(r)?;
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    u64::try_from(days * 86400 + (h * 3600 + mi * 60 + s) as i64).ok()
}

/// Seconds since the epoch of S3's ISO 8601 form, `YYYY-MM-DDTHH:MM:SSZ`
/// with or without a fraction of a second (`.000Z`, dropped): a form's
/// policy's expiration, a conditional delete's `LastModifiedTime`.
pub(crate) fn parse_iso8601(text: &str) -> Option<u64> {
    let whole = match text.strip_suffix('Z')?.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|c| c.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => text.strip_suffix('Z')?,
    };
    let w = whole.as_bytes();
    if w.len() != 19 || [w[4], w[7], w[10], w[13], w[16]] != [b'-', b'-', b'T', b':', b':'] {
        return None;
    }
    let (date, time) = (&whole[..10], &whole[11..]);
    parse_amz_date(&format!("{}{}{}T{}{}{}Z", &date[..4], &date[5..7], &date[8..], &time[..2], &time[3..5], &time[6..]))
}

/// Seconds since the epoch of a timestamp as clients send one: an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, SDKs' form in headers) or ISO 8601.
pub(crate) fn parse_timestamp(text: &str) -> Option<u64> {
    let text = text.trim();
    match httpdate::parse_http_date(text) {
        Ok(time) => time.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs()),
        Err(_) => parse_iso8601(text),
    }
}

/// `YYYYMMDDTHHMMSSZ` of seconds since the epoch.
pub(crate) fn format_amz_date(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Inverse of days_from_civil.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00Z"), Some(1_440_938_160));
        assert_eq!(parse_timestamp("Sun, 30 Aug 2015 12:36:00 GMT"), Some(1_440_938_160));
        assert_eq!(parse_timestamp(" 2015-08-30T12:36:00.000Z "), Some(1_440_938_160));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_iso8601("2015-08-30T12:36:00.000Z"), Some(1_440_938_160));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00.123456Z"), Some(1_440_938_160));
        for bad in [
            "2015-08-30 12:36:00Z",
            "2015-08-30T12:36:00",
            "2015-08-30T12:36:00.Z",
            "2015-0830T12:36:00Z",
            "20150830T123600Z",
            "2015-08-30T12:36:00.1x2Z",
            "",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
        for bad in ["2015-08-30T12:36:00Z", "20151330T123600Z", "20150830T123600", ""] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
