//! The verification workflow of one signature envelope, in notation's order: integrity, plugin
//! requirement, authenticity (a chain certificate byte-identical to a trust-store certificate of the
//! scheme's store type, then trusted identities), expiry, authentic signing time (RFC 3161 timestamp
//! against the `tsa` stores, or every chain certificate valid now; the authentic signing time for the
//! signing-authority scheme; the TSA chain's revocation is always checked and fails this step when
//! revoked or unknown, as notation does), revocation of the signing chain ([`crate::revocation`]:
//! revoked or unknown is a failure, enforced or logged per the level; an unreachable responder is
//! "unknown", never a pass), and finally the signed target descriptor against the artifact. Each
//! check gets the action of the policy's level and overrides.
//!
//! [`verify_signature_with`] contacts the revocation responders through a
//! [`RevocationChecker`]; [`verify_signature`] is the synchronous form with an offline checker
//! (certificates naming responders are "unknown").

use serde::Serialize;

use crate::envelope::{Envelope, SigningScheme, TargetArtifact};
use crate::error::{Check, NotaryError};
use crate::revocation::{RevocationChecker, final_result};
use crate::time::{format_rfc1123, format_rfc3339};
use crate::timestamp::{VerifiedTimestamp, verify_token_chain};
use crate::trustpolicy::{
    Action, Level, TrustPolicyStatement, TrustedIdentity, VerifyTimestamp, subject_matches,
};
use crate::truststore::{StoreType, TrustStore};

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// Which check.
    pub check: Check,
    /// Its action under the policy.
    pub action: Action,
    /// `None` when it passed (or was skipped), else why it failed.
    pub error: Option<String>,
}

/// What verifying one signature found.
#[derive(Debug, Clone)]
pub struct SignatureVerification {
    /// The parsed envelope (absent when it did not parse).
    pub envelope: Option<Envelope>,
    /// The signed target descriptor (after integrity).
    pub target: Option<TargetArtifact>,
    /// The checks run, in order.
    pub checks: Vec<CheckOutcome>,
    /// The verified timestamp, when one was checked.
    pub timestamp: Option<VerifiedTimestamp>,
}

impl SignatureVerification {
    /// The enforced failure, if any.
    pub fn failure(&self) -> Option<&CheckOutcome> {
        self.checks
            .iter()
            .find(|c| c.error.is_some() && c.action == Action::Enforce)
    }

    /// Whether the signature is accepted.
    pub fn passed(&self) -> bool {
        self.failure().is_none() && self.target.is_some()
    }

    /// Logged (non-fatal) failures.
    pub fn warnings(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.action == Action::Log)
            .filter_map(|c| {
                c.error
                    .as_ref()
                    .map(|e| format!("{} was set to \"log\" and failed: {e}", c.check))
            })
            .collect()
    }

    /// One line explaining the failure.
    pub fn reason(&self) -> String {
        match self.failure() {
            Some(c) => format!(
                "{} validation failed: {}",
                c.check,
                c.error.as_deref().unwrap_or_default()
            ),
            None if self.target.is_none() => "integrity validation failed".into(),
            None => "passed".into(),
        }
    }
}

/// The artifact a signature must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedTarget {
    /// Manifest media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest size.
    pub size: u64,
}

/// Verification inputs besides the envelope.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// The applicable policy statement (not `skip`).
    pub policy: &'a TrustPolicyStatement,
    /// The trust store.
    pub store: &'a TrustStore,
    /// Verification time (Unix seconds).
    pub now: i64,
}

struct Run {
    checks: Vec<CheckOutcome>,
}

impl Run {
    /// Records a check; returns true when verification must stop.
    fn record(&mut self, check: Check, action: Action, error: Option<String>) -> bool {
        let stop = error.is_some() && action == Action::Enforce;
        self.checks.push(CheckOutcome {
            check,
            action,
            error,
        });
        stop
    }
}

fn store_certs(
    ctx: &VerifyContext<'_>,
    ty: StoreType,
) -> Result<Vec<crate::x509::Cert>, NotaryError> {
    let mut out = Vec::new();
    for (t, n) in ctx.policy.trust_stores.iter().filter(|(t, _)| *t == ty) {
        out.extend(ctx.store.certificates(*t, n)?);
    }
    Ok(out)
}

