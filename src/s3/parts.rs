//! Where a completed multipart object's parts lie, so that GetObject and
//! HeadObject can answer `partNumber` (clients that download an object part
//! by part, as it was uploaded, ask for it: the AWS SDKs' transfer
//! managers). Kept with the object's S3 metadata as [`HEADER`], never sent:
//! the part sizes in runs, `5242880*2,1000` for two parts of 5 MiB and a
//! last of 1,000 bytes. An object of one PUT is one part, all of it.

/// The stored entry's name (`x-percore-*` names are kept, never sent).
pub(crate) const HEADER: &str = "x-percore-parts";

/// The longest layout kept: a few dozen runs. Uploads whose parts vary in
/// size more than that keep none, and their parts are not served
/// ([`layout_lost`]).
const TEXT_BYTES_MAX: usize = 512;

/// The text kept for parts of `sizes` bytes, in order; none if too long.
pub(crate) fn encode(sizes: &[u64]) -> Option<String> {
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for &size in sizes {
        match runs.last_mut() {
            Some((last, count)) if *last == size => *count += 1,
            _ => runs.push((size, 1)),
        }
    }
    let text = runs
        .iter()
        .map(|(size, count)| if *count == 1 { size.to_string() } else { format!("{size}*{count}") })
        .collect::<Vec<_>>()
        .join(",");
    (text.len() <= TEXT_BYTES_MAX).then_some(text)
}

/// The runs (size, count) of a kept text, if it is one.
pub(crate) fn decode(text: &str) -> Option<Vec<(u64, u32)>> {
    if text.is_empty() || text.len() > TEXT_BYTES_MAX {
        return None;
    }
    let runs: Vec<(u64, u32)> = text
        .split(',')
        .map(|run| {
            let (size, count) = run.split_once('*').unwrap_or((run, "1"));
            let count: u32 = count.parse().ok().filter(|c| (1..=10_000).contains(c))?;
            Some((size.parse().ok()?, count))
        })
        .collect::<Option<_>>()?;
    // Every offset within a u64, at most 10,000 parts.
    runs.iter().try_fold(0u64, |sum, (size, count)| sum.checked_add(size.checked_mul(u64::from(*count))?))?;
    (count(&runs) <= 10_000).then_some(runs)
}

/// How many parts the runs hold.
pub(crate) fn count(runs: &[(u64, u32)]) -> u32 {
    runs.iter().map(|(_, count)| count).sum()
}

/// Part `number`'s first byte and length, if the runs have such a part.
pub(crate) fn span(runs: &[(u64, u32)], number: u32) -> Option<(u64, u64)> {
    let (mut start, mut before) = (0u64, 0u32);
    for &(size, count) in runs {
        if number <= before + count {
            return Some((start + size * u64::from(number - 1 - before), size));
        }
        start += size * u64::from(count);
        before += count;
    }
    None
}

/// Whether `etag` is a multipart upload's S3 ETag (`"<32 hex>-N"`); the
/// store's own validators (`"ino-size-time.ns"`, of files written through
/// `/files/`) are not.
pub(crate) fn multipart_etag(etag: &str) -> bool {
    let inner = etag.trim_matches('"');
    inner.split_once('-').is_some_and(|(md5, count)| {
        md5.len() == 32
            && md5.bytes().all(|b| b.is_ascii_hexdigit())
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Why a multipart object's part cannot be served: its layout was not kept.
pub(crate) const fn layout_lost() -> &'static str {
    "this object's part boundaries were not kept (it was completed by an earlier percore, or its parts vary in size \
     too much): ask for its bytes with a Range instead"
}

/// How many parts the object of `stored` headers has, if it was uploaded in
/// parts and their layout was kept.
pub(crate) fn count_of(stored: &[(String, String)]) -> Option<u32> {
    stored.iter().find(|(name, _)| name == HEADER).and_then(|(_, text)| decode(text)).map(|runs| count(&runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_round_trips_and_finds_each_part() {
        let sizes = [5u64 << 20, 5 << 20, 5 << 20, 6 << 20, 1000];
        let text = encode(&sizes).unwrap();
        assert_eq!(text, "5242880*3,6291456,1000");
        let runs = decode(&text).unwrap();
        assert_eq!(count(&runs), 5);
        let mut start = 0;
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(span(&runs, i as u32 + 1), Some((start, *size)));
            start += size;
        }
        assert_eq!(span(&runs, 6), None);
        assert_eq!(decode(&encode(&[7]).unwrap()), Some(vec![(7, 1)]));
    }

    #[test]
    fn only_a_multipart_uploads_etag_reads_as_one() {
        assert!(multipart_etag("\"0123456789abcdef0123456789abcdef-3\""));
        assert!(!multipart_etag("\"0123456789abcdef0123456789abcdef\""));
        let stamp = crate::files::etag_of(0x51ab3, 4096, (1_764_950_400, 987_654_321));
        assert!(stamp.contains('-') && !multipart_etag(&stamp), "{stamp}");
        assert!(!multipart_etag("\"0123456789abcdef0123456789abcdef-\""));
    }

    #[test]
    fn layouts_too_long_are_not_kept_and_garbage_does_not_decode() {
        let varied: Vec<u64> = (0..100).map(|i| (5 << 20) + i).collect();
        assert_eq!(encode(&varied), None);
        let huge = format!("{}*2", u64::MAX / 2 + 1);
        for bad in ["", "a", "5*0", "5*x", "5,,6", "5*10001", "-1", "1*6000,1*6000", &huge] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
