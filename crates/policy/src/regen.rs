//! Random strings matching a regular expression: Kyverno's `random(pattern)` JMESPath function.
//!
//! Kyverno generates with `goregen` (Go `regexp/syntax`, no flags): every alternative, character
//! class and repetition count is chosen uniformly at random; anchors and word boundaries generate
//! nothing; an unbounded repetition (`*`, `+`, `{n,}`) repeats at most 4096 times (goregen's
//! `MaxUpperBound`). sigil does the same over the Rust `regex-syntax` HIR, with deliberate
//! differences: `.` and negated classes pick among valid Unicode scalar values (goregen picks
//! among all 31-bit integers, so mostly U+FFFD); Perl classes (`\d`, `\w`, `\s`) are accepted
//! (Go's parser without flags rejects them); and a pattern whose output would exceed
//! [`MAX_OUTPUT`] bytes is an error instead of exhausting memory.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Upper bound for unbounded repetitions (goregen's `MaxUpperBound`).
pub const MAX_UNBOUNDED_REPEAT: u32 = 4096;

/// Largest output, in bytes.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Why a string could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegenError {
    /// The pattern is empty (Kyverno: "no pattern provided").
    #[error("no pattern provided")]
    Empty,
    /// The pattern does not parse.
    #[error("invalid pattern: {0}")]
    Parse(String),
    /// The pattern matches nothing (an empty class, e.g. `[^\s\S]`).
    #[error("the pattern matches no string")]
    Impossible,
    /// The output would be too long.
    #[error("the generated string would exceed {MAX_OUTPUT} bytes")]
    TooLong,
    /// No randomness is available from the operating system.
    #[error("no randomness available: {0}")]
    Entropy(String),
}

/// A small non-cryptographic generator (SplitMix64), seeded from the operating system: `random`
/// is for names and test data, as Kyverno's `math/rand` source.
struct Rng(u64);

impl Rng {
    fn from_os() -> Result<Self, RegenError> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| RegenError::Entropy(e.to_string()))?;
        Ok(Self(u64::from_le_bytes(seed)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by rejection.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// Generates a random string matching `pattern`.
pub fn generate(pattern: &str) -> Result<String, RegenError> {
    if pattern.is_empty() {
        return Err(RegenError::Empty);
    }
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| RegenError::Parse(e.to_string()))?;
    let mut rng = Rng::from_os()?;
    let mut out = String::new();
    emit(&hir, &mut rng, &mut out)?;
    Ok(out)
}

fn emit(hir: &Hir, rng: &mut Rng, out: &mut String) -> Result<(), RegenError> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => {
            // Unicode mode: literals are UTF-8; a byte literal (only with `(?-u)`) is kept when
            // it is valid UTF-8.
            let s = std::str::from_utf8(&lit.0)
                .map_err(|_| RegenError::Parse("non-UTF-8 literal".into()))?;
            out.push_str(s);
        }
        HirKind::Class(Class::Unicode(c)) => {
            // Class ranges are pairs of chars and may span the surrogate gap: split them.
            let ranges: Vec<(u32, u32)> = c
                .ranges()
                .iter()
                .flat_map(|r| {
                    let (a, b) = (u32::from(r.start()), u32::from(r.end()));
                    [(a, b.min(0xD7FF)), (a.max(0xE000), b)]
                })
                .filter(|(a, b)| a <= b)
                .collect();
            let total: u64 = ranges.iter().map(|(a, b)| u64::from(b - a) + 1).sum();
            if total == 0 {
                return Err(RegenError::Impossible);
            }
            let mut i = rng.below(total);
            for (a, b) in ranges {
                let size = u64::from(b - a) + 1;
                if i < size {
                    let cp = a + u32::try_from(i).unwrap_or(0);
                    out.push(char::from_u32(cp).ok_or(RegenError::Impossible)?);
                    break;
                }
                i -= size;
            }
        }
        HirKind::Class(Class::Bytes(c)) => {
            let ascii: Vec<u8> = c
                .ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .filter(u8::is_ascii)
                .collect();
            if ascii.is_empty() {
                return Err(RegenError::Impossible);
            }
            let i = rng.below(ascii.len() as u64);
            out.push(char::from(ascii[usize::try_from(i).unwrap_or(0)]));
        }
        HirKind::Repetition(rep) => {
            let max = rep.max.unwrap_or_else(|| rep.min.max(MAX_UNBOUNDED_REPEAT));
            let n = u64::from(rep.min) + rng.below(u64::from(max - rep.min) + 1);
            for _ in 0..n {
                emit(&rep.sub, rng, out)?;
                if out.len() > MAX_OUTPUT {
                    return Err(RegenError::TooLong);
                }
            }
        }
        HirKind::Capture(cap) => emit(&cap.sub, rng, out)?,
        HirKind::Concat(subs) => {
            for s in subs {
                emit(s, rng, out)?;
            }
        }
        HirKind::Alternation(subs) => {
            let i = rng.below(subs.len() as u64);
            emit(&subs[usize::try_from(i).unwrap_or(0)], rng, out)?;
        }
    }
    if out.len() > MAX_OUTPUT {
        return Err(RegenError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_strings_match_their_pattern() {
        for p in [
            "[0-9a-z]{5}",
            "^[a-f0-9]{8}-[a-f0-9]{4}$",
            "(foo|bar|baz)-[A-Z]?[0-9]+",
            "x*y{2,3}",
            "\\d{3}\\w\\s[^abc]",
            ".{10}",
            "a|",
        ] {
            let re = regex::Regex::new(&format!("^(?:{p})$")).unwrap();
            for _ in 0..50 {
                let s = generate(p).unwrap();
                assert!(re.is_match(&s), "{p} generated {s:?}");
            }
        }
    }

    #[test]
    fn lengths_and_choices_vary() {
        let lens: std::collections::BTreeSet<usize> = (0..200)
            .map(|_| generate("a{0,9}").unwrap().len())
            .collect();
        assert!(lens.len() > 5, "{lens:?}");
        let alts: std::collections::BTreeSet<String> =
            (0..200).map(|_| generate("x|y|z").unwrap()).collect();
        assert_eq!(alts.len(), 3);
        // Unbounded repetition is capped as goregen.
        assert!(generate("a*").unwrap().len() <= MAX_UNBOUNDED_REPEAT as usize);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(generate(""), Err(RegenError::Empty));
        assert!(matches!(generate("[a-"), Err(RegenError::Parse(_))));
        assert!(matches!(generate("(a"), Err(RegenError::Parse(_))));
        assert_eq!(generate("[^\\s\\S]"), Err(RegenError::Impossible));
        assert_eq!(generate("(a{1000}){1000}{1000}"), Err(RegenError::TooLong));
    }
}
