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

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn splits_at_nul_and_keeps_the_rest_whole() {
        assert_eq!(fields::<3>(b"a\0b\0c\0d"), [&b"a"[..], b"b", b"c\0d"]);
        assert_eq!(fields::<3>(b"a"), [&b"a"[..], b"", b""]);
        assert_eq!(fields::<1>(b"a\0b"), [&b"a\0b"[..]]);
    }
}
