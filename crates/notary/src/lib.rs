//! Notary Project-compatible signatures (JWS/COSE envelopes, trust policy and store, RFC 3161).