/// Verifies one envelope (`media_type` = the signature manifest's layer media type) against the
/// policy and, when given, the expected target, with revocation checked offline (certificates
/// naming OCSP/CRL responders are "unknown"; see [`verify_signature_with`] for online checks).
pub fn verify_signature(
    media_type: &str,
    bytes: &[u8],
    expected: Option<&ExpectedTarget>,
    ctx: &VerifyContext<'_>,
) -> SignatureVerification {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};
    let checker = RevocationChecker::offline();
    let fut = verify_signature_with(media_type, bytes, expected, ctx, &checker);
    let mut fut = std::pin::pin!(fut);
    // The offline checker never waits on anything, so the future completes on its first poll.
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => SignatureVerification {
            envelope: None,
            target: None,
            checks: vec![CheckOutcome {
                check: Check::Revocation,
                action: Action::Enforce,
                error: Some("offline revocation check did not complete".into()),
            }],
            timestamp: None,
        },
    }
}

/// Verifies one envelope like [`verify_signature`], checking the revocation of the signing chain
/// and of the TSA chain with `checker`.
pub async fn verify_signature_with(
    media_type: &str,
    bytes: &[u8],
    expected: Option<&ExpectedTarget>,
    ctx: &VerifyContext<'_>,
    checker: &RevocationChecker,
) -> SignatureVerification {
    let policy = ctx.policy;
    let mut run = Run { checks: Vec::new() };
    let mut out = SignatureVerification {
        envelope: None,
        target: None,
        checks: Vec::new(),
        timestamp: None,
    };
    if policy.level == Level::Skip {
        out.checks.push(CheckOutcome {
            check: Check::Integrity,
            action: Action::Skip,
            error: Some("the trust policy skips verification".into()),
        });
        return out;
    }
    // 1. Integrity.
    let env = match Envelope::parse(media_type, bytes) {
        Ok(e) => e,
        Err(e) => {
            run.record(Check::Integrity, Action::Enforce, Some(e.to_string()));
            out.checks = run.checks;
            return out;
        }
    };
    let target = match env.verify_integrity() {
        Ok(t) => t,
        Err(e) => {
            run.record(Check::Integrity, Action::Enforce, Some(e.to_string()));
            out.envelope = Some(env);
            out.checks = run.checks;
            return out;
        }
    };
    // 2. Plugins are not supported: such signatures fail.
    let integrity_err = env.verification_plugin.as_ref().map(|p| {
        format!("the signature requires the verification plugin {p:?}; sigil has no plugin support")
    });
    if run.record(Check::Integrity, Action::Enforce, integrity_err) {
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    // 3. Authenticity.
    let auth_action = policy.action(Check::Authenticity);
    let store_type = match env.signing_scheme {
        SigningScheme::X509 => StoreType::Ca,
        SigningScheme::SigningAuthority => StoreType::SigningAuthority,
    };
    let auth_err = (|| -> Option<String> {
        let certs = match store_certs(ctx, store_type) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        if certs.is_empty() {
            return Some(format!(
                "the trust policy {:?} has no trust store of type {} for the {} signing scheme",
                policy.name,
                store_type.as_str(),
                env.signing_scheme.as_str()
            ));
        }
        if !env
            .chain
            .iter()
            .any(|c| certs.iter().any(|t| t.der == c.der))
        {
            return Some(
                "the signature's certificate chain does not contain any trusted certificate".into(),
            );
        }
        let dns: Vec<_> = policy
            .trusted_identities
            .iter()
            .filter_map(|t| match t {
                TrustedIdentity::X509Subject(d) => Some(d),
                _ => None,
            })
            .collect();
        if policy.trusted_identities.contains(&TrustedIdentity::Any) {
            return None;
        }
        let leaf = env.chain[0].subject_attrs();
        if !dns.iter().any(|d| subject_matches(d, &leaf)) {
            return Some(format!(
                "signing certificate from the digital signature does not match the X.509 trusted identities {:?} defined in the trust policy {:?} (leaf subject {:?})",
                policy
                    .trusted_identities
                    .iter()
                    .filter_map(|t| match t {
                        TrustedIdentity::X509Subject(d) => Some(
                            d.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                policy.name,
                env.chain[0].subject()
            ));
        }
        None
    })();
    if run.record(Check::Authenticity, auth_action, auth_err) {
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    // 4. Expiry.
    let exp_action = policy.action(Check::Expiry);
    let exp_err = env
        .expiry
        .filter(|e| ctx.now >= *e && exp_action != Action::Skip)
        .map(|e| format!("digital signature has expired on {:?}", format_rfc1123(e)));
    if run.record(Check::Expiry, exp_action, exp_err) {
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    // 5. Authentic timestamp.
    let ts_action = policy.action(Check::AuthenticTimestamp);
    let mut verified_ts = None;
    let ts_err = (|| -> Option<String> {
        match env.signing_scheme {
            SigningScheme::SigningAuthority => {
                let t = env.authentic_signing_time?;
                env.chain.iter().find(|c| !c.valid_at(t)).map(|c| {
                    format!(
                        "the authentic signing time {} is outside the validity of certificate {:?}",
                        format_rfc3339(t),
                        c.subject()
                    )
                })
            }
            SigningScheme::X509 => {
                let has_tsa = policy
                    .trust_stores
                    .iter()
                    .any(|(t, _)| *t == StoreType::Tsa);
                let any_expired = env.chain.iter().any(|c| !c.valid_at(ctx.now));
                let use_ts =
                    has_tsa && (policy.verify_timestamp == VerifyTimestamp::Always || any_expired);
                if use_ts {
                    let Some(token) = &env.timestamp else {
                        return Some(
                            "no timestamp countersignature was found in the signature envelope"
                                .into(),
                        );
                    };
                    let roots = match store_certs(ctx, StoreType::Tsa) {
                        Ok(r) => r,
                        Err(e) => return Some(e.to_string()),
                    };
                    let ts = match verify_token_chain(token, &env.signature, &roots) {
                        Ok(t) => t,
                        Err(e) => return Some(e.to_string()),
                    };
                    let (lo, hi) = (ts.gen_time - ts.accuracy, ts.gen_time + ts.accuracy);
                    let bad = env.chain.iter().find(|c| {
                        let (nb, na) = c.validity();
                        lo < nb || hi > na
                    });
                    let msg = bad.map(|c| {
                        format!(
                            "timestamp {} is not within the validity period of certificate {:?}",
                            format_rfc3339(ts.gen_time),
                            c.subject()
                        )
                    });
                    verified_ts = Some(ts);
                    msg
                } else {
                    env.chain.iter().find(|c| !c.valid_at(ctx.now)).map(|c| {
                        let (nb, na) = c.validity();
                        if ctx.now < nb {
                            format!(
                                "verification time is before certificate {:?} validity period, it will be valid from {:?}",
                                c.subject(),
                                format_rfc1123(nb)
                            )
                        } else {
                            format!(
                                "verification time is after certificate {:?} validity period, it was expired at {:?}",
                                c.subject(),
                                format_rfc1123(na)
                            )
                        }
                    })
                }
            }
        }
    })();
    // The TSA chain's revocation is always checked (whatever the `revocation` action); revoked or
    // unknown fails the authentic timestamp.
    let ts_err = match (&verified_ts, ts_err) {
        (Some(ts), None) => {
            let results = checker.check_chain(&ts.chain, None, ctx.now).await;
            final_result(&ts.chain, &results, "timestamping certificate")
                .err()
                .map(|(_, m)| m)
        }
        (_, e) => e,
    };
    out.timestamp = verified_ts;
    if run.record(Check::AuthenticTimestamp, ts_action, ts_err) {
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    // 6. Revocation.
    let rev_action = policy.action(Check::Revocation);
    let rev_err = if rev_action == Action::Skip {
        None
    } else {
        // The authentic signing time matters for CRL invalidity dates (signing-authority scheme).
        let signing_time = match env.signing_scheme {
            SigningScheme::SigningAuthority => env.authentic_signing_time,
            SigningScheme::X509 => None,
        };
        let results = checker.check_chain(&env.chain, signing_time, ctx.now).await;
        final_result(&env.chain, &results, "signing certificate")
            .err()
            .map(|(_, m)| m)
    };
    if run.record(Check::Revocation, rev_action, rev_err) {
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    // 7. Target descriptor.
    if let Some(exp) = expected
        && (exp.media_type != target.media_type
            || exp.digest != target.digest
            || exp.size != target.size)
    {
        run.record(
            Check::Integrity,
            Action::Enforce,
            Some(format!(
                "content descriptor mismatch: the signature is for {} {} ({} bytes), the artifact is {} {} ({} bytes)",
                target.media_type, target.digest, target.size, exp.media_type, exp.digest, exp.size
            )),
        );
        out.envelope = Some(env);
        out.checks = run.checks;
        return out;
    }
    out.target = Some(target);
    out.envelope = Some(env);
    out.checks = run.checks;
    out
}
