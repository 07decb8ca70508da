//! The one place where names that reach SQL text are checked and quoted.
//!
//! Values are always bound as parameters. Names (tables, columns, pragmas) cannot be bound,
//! so every name that litehouse puts into SQL text goes through [`quote_identifier`].

use crate::error::{Error, Result};

/// Longest identifier litehouse accepts.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Checks that `name` is a plain SQL identifier: an ASCII letter or `_`, then letters, digits
/// or `_`, at most [`MAX_IDENTIFIER_LEN`] bytes, and not reserved for SQLite (`sqlite_`).
///
/// # Errors
/// [`Error::Parameter`] naming the problem.
///
/// ```
/// assert!(litehouse::validate_identifier("jobs_2026").is_ok());
/// assert!(litehouse::validate_identifier("jobs; DROP TABLE x").is_err());
/// ```
pub fn validate_identifier(name: &str) -> Result<&str> {
    let bad = |why: &str| Error::Parameter {
        message: format!("invalid identifier {name:?}: {why}"),
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(bad("it is empty")),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(bad("it must start with a letter or underscore"));
        }
        Some(_) => {}
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return Err(bad("it is longer than 64 bytes"));
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(
            "only ASCII letters, digits and underscores are allowed",
        ));
    }
    if name.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(bad("names starting with sqlite_ are reserved"));
    }
    Ok(name)
}

/// Validates `name` with [`validate_identifier`] and returns it double-quoted for SQL.
///
/// # Errors
/// [`Error::Parameter`] when the name is not a plain identifier.
///
/// ```
/// assert_eq!(litehouse::quote_identifier("status").unwrap(), "\"status\"");
/// ```
pub fn quote_identifier(name: &str) -> Result<String> {
    validate_identifier(name).map(|name| format!("\"{name}\""))
}

/// Checks a pragma value: a number, a bare word, or a word with `-`/`.` (e.g. `-64000`, `WAL`).
pub(crate) fn validate_pragma_value(value: &str) -> Result<&str> {
    let ok = !value.is_empty()
        && value.len() <= MAX_IDENTIFIER_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(value)
    } else {
        Err(Error::Config {
            message: format!("invalid pragma value {value:?}: use a number or a bare word"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let check =
            |name: &str, ok: bool| assert_eq!(validate_identifier(name).is_ok(), ok, "{name:?}");
        check("a", true);
        check("_x9", true);
        check("Jobs", true);
        check("", false);
        check("9a", false);
        check("a b", false);
        check("a\"b", false);
        check("a;b", false);
        check("sqlite_master", false);
        check("é", false);
        check(&"a".repeat(65), false);
        check(&"a".repeat(64), true);
    }

    #[test]
    fn pragma_values() {
        assert!(validate_pragma_value("-64000").is_ok());
        assert!(validate_pragma_value("WAL").is_ok());
        assert!(validate_pragma_value("1; DROP").is_err());
        assert!(validate_pragma_value("'x'").is_err());
    }
}
