//! Repository-name and tag grammar of distribution-spec v1.1.1.

use crate::error::OciError;

/// Longest accepted repository name (many clients cap `host[:port]/name` at 255 characters).
pub const NAME_MAX: usize = 255;

/// Validates a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
pub fn validate_repository(name: &str) -> Result<(), OciError> {
    let bad = |why| OciError::InvalidName(name.to_owned(), why);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > NAME_MAX {
        return Err(bad("longer than 255 characters"));
    }
    for component in name.split('/') {
        validate_component(component).map_err(bad)?;
    }
    Ok(())
}

fn validate_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty path component");
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let mut need_alnum = true;
    while i < b.len() {
        if alnum(b[i]) {
            need_alnum = false;
            i += 1;
            continue;
        }
        if need_alnum {
            return Err("separator must follow a letter or digit");
        }
        // separator: '.', '_', '__', or one or more '-'
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return Err("only lowercase letters, digits, '.', '_', '-' and '/' are allowed"),
        }
        need_alnum = true;
    }
    if need_alnum {
        return Err("must end with a letter or digit");
    }
    Ok(())
}

/// Whether `tag` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Validates a tag.
pub fn validate_tag(tag: &str) -> Result<(), OciError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(OciError::InvalidTag(tag.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repository_names() {
        for good in [
            "a",
            "library/alpine",
            "a.b_c__d---e/f0",
            "x/y/z/w/v/u/t/s/r",
        ] {
            validate_repository(good).unwrap();
        }
        for bad in [
            "", "A", "a/../b", "..", "a/.b", "a_", "a___b", "a//b", "/a", "a/", "a b", "a:b",
            "a..b", "a/%2e%2e",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x.Y-1"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag("a:b"));
        assert!(!is_valid_tag(""));
    }
}
