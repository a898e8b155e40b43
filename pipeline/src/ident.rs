//! SQL identifier quoting. Every table and column name that goes into a statement passes
//! through here, so names with backticks, spaces, quotes or non-ASCII letters stay one name.

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

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn doubles_backticks_and_keeps_everything_else() {
        assert_eq!(quote("order_tab"), "`order_tab`");
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(quote("special_\"[`]$'_db"), "`special_\"[``]$'_db`");
        assert_eq!(quote("dbz5743中文"), "`dbz5743中文`");
    }
}
