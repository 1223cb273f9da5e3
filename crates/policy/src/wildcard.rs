//! Kyverno-style wildcard patterns (`*` = any sequence, `?` = exactly one character).
//!
//! This mirrors `github.com/kyverno/kyverno/ext/wildcard.Match`: `*` also
//! matches `/`, matching is case-sensitive and anchored at both ends.

/// A pre-compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pattern: String,
    chars: Vec<char>,
}

impl Wildcard {
    /// Compiles a pattern. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            chars: pattern.chars().collect(),
        }
    }

    /// The source pattern.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// True if the pattern contains `*` or `?`.
    pub fn has_wildcards(&self) -> bool {
        contains_wildcard(&self.pattern)
    }

    /// Matches `text` against the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let p = &self.chars;
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(c) if *c == '?' || text.get(ti) == Some(c) => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi.min(p.len())..].iter().all(|c| *c == '*')
    }
}

/// Convenience: does `pattern` match `text`?
pub fn matches(pattern: &str, text: &str) -> bool {
    Wildcard::new(pattern).matches(text)
}

/// True if `s` contains a wildcard character.
pub fn contains_wildcard(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert!(matches(
            "ghcr.io/kyverno/test-verify-image:*",
            "ghcr.io/kyverno/test-verify-image:signed"
        ));
        assert!(matches("*", ""));
        assert!(matches("ghcr.io/*", "ghcr.io/kyverno/x:1"));
        assert!(!matches("ghcr.io/kyverno*", "ghcr.io/other/x:1"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("abc", "abcd"));
        assert!(matches("ab*", "ab"));
    }
}
