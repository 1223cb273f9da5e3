//! sigil's integration tests, in one binary (`autotests = false`):
//! - `conformance`: `sigil registry serve` against distribution-spec v1.1.1 and the referrers API;
//! - `oracles`: interoperability with third-party tools (skopeo, oras-py, Debian's docker-registry);
//! - `crash`: kill -9 during uploads, then restart on the same data directory;
//! - `gc`: `sigil registry gc` keeps live content and removes garbage;
//! - `cosign_oracles`: cosign legacy signatures/key files and keyless bundles against independent
//!   implementations (scripts/oracles/cosign-legacy.py, sigstore-python with @sigstore/mock);
//! - `artifacts`: `sigil attach/discover/pull/delete/copy --referrers` against sigil (with and without the
//!   referrers API) and docker-registry 2.8.2, with oras-py as oracle;
//! - `policy`: `sigil policy apply|test` with Kyverno policies over images signed by `sigil sign|attest`
//!   (keys, certificates) and sigstore-python (keyless, @sigstore/mock), and bad input;
//! - `webhook`: `sigil webhook serve` and `sigil serve` over HTTPS with AdmissionReview bodies (Pod,
//!   Deployment, CronJob), patches, reload, metrics, deadlines, every attestor kind; `deploy/` manifests;
//! - `notary`: `sigil notary sign/verify/inspect` on the notation e2e layouts (sigil and docker-registry),
//!   sign/verify round trips, RFC 3161 timestamps from a local TSA, CRL revocation of the signing and
//!   TSA chains against a local CRL server, and the policy-engine Notary API;
//! - `credentials`: docker credential helpers (`credHelpers`, `credsStore`: precedence, not found,
//!   crash, timeout) with fake `docker-credential-*` scripts against `sigil registry serve --htpasswd`.
//!
//! `util` holds the harness. Oracle tests skip when a tool is missing unless `SIGIL_REQUIRE_ORACLES=1`
//! (`scripts/test.sh` sets it and installs the tools first).

#![allow(clippy::unwrap_used)]

mod util;

mod artifacts;
mod bundle;
mod conformance;
mod cosign;
mod cosign_oracles;
mod crash;
mod credentials;
mod gc;
mod notary;
mod oracles;
mod policy;
mod webhook;
