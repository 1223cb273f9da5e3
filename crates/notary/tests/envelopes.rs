//! Envelope parsing and integrity on the notation vectors.
#![allow(clippy::unwrap_used)]

use sigil_notary::envelope::{Envelope, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};

fn data(p: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(p),
    )
    .unwrap()
}

#[test]
fn vectors_pass_integrity() {
    for (mt, p) in [
        (MEDIA_TYPE_JWS, "notation-go-testdata/jws_signature.sig"),
        (MEDIA_TYPE_COSE, "notation-go-testdata/cose_signature.sig"),
        (MEDIA_TYPE_JWS, "notation-go-mock/ca_valid_sig_env.json"),
        (MEDIA_TYPE_JWS, "notation-go-mock/sa_valid_sig_env.json"),
        (MEDIA_TYPE_JWS, "notation-go-mock/ca_expired_sig_env.json"),
        (MEDIA_TYPE_JWS, "notation-go-timestamp/jwsWithTimestamp.sig"),
        (
            MEDIA_TYPE_JWS,
            "notation-go-timestamp/jwsExpiredWithTimestamp.sig",
        ),
        (
            MEDIA_TYPE_JWS,
            "notation-e2e/oci_layout/e2e-valid-signature/blobs/sha256/c9af07e038b2b1a463e648986ad7273157511ffeba0b689f33e5472bae471f50",
        ),
    ] {
        let env = Envelope::parse(mt, &data(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let t = env
            .verify_integrity()
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        println!(
            "{p}: {:?} {} {}",
            env.algorithm,
            t.digest,
            env.chain[0].subject()
        );
    }
}
