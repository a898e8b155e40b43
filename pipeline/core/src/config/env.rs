//! `${VAR}` in a config file: the variable's value, put into the TOML string it stands in so
//! that the string's parsed value holds it exactly (a `"` or `\` in a password stays one, a
//! newline cannot start a key). Outside strings and in comments nothing is replaced; `$${`
//! writes a literal `${`.

use super::ConfigError;

/// The kind of TOML text a position is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lexeme {
    Bare,
    Comment,
    /// `"..."`, `'...'`, `"""..."""`, `'''...'''`.
    Basic,
    Literal,
    MultiBasic,
    MultiLiteral,
}

/// Replaces every `${VAR}` inside a string with the variable's value, escaped for that string.
pub fn interpolate(text: &str, origin: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut state = Lexeme::Bare;
    let mut line = 1;
    let mut rest = text;
    while !rest.is_empty() {
        if state != Lexeme::Bare && state != Lexeme::Comment && rest.starts_with("$${") {
            out.push_str("${");
            rest = &rest[3..];
            continue;
        }
        if state != Lexeme::Bare && state != Lexeme::Comment && rest.starts_with("${") {
            let Some(end) = rest.find('}').filter(|&e| !rest[..e].contains('\n')) else {
                return Err(ConfigError::Env { origin: origin.to_owned(), line, problem: "an unclosed ${".into() });
            };
            let var = &rest[2..end];
            let value = env(var).ok_or_else(|| ConfigError::MissingEnv {
                origin: origin.to_owned(),
                line,
                var: var.to_owned(),
            })?;
            push_value(&mut out, &value, state).map_err(|why| ConfigError::Env {
                origin: origin.to_owned(),
                line,
                problem: format!("the value of {var} (used as ${{{var}}}) {why}"),
            })?;
            rest = &rest[end + 1..];
            continue;
        }
        let (token, next) = step(rest, state);
        if token.contains('\n') {
            line += token.matches('\n').count();
        }
        out.push_str(token);
        rest = &rest[token.len()..];
        state = next;
    }
    Ok(out)
}

/// The next token of `rest` in `state` (a delimiter, an escape, or one character) and the
/// state after it.
fn step(rest: &str, state: Lexeme) -> (&str, Lexeme) {
    let one = &rest[..rest.chars().next().map_or(0, char::len_utf8)];
    match state {
        Lexeme::Bare if rest.starts_with("\"\"\"") => (&rest[..3], Lexeme::MultiBasic),
        Lexeme::Bare if rest.starts_with("'''") => (&rest[..3], Lexeme::MultiLiteral),
        Lexeme::Bare if one == "\"" => (one, Lexeme::Basic),
        Lexeme::Bare if one == "'" => (one, Lexeme::Literal),
        Lexeme::Bare if one == "#" => (one, Lexeme::Comment),
        Lexeme::Comment if one == "\n" => (one, Lexeme::Bare),
        Lexeme::Basic | Lexeme::MultiBasic if one == "\\" => {
            (&rest[..1 + rest[1..].chars().next().map_or(0, char::len_utf8)], state)
        }
        Lexeme::Basic if one == "\"" || one == "\n" => (one, Lexeme::Bare),
        Lexeme::Literal if one == "'" || one == "\n" => (one, Lexeme::Bare),
        Lexeme::MultiBasic if rest.starts_with("\"\"\"") => (&rest[..3], Lexeme::Bare),
        Lexeme::MultiLiteral if rest.starts_with("'''") => (&rest[..3], Lexeme::Bare),
        _ => (one, state),
    }
}

/// Appends `value` as it must be written inside a string of kind `state`.
fn push_value(out: &mut String, value: &str, state: Lexeme) -> Result<(), &'static str> {
    match state {
        Lexeme::Basic | Lexeme::MultiBasic => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            Ok(())
        }
        Lexeme::Literal if value.contains(['\'', '\n', '\r']) => {
            Err("holds a quote or a line break, which a '...' string cannot: use \"...\"")
        }
        Lexeme::MultiLiteral if value.contains("'''") => Err("holds ''', which a '''...''' string cannot"),
        _ => {
            out.push_str(value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "PW" => Some("a\"b\\c\td\ne = 1".into()),
            "Q" => Some("it's".into()),
            "N" => Some("42".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> toml::Table {
        let text = interpolate(text, "t.toml", env).expect("interpolates");
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn values_arrive_exactly_in_every_kind_of_string() {
        let t = parse("a = \"x${PW}y\"\nb = \"\"\"${PW}\"\"\"\nc = 'q${N}'\nd = '''${Q}'''\n");
        assert_eq!(t["a"].as_str(), Some("xa\"b\\c\td\ne = 1y"));
        assert_eq!(t["b"].as_str(), Some("a\"b\\c\td\ne = 1"));
        assert_eq!(t["c"].as_str(), Some("q42"));
        assert_eq!(t["d"].as_str(), Some("it's"));
        assert!(!t.contains_key("e"), "a newline in a value starts no key");
    }

    #[test]
    fn comments_bare_text_and_escapes_are_left_alone() {
        assert_eq!(
            interpolate("a = \"$${X} $5\" # ${NOPE}\n", "o", env).expect("no vars"),
            "a = \"${X} $5\" # ${NOPE}\n"
        );
        assert_eq!(interpolate("a = \"\\\"${N}\"", "o", env).expect("after an escape"), "a = \"\\\"42\"");
        assert_eq!(interpolate("a = ${N}", "o", env).expect("bare"), "a = ${N}");
    }

    #[test]
    fn what_cannot_be_put_in_a_string_is_an_error_naming_the_variable_and_line() {
        let err = interpolate("\nc = '${Q}'", "t.toml", env).expect_err("quote in literal").to_string();
        assert_eq!(
            err,
            "t.toml:2: the value of Q (used as ${Q}) holds a quote or a line break, which a '...' string cannot: use \"...\""
        );
        let err = interpolate("a = \"${PW\"\n", "t.toml", env).expect_err("unclosed").to_string();
        assert_eq!(err, "t.toml:1: an unclosed ${");
        let err = interpolate("a = \"x\"\nb = \"${NOPE}\"", "t.toml", env).expect_err("unset").to_string();
        assert_eq!(err, "t.toml:2: environment variable NOPE is not set (used as ${NOPE})");
    }
}
