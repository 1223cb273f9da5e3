//! Parsing of `/v2/...` request paths into API routes.
//!
//! Repository names contain slashes, so routes are recognised from the right: the last path segment is
//! a reference, digest or upload id, and the segment before it names the endpoint. Names are validated
//! with the distribution-spec grammar before any storage access.

/// A recognised API route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: &'a str, id: &'a str },
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: &'a str, digest: &'a str },
}

/// Parses a request path; `None` if it is not an API path.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart { name });
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Some(Route::Upload { name, id: last });
    }
    if let Some(name) = head.strip_suffix("/manifests") {
        return Some(Route::Manifest {
            name,
            reference: last,
        });
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Some(Route::Blob { name, digest: last });
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return Some(Route::Referrers { name, digest: last });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_endpoint() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse("/v2/a/b/tags/list"),
            Some(Route::Tags { name: "a/b" })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart { name: "a" })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/abc"),
            Some(Route::Upload {
                name: "a",
                id: "abc"
            })
        );
        assert_eq!(
            parse("/v2/a/manifests/b/manifests/latest"),
            Some(Route::Manifest {
                name: "a/manifests/b",
                reference: "latest"
            })
        );
        assert_eq!(
            parse("/v2/x/blobs/sha256:1"),
            Some(Route::Blob {
                name: "x",
                digest: "sha256:1"
            })
        );
        assert_eq!(
            parse("/v2/x/referrers/sha256:1"),
            Some(Route::Referrers {
                name: "x",
                digest: "sha256:1"
            })
        );
        assert_eq!(parse("/v3/x"), None);
        assert_eq!(parse("/v2/x/unknown/y"), None);
    }
}
