//! Loki's rule for turning a parsed key into a label name.

/// Makes a key usable as a label name the way Loki does: surrounding
/// spaces trimmed, every character outside `[a-zA-Z0-9_]` replaced by `_`,
/// and `_` put in front of a leading digit. Writes into `out`; an empty
/// result means the key yields no label.
pub fn sanitize_label_name(key: &str, out: &mut String) {
    out.clear();
    // The usual key: an ASCII letter or `_`, then letters, digits and `_`
    // (nothing to trim, nothing to replace).
    let bytes = key.as_bytes();
    if bytes
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
    {
        out.push_str(key);
        return;
    }
    let key = key.trim();
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    if key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        // Already a valid name (but perhaps a leading digit): the usual case.
        out.push_str(key);
        return;
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}
