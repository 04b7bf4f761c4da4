//! The `params` target: query, form and cookie decoding, and query
//! redaction, fed the raw bytes of a query, a form body or cookie headers.

use std::collections::HashSet;

use crate::http::params::{DuplicateName, Params, cookie_values, redact_query};

use super::check_redacted_query;

/// Query, form and cookie decoding, and query redaction.
///
/// Properties: [`Params::decode`] agrees with `form_urlencoded` pair by
/// pair and refuses exactly the first repeated name; a decoded map encoded
/// again decodes to the same map; [`redact_query`] redacts every
/// credential value, keeps every name, and is idempotent; every value
/// [`cookie_values`] returns is a slice of its input holding no `;`.
pub fn params(data: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let mut seen = HashSet::new();
    let first_repeat = pairs
        .iter()
        .find(|(n, _)| !seen.insert(n.as_str()))
        .map(|(n, _)| n.clone());
    match Params::decode(data) {
        Ok(decoded) => {
            assert_eq!(first_repeat, None, "a repeated name was accepted");
            for (name, value) in &pairs {
                assert_eq!(decoded.get(name), Some(value.as_str()));
            }
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            assert_eq!(Params::decode(encoded.as_bytes()), Ok(decoded));
        }
        Err(DuplicateName(name)) => assert_eq!(Some(name), first_repeat),
    }

    let text = String::from_utf8_lossy(data);
    let redacted = redact_query(&text);
    check_redacted_query(&text, &redacted);
    assert_eq!(redact_query(&redacted), redacted, "redaction is idempotent");

    // Cookies: `NAME\0HEADER\nHEADER...`, or the session cookie's name.
    let (name, headers) = match data.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("__Host-wsgate".to_string(), data),
    };
    let start = headers.as_ptr() as usize;
    let end = start + headers.len();
    let values = cookie_values(headers.split(|&b| b == b'\n'), &name);
    for value in &values {
        let at = value.as_ptr() as usize;
        assert!(
            value.is_empty() || (at >= start && at + value.len() <= end),
            "a cookie value is not a slice of its header"
        );
        assert!(!value.contains(&b';') && !value.contains(&b'\n'));
    }
    assert!(values.len() <= headers.iter().filter(|&&b| b == b'=').count());
}
