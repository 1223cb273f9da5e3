//! Where an image lives: a registry reference or an OCI image layout (`oci:PATH[:TAG]`, as skopeo).
//!
//! The layout form is split at the first `:` after `oci:` (so the path cannot contain `:`), as
//! containers/image does; `oci:PATH@sha256:...` names a manifest by digest.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sigil_oci::{Digest, Reference};

use crate::error::ClientError;

/// An OCI image layout plus an optional image name in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub path: PathBuf,
    /// `org.opencontainers.image.ref.name` of the image, or a digest; `None` = the only image.
    pub reference: Option<String>,
}

impl LayoutRef {
    /// The reference if it is a digest.
    pub fn digest(&self) -> Option<Digest> {
        self.reference
            .as_deref()
            .and_then(|r| Digest::parse(r).ok())
    }

    /// The reference if it is a tag (ref name) rather than a digest.
    pub fn tag(&self) -> Option<&str> {
        self.reference
            .as_deref()
            .filter(|r| Digest::parse(r).is_err())
    }
}

/// An image location: registry or OCI layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `registry/repository[:tag][@digest]`.
    Registry(Reference),
    /// `oci:PATH[:TAG]` or `oci:PATH@DIGEST`.
    Layout(LayoutRef),
}

impl ImageRef {
    /// Parses `oci:PATH[:TAG]`, `oci:PATH@DIGEST`, or an image reference.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, reference) = if let Some((p, d)) = rest.rsplit_once('@')
                && Digest::parse(d).is_ok()
            {
                (p, Some(d.to_owned()))
            } else {
                match rest.split_once(':') {
                    Some((p, r)) if !r.is_empty() => (p, Some(r.to_owned())),
                    Some((p, _)) => (p, None),
                    None => (rest, None),
                }
            };
            if path.is_empty() {
                return Err(ClientError::InvalidInput(format!(
                    "invalid OCI layout reference {s:?}: empty path (use oci:PATH[:TAG])"
                )));
            }
            return Ok(Self::Layout(LayoutRef {
                path: PathBuf::from(path),
                reference,
            }));
        }
        Ok(Self::Registry(Reference::parse(s)?))
    }

    /// The tag (registry tag or layout ref name), if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Self::Registry(r) => r.tag.as_deref(),
            Self::Layout(l) => l.tag(),
        }
    }

    /// The digest, if the reference names one.
    pub fn digest(&self) -> Option<Digest> {
        match self {
            Self::Registry(r) => r.digest.clone(),
            Self::Layout(l) => l.digest(),
        }
    }
}

impl FromStr for ImageRef {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registry(r) => write!(f, "{r}"),
            Self::Layout(l) => {
                write!(f, "oci:{}", l.path.display())?;
                match (&l.reference, l.digest()) {
                    (Some(r), Some(_)) => write!(f, "@{r}"),
                    (Some(r), None) => write!(f, ":{r}"),
                    (None, _) => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_layouts_and_references() {
        let r = ImageRef::parse("oci:./lay:multi").unwrap();
        assert_eq!(
            r,
            ImageRef::Layout(LayoutRef {
                path: "./lay".into(),
                reference: Some("multi".into())
            })
        );
        assert_eq!(r.tag(), Some("multi"));
        assert_eq!(r.to_string(), "oci:./lay:multi");
        let r = ImageRef::parse("oci:/tmp/x").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), "oci:/tmp/x");
        let r = ImageRef::parse(&format!("oci:/tmp/x@{D}")).unwrap();
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("oci:/tmp/x@{D}"));
        let r = ImageRef::parse(&format!("oci:/tmp/x:{D}")).unwrap();
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert!(ImageRef::parse("oci:").is_err());
        assert!(ImageRef::parse("oci::tag").is_err());
        let r = ImageRef::parse("127.0.0.1:5000/demo/app:v1").unwrap();
        assert!(matches!(r, ImageRef::Registry(_)));
        assert_eq!(r.tag(), Some("v1"));
        assert!(ImageRef::parse("UPPER/x").is_err());
    }
}
