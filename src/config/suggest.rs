//! "Did you mean …?" hints by edit distance.

/// Levenshtein distance, case-insensitive (squid.conf names are typed by hand).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = word.chars().count();
    let limit = (length / 3).clamp(1, 3);
    candidates
        .into_iter()
        // The edit distance is at least the difference in length: skip those cheaply, so a long
        // junk word does not cost a full comparison with every known directive.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean 'X'?` for [`closest`].
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean '{c}'?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["http_port", "http_access", "cache_peer", "acl"];
        assert_eq!(closest("htp_port", known), Some("http_port"));
        assert_eq!(closest("http_acess", known), Some("http_access"));
        assert_eq!(closest("HTTP_PORT", known), Some("http_port"));
        assert_eq!(closest("frobnicate", known), None);
        assert_eq!(closest("acll", known), Some("acl"));
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
