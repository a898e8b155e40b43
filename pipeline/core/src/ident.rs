//! Names from a database made safe where they go: SQL identifiers ([`quote`]) and path
//! components ([`path_component`]). Every table and column name that goes into a statement
//! or a path passes through here, so names with backticks, spaces, quotes, slashes, dots or
//! non-ASCII letters stay one name.

/// Quotes a MySQL identifier with backticks, doubling any backtick inside it.
pub fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// A name as one path component under a directory: `%`, `/` and NUL percent-encoded, and the
/// names `.`, `..` and the empty one (which would name the directory itself or its parent)
/// encoded whole. Other names stay as they are.
pub fn path_component(name: &str) -> String {
    match name {
        "" => "%".to_owned(),
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        _ => name.replace('%', "%25").replace('/', "%2F").replace('\0', "%00"),
    }
}

#[cfg(test)]
mod tests {
    use super::{path_component, quote};

    #[test]
    fn path_components_never_leave_their_directory() {
        let root = std::path::Path::new("/out");
        for name in ["..", ".", "", "../x", "a/../../b", "a\0b", "%2F", "...", ".hidden", "日本"] {
            let c = path_component(name);
            let joined = root.join(&c);
            assert_eq!(joined.parent(), Some(root), "{name:?} -> {c:?}");
            assert!(!matches!(c.as_str(), "." | ".." | ""), "{name:?}");
            assert!(!c.contains(['/', '\0']), "{name:?}");
        }
        assert_eq!(path_component("orders"), "orders");
        assert_eq!(path_component("a/b%c"), "a%2Fb%25c");
        assert_eq!(path_component(".."), "%2E%2E");
        assert_ne!(path_component("%2E"), path_component("."), "encoding keeps names apart");
    }

    #[test]
    fn doubles_backticks_and_keeps_everything_else() {
        assert_eq!(quote("order_tab"), "`order_tab`");
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(quote("special_\"[`]$'_db"), "`special_\"[``]$'_db`");
        assert_eq!(quote("dbz5743中文"), "`dbz5743中文`");
    }
}
