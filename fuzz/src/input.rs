//! Splitting one fuzz input into the fields a target needs.

/// Splits `data` at its first `N - 1` NUL bytes; missing fields are empty and the last field
/// keeps any further NULs. Seeds stay readable: `secret\0body\0header`.
pub(crate) fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    let mut rest = data;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
            break;
        }
        match rest.iter().position(|&b| b == 0) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                rest = &[];
            }
        }
    }
    out
}

/// Applies `edits` to `text`: byte pairs (position, value) overwrite a byte; an odd last byte
/// truncates. `None` when the result is not UTF-8 or is `text` unchanged.
pub(crate) fn edited(text: &str, edits: &[u8]) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    for pair in edits.chunks(2) {
        if bytes.is_empty() {
            break;
        }
        match *pair {
            [at, value] => {
                let at = usize::from(at) % bytes.len();
                bytes[at] = value;
            }
            [cut] => bytes.truncate(usize::from(cut) % bytes.len()),
            _ => {}
        }
    }
    String::from_utf8(bytes)
        .ok()
        .filter(|edited| edited != text)
}

/// The keys (and contexts, where a vector has one) of a vectors file under `core/tests/vectors/`.
pub(crate) fn vector_keys(json: &str) -> Vec<(ssm_core::secret::KeyMaterial, Vec<u8>)> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let doc: serde_json::Value = serde_json::from_str(json).expect("the vectors are JSON");
    let b64 = |v: &serde_json::Value| {
        STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("vector fields are base64")
    };
    doc["vectors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            Some((
                ssm_core::secret::KeyMaterial::from_slice(&b64(&v["key"]))?,
                b64(&v["context"]),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{edited, fields};

    #[test]
    fn edits_overwrite_and_truncate() {
        assert_eq!(edited("abc", &[1, b'X']), Some("aXc".into()));
        assert_eq!(edited("abc", &[1, b'b']), None);
        assert_eq!(edited("abc", &[4, b'X', 2]), Some("aX".into()));
        assert_eq!(edited("abc", &[3, 0xff]), None);
    }

    #[test]
    fn splits_at_nul_and_keeps_the_rest_whole() {
        assert_eq!(fields::<3>(b"a\0b\0c\0d"), [&b"a"[..], b"b", b"c\0d"]);
        assert_eq!(fields::<3>(b"a"), [&b"a"[..], b"", b""]);
        assert_eq!(fields::<1>(b"a\0b"), [&b"a\0b"[..]]);
    }
}
