//! Platforms (`os/arch[/variant]`): parsing, normalisation and matching against index entries.
//!
//! Normalisation follows common practice (regclient, containerd): `x86_64` → `amd64`, `aarch64` →
//! `arm64`, `arm64/v8` ≡ `arm64`, `arm` without variant ≡ `arm/v7`, `armhf` → `arm/v7`, `armel` →
//! `arm/v6`, `macos` → `darwin`, bare variant numbers get a `v` prefix. A host can run a target whose
//! variant is not newer than its own (an `arm/v7` host runs `arm/v6` images).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::OciError;

/// A platform as found in image-index entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (GOARCH values).
    pub architecture: String,
    /// Operating system (GOOS values).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(OciError::InvalidPlatform(s.to_owned()));
        }
        Ok(Self {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
            ..Self::default()
        })
    }

    /// The normalised (os, architecture, variant) triple; the variant is "" when it is the default.
    pub fn normalized(&self) -> (String, String, String) {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            o => o.to_owned(),
        };
        let mut variant = self
            .variant
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !variant.is_empty() && variant.chars().all(|c| c.is_ascii_digit()) {
            variant = format!("v{variant}");
        }
        let arch = match self.architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => "amd64".to_owned(),
            "aarch64" => "arm64".to_owned(),
            "i386" => "386".to_owned(),
            "armhf" => {
                variant = "v7".to_owned();
                "arm".to_owned()
            }
            "armel" => {
                variant = "v6".to_owned();
                "arm".to_owned()
            }
            a => a.to_owned(),
        };
        match arch.as_str() {
            "arm64" if variant == "v8" => variant.clear(),
            "amd64" if variant == "v1" => variant.clear(),
            "arm" if variant.is_empty() => variant = "v7".to_owned(),
            _ => {}
        }
        (os, arch, variant)
    }

    /// Whether an image for `target` runs on this (host) platform.
    pub fn can_run(&self, target: &Self) -> bool {
        let (ho, ha, hv) = self.normalized();
        let (to, ta, tv) = target.normalized();
        ho == to && ha == ta && variant_rank(&tv) <= variant_rank(&hv)
    }

    /// Picks the best entry for this platform: an exact match first, else the newest compatible
    /// variant. Returns the index into `candidates`.
    pub fn choose<'a, I>(&self, candidates: I) -> Option<usize>
    where
        I: IntoIterator<Item = Option<&'a Self>>,
    {
        let want = self.normalized();
        let mut best: Option<(usize, (u32, u32))> = None;
        for (i, c) in candidates.into_iter().enumerate() {
            let Some(c) = c else { continue };
            if c.normalized() == want {
                return Some(i);
            }
            if self.can_run(c) {
                let rank = variant_rank(&c.normalized().2);
                if best.is_none_or(|(_, r)| rank > r) {
                    best = Some((i, rank));
                }
            }
        }
        best.map(|(i, _)| i)
    }
}

/// Orders variants: "" (baseline) < v1 < v2 < … ; `v8.1` > `v8`.
fn variant_rank(v: &str) -> (u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0);
    };
    let mut it = rest.splitn(2, '.');
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = OciError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn normalises_common_aliases() {
        assert_eq!(
            p("linux/aarch64").normalized(),
            p("linux/arm64/v8").normalized()
        );
        assert_eq!(
            p("linux/x86_64").normalized(),
            p("linux/amd64").normalized()
        );
        assert_eq!(p("linux/arm").normalized(), p("linux/arm/v7").normalized());
        assert_eq!(p("linux/armhf").normalized(), p("linux/arm/7").normalized());
        assert_eq!(p("macos/arm64").normalized().0, "darwin");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn chooses_exact_then_compatible_variant() {
        let entries = [
            p("linux/amd64"),
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            p("linux/arm64/v8"),
        ];
        let pick = |want: &str| p(want).choose(entries.iter().map(Some));
        assert_eq!(pick("linux/arm64"), Some(3));
        assert_eq!(pick("linux/aarch64"), Some(3));
        assert_eq!(pick("linux/arm/v7"), Some(2));
        assert_eq!(pick("linux/arm/v8"), Some(2)); // v8 host runs v7 images, newest compatible
        assert_eq!(pick("linux/arm/v6"), Some(1));
        assert_eq!(pick("linux/amd64"), Some(0));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(p("linux/arm/v5").choose(entries.iter().map(Some)), None);
    }
}
