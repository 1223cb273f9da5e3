//! Command-line definitions (clap). Each subcommand's arguments live here; the work is in `cmd`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// sigil: OCI registry, artifacts, signing and image-verification policy in one binary.
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output (-v, -vv). `SIGIL_LOG` overrides (tracing filter syntax).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The embedded OCI registry: serve, garbage-collect.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Print an image's manifest (as stored, byte for byte).
    Manifest(InspectArgs),
    /// Print an image's config blob.
    Config(InspectArgs),
    /// Write a blob to stdout: `sigil blob REPO@DIGEST`.
    Blob(BlobArgs),
    /// Print an image's digest.
    Digest(InspectArgs),
    /// List a repository's tags.
    Tags(TagsArgs),
    /// Copy an image or index between registries and OCI layouts (`oci:PATH[:TAG]`).
    Copy(CopyArgs),
    /// Attach files to an image as an OCI 1.1 artifact (a referrer of the image).
    Attach(AttachArgs),
    /// List an image's referrers, recursively (like `oras discover`).
    Discover(DiscoverArgs),
    /// Write an artifact's files into a directory by their titles.
    Pull(PullArgs),
    /// Delete a manifest (and with --referrers everything that refers to it).
    Delete(DeleteArgs),
    /// Write a cosign-compatible key pair (`cosign.key` encrypted with $COSIGN_PASSWORD, `cosign.pub`).
    GenerateKeyPair(GenerateKeyPairArgs),
    /// Sign an image by digest (cosign-compatible).
    Sign(SignArgs),
    /// Attach a signed in-toto attestation to an image (cosign-compatible).
    Attest(AttestArgs),
    /// Verify an image's signatures (cosign-compatible).
    Verify(VerifyArgs),
    /// Verify an image's attestations (cosign-compatible).
    VerifyAttestation(VerifyAttestationArgs),
    /// Verify a Sigstore bundle over a file or digest (cosign-compatible, offline).
    VerifyBlob(VerifyBlobArgs),
    /// Verify a Sigstore bundle holding a DSSE attestation (cosign-compatible, offline).
    VerifyBlobAttestation(VerifyBlobAttestationArgs),
    /// Kyverno-compatible image-verification policies, offline: apply, test.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The Kubernetes admission webhook running image-verification policies.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// The embedded registry and the admission webhook in one process, with embedded defaults.
    Serve(ServeAllArgs),
    /// Notary Project-compatible signing and verification (notation).
    #[command(subcommand)]
    Notary(NotaryCommand),
}

/// `sigil policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Apply policies to resources and print pass/fail/skip per resource, rule and image
    /// (like `kyverno apply`); exit 1 on any failure.
    Apply(PolicyApplyArgs),
    /// Run `kyverno-test.yaml` files found under a directory (like `kyverno test`).
    Test(PolicyTestArgs),
}

/// Output format of `policy apply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyOutput {
    /// One line per resource, rule and image.
    Text,
    /// The full results as JSON.
    Json,
}

/// Options shared by the commands that run the verification engine.
#[derive(Debug, Clone, Args)]
pub struct EngineOptions {
    /// Trusted root (`trusted_root.json`) for keyless attestors without `roots` (repeatable).
    #[arg(long = "trusted-root", value_name = "FILE")]
    pub trusted_roots: Vec<PathBuf>,
    /// Time budget per resource review, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil policy apply`
#[derive(Debug, Args)]
pub struct PolicyApplyArgs {
    /// Policy files or directories (as `kyverno apply POLICY... -r RESOURCE...`).
    #[arg(value_name = "POLICY")]
    pub policy_paths: Vec<PathBuf>,
    /// Policy files or directories (repeatable; added to the positional ones).
    #[arg(
        short = 'p',
        long = "policy",
        value_name = "PATH",
        required_unless_present = "policy_paths"
    )]
    pub policies: Vec<PathBuf>,
    /// Resource files (multi-document YAML/JSON) or directories (repeatable).
    #[arg(short = 'r', long = "resource", value_name = "PATH", required = true)]
    pub resources: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PolicyOutput::Text)]
    pub output: PolicyOutput,
    /// Write each mutated resource (digest pins, annotation) to this directory.
    #[arg(long, value_name = "DIR")]
    pub patched_resources: Option<PathBuf>,
    /// Namespace for namespaced resources that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Report failures of `Audit` rules as warnings (not failures) and do not exit 1 for them
    /// (as `kyverno apply --audit-warn`).
    #[arg(long)]
    pub audit_warn: bool,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineOptions,
}

/// `sigil policy test`
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// Directory searched recursively for test files.
    pub dir: PathBuf,
    /// Test file name.
    #[arg(short = 'f', long = "file-name", default_value = "kyverno-test.yaml")]
    pub file_name: String,
    /// Only print failing results.
    #[arg(long)]
    pub fail_only: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PolicyOutput::Text)]
    pub output: PolicyOutput,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineOptions,
}

/// `sigil webhook ...`
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Serve AdmissionReview v1 over HTTPS on `/mutate` and `/validate`.
    Serve(WebhookServeArgs),
}

/// What an unreachable registry means for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistryFailureArg {
    /// As each policy's `failurePolicy` says (Kyverno's behaviour).
    Policy,
    /// Deny.
    Deny,
    /// Admit with a warning.
    Allow,
}

/// Webhook settings shared by `webhook serve` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct WebhookOptions {
    /// Decision cache size (entries; 0 disables the cache).
    #[arg(long, default_value_t = 1000)]
    pub cache_size: u64,
    /// Decision cache TTL for passes, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub cache_ttl: u64,
    /// Decision cache TTL for failures, in seconds.
    #[arg(long, default_value_t = 10)]
    pub cache_failure_ttl: u64,
    /// Tag → digest resolution TTL, in seconds.
    #[arg(long, default_value_t = 30)]
    pub tag_ttl: u64,
    /// What an unreachable registry means.
    #[arg(long, value_enum, default_value_t = RegistryFailureArg::Policy)]
    pub registry_failure: RegistryFailureArg,
    /// Time kept free before the review timeout (`--timeout`, the webhook configuration's
    /// `timeoutSeconds`) for the answer to reach the API server, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub deadline_margin_ms: u64,
    /// Largest AdmissionReview body accepted, in bytes (larger: HTTP 400).
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_name = "BYTES")]
    pub max_request_bytes: usize,
}

/// `sigil webhook serve`
#[derive(Debug, Args)]
pub struct WebhookServeArgs {
    /// Policy files or directories (reloaded when they change).
    #[arg(long = "policies", value_name = "PATH", required = true)]
    pub policies: Vec<PathBuf>,
    /// Serving certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// Serving private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "SIGIL_WEBHOOK_ADDR")]
    pub addr: SocketAddr,
    /// Webhook settings.
    #[command(flatten)]
    pub webhook: WebhookOptions,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineOptions,
}

/// `sigil serve`
#[derive(Debug, Args)]
pub struct ServeAllArgs {
    /// Registry address.
    #[arg(long, default_value = "127.0.0.1:5000", env = "SIGIL_REGISTRY_ADDR")]
    pub registry_addr: SocketAddr,
    /// Webhook address (HTTPS).
    #[arg(long, default_value = "127.0.0.1:8443", env = "SIGIL_WEBHOOK_ADDR")]
    pub webhook_addr: SocketAddr,
    /// Home directory: registry data, policies, generated serving certificate (default: $SIGIL_HOME,
    /// else $XDG_DATA_HOME/sigil, else ~/.local/share/sigil).
    #[arg(long, env = "SIGIL_HOME")]
    pub home: Option<PathBuf>,
    /// Policy files or directories (default: `<home>/policies`).
    #[arg(long = "policies", value_name = "PATH")]
    pub policies: Vec<PathBuf>,
    /// Extra DNS name or IP address for the generated webhook serving certificate (repeatable;
    /// localhost, 127.0.0.1, ::1 and the webhook address are always included).
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,
    /// Webhook settings.
    #[command(flatten)]
    pub webhook: WebhookOptions,
    /// Engine options.
    #[command(flatten)]
    pub engine: EngineOptions,
}

/// `sigil notary ...`
#[derive(Debug, Subcommand)]
pub enum NotaryCommand {
    /// Sign an image (notation-compatible JWS or COSE envelope, pushed as a referrer).
    Sign(NotarySignArgs),
    /// Verify an image's Notary signatures against a trust policy and trust store.
    Verify(NotaryVerifyArgs),
    /// List an image's Notary signatures with their certificates and times.
    Inspect(NotaryInspectArgs),
}

/// Notary envelope format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotaryEnvelope {
    /// `application/jose+json` (JWS JSON flattened serialization).
    Jws,
    /// `application/cose` (COSE_Sign1).
    Cose,
}

/// `sigil notary sign`
#[derive(Debug, Args)]
pub struct NotarySignArgs {
    /// The image to sign (a tag is resolved to its digest first).
    pub reference: String,
    /// Signing key (PEM: PKCS#8, SEC1 EC or PKCS#1 RSA).
    #[arg(long)]
    pub key: PathBuf,
    /// Certificate chain (PEM, leaf first).
    #[arg(long = "cert")]
    pub cert: PathBuf,
    /// Envelope format.
    #[arg(long, value_enum, default_value_t = NotaryEnvelope::Jws)]
    pub envelope: NotaryEnvelope,
    /// Signature expiry after signing (e.g. `24h`, `30d`).
    #[arg(long)]
    pub expiry: Option<String>,
    /// RFC 3161 timestamping authority URL.
    #[arg(long, requires = "timestamp_root")]
    pub timestamp_url: Option<String>,
    /// Root certificate (PEM) the TSA's chain must end in.
    #[arg(long, requires = "timestamp_url")]
    pub timestamp_root: Option<PathBuf>,
    /// Annotations on the signature manifest, `key=value` (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Write notation 1.x's manifest form (`application/vnd.cncf.notary.signature` config) instead of
    /// the `artifactType` form.
    #[arg(long)]
    pub legacy_manifest: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil notary verify`
#[derive(Debug, Args)]
pub struct NotaryVerifyArgs {
    /// The image to verify.
    pub reference: String,
    /// notation trust policy (`trustpolicy.json`).
    #[arg(long)]
    pub trust_policy: PathBuf,
    /// notation trust store directory (`x509/{ca,signingAuthority,tsa}/<name>/*.pem|crt`).
    #[arg(long)]
    pub trust_store: PathBuf,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil notary inspect`
#[derive(Debug, Args)]
pub struct NotaryInspectArgs {
    /// The image.
    pub reference: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = PolicyOutput::Text)]
    pub output: PolicyOutput,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the registry (distribution-spec v1.1.1 with the referrers API).
    Serve(ServeArgs),
    /// Remove unreferenced blobs and untagged manifests (keeps referrers of live subjects).
    Gc(GcArgs),
}

/// `sigil registry serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", env = "SIGIL_REGISTRY_ADDR")]
    pub addr: SocketAddr,
    /// Data directory (default: $SIGIL_HOME, else $XDG_DATA_HOME/sigil/registry, else
    /// ~/.local/share/sigil/registry).
    #[arg(long, env = "SIGIL_REGISTRY_ROOT")]
    pub root: Option<PathBuf>,
    /// Serve without the referrers API (404 on /referrers, no OCI-Subject), to exercise clients'
    /// tag-schema fallback.
    #[arg(long)]
    pub no_referrers_api: bool,
    /// Require HTTP basic auth against this htpasswd file (bcrypt entries, as `htpasswd -B`).
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// Realm announced in `WWW-Authenticate`.
    #[arg(long, default_value = "sigil")]
    pub realm: String,
    /// TLS certificate chain (PEM). Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM). Needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest manifest accepted, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_manifest_bytes: usize,
    /// Most descriptors per referrers page (more are paginated with `Link`).
    #[arg(long, default_value_t = 1000)]
    pub referrers_page_size: usize,
}

/// What `gc` does with referrers whose subject no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrphanReferrers {
    /// Keep them (a referrer may be pushed before its subject).
    Keep,
    /// Delete them once older than the grace period.
    Delete,
}

/// `sigil registry gc`
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Data directory (as for `serve`).
    #[arg(long, env = "SIGIL_REGISTRY_ROOT")]
    pub root: Option<PathBuf>,
    /// Report what would be removed without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Referrers whose subject is missing.
    #[arg(long, value_enum, default_value_t = OrphanReferrers::Keep)]
    pub orphan_referrers: OrphanReferrers,
    /// Content younger than this many seconds is never removed (protects pushes in flight).
    #[arg(long, default_value_t = 3600)]
    pub grace_secs: u64,
}

/// Options shared by every command that talks to a registry.
#[derive(Debug, Clone, Args)]
pub struct RegistryOptions {
    /// Allow plain HTTP and unverified TLS for registries other than localhost/127.0.0.1.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Docker-style auth file (default: $REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json).
    #[arg(long, global = true, env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Extra PEM CA certificate(s) to trust for registry TLS (repeatable).
    #[arg(long = "ca-cert", global = true, value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
}

/// `sigil manifest|config|digest REF`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image reference (`registry/repo:tag`, `...@sha256:...`) or `oci:PATH[:TAG]`.
    pub reference: String,
    /// Resolve this platform through an index (`os/arch[/variant]`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil blob REPO@DIGEST`
#[derive(Debug, Args)]
pub struct BlobArgs {
    /// `registry/repo@sha256:...`
    pub reference: String,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil tags REPO`
#[derive(Debug, Args)]
pub struct TagsArgs {
    /// `registry/repo`
    pub repository: String,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil copy SRC DST`
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: image reference or `oci:PATH[:TAG]`.
    pub source: String,
    /// Destination: image reference or `oci:PATH[:TAG]`.
    pub destination: String,
    /// Copy only this platform's manifest out of an index (default: the whole index).
    #[arg(long)]
    pub platform: Option<String>,
    /// Number of blobs transferred at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Also copy referrers, recursively (all platforms); recreate fallback indexes on targets
    /// without the referrers API.
    #[arg(long)]
    pub referrers: bool,
    /// With --referrers: also copy cosign-style digest tags (`sha256-<hex>.sig`, `.att`, `.sbom`).
    #[arg(long)]
    pub digest_tags: bool,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil attach REF --artifact-type TYPE FILE[:MEDIATYPE]...`
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The subject image.
    pub reference: String,
    /// Files to attach, each `PATH[:MEDIATYPE]` (default media type `application/octet-stream`).
    #[arg(required = true)]
    pub files: Vec<String>,
    /// The artifact type (`artifactType` of the manifest).
    #[arg(long)]
    pub artifact_type: String,
    /// Manifest annotations, `key=value` (repeatable).
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Attach to this platform's manifest of an index instead of the index.
    #[arg(long)]
    pub platform: Option<String>,
    /// Output: the referrer digest (`text`) or a JSON object.
    #[arg(long, short = 'o', value_enum, default_value_t = SimpleOutput::Text)]
    pub output: SimpleOutput,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// Plain text or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimpleOutput {
    /// Human-readable text.
    Text,
    /// JSON.
    Json,
}

/// Output formats of `discover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoverOutput {
    /// A tree like `oras discover -o tree`.
    Tree,
    /// JSON.
    Json,
    /// One referrer per line with depth, digest, artifact type.
    Table,
}

/// `sigil discover REF`
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The subject image.
    pub reference: String,
    /// Only referrers of these artifact types (repeatable).
    #[arg(long)]
    pub artifact_type: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = DiscoverOutput::Tree)]
    pub output: DiscoverOutput,
    /// Levels of referrers-of-referrers to follow (default: unlimited).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Also show cosign-style digest tags (`sha256-<hex>.sig`, `.att`, `.sbom`).
    #[arg(long)]
    pub digest_tags: bool,
    /// Only this platform's manifest of an index.
    #[arg(long)]
    pub platform: Option<String>,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil pull REF -o DIR`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The artifact (by digest or tag).
    pub reference: String,
    /// Directory to write the files into (created if missing).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil delete REF`
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The manifest to delete (tag or digest).
    pub reference: String,
    /// Also delete everything that refers to it, recursively, keeping fallback indexes correct.
    #[arg(long)]
    pub referrers: bool,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil generate-key-pair`
#[derive(Debug, Args)]
pub struct GenerateKeyPairArgs {
    /// Write `<prefix>.key` and `<prefix>.pub`.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: String,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `sigil sign --key KEY REF`
///
/// The signature goes to the image's repository, or to `$COSIGN_REPOSITORY` (`registry/repo`) when
/// set — for the legacy `.sig` tag and for `--bundle` referrers alike (as cosign v3).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image to sign (a tag is resolved to its digest first).
    pub reference: String,
    /// Private key: a cosign/sigstore encrypted key ($COSIGN_PASSWORD) or a PEM private key.
    #[arg(long)]
    pub key: PathBuf,
    /// Annotations, `key=value` (repeatable): the signed payload's `optional` section (legacy), or the
    /// in-toto statement subject's `annotations` with `--bundle` (cosign v3).
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Store a Sigstore bundle v0.3 as an OCI referrer (cosign v3) instead of the legacy `.sig` tag.
    #[arg(long)]
    pub bundle: bool,
    /// Signing certificate (PEM) for the key: embedded as `dev.sigstore.cosign/certificate` (legacy),
    /// or as the bundle's `certificate` verification material with `--bundle`.
    #[arg(long)]
    pub certificate: Option<PathBuf>,
    /// Chain (PEM, issuer first) for --certificate: embedded as `dev.sigstore.cosign/chain` (legacy);
    /// with `--bundle` it is checked against the certificate but not stored (a v0.3 bundle carries
    /// only the leaf; give the chain to `verify --certificate-chain`).
    #[arg(long, requires = "certificate")]
    pub certificate_chain: Option<PathBuf>,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil attest --key KEY --predicate FILE --type T REF`
#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The image the statement is about.
    pub reference: String,
    /// Private key (as for `sign`).
    #[arg(long)]
    pub key: PathBuf,
    /// The predicate (JSON file).
    #[arg(long)]
    pub predicate: PathBuf,
    /// Predicate type: slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx,
    /// vuln, openvex, link, custom, or a URI.
    #[arg(long = "type", default_value = "custom")]
    pub predicate_type: String,
    /// Store a Sigstore bundle v0.3 as an OCI referrer instead of the legacy `.att` tag.
    #[arg(long)]
    pub bundle: bool,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// What a signature must be verified against (exactly one of key, certificate, or keyless identity).
#[derive(Debug, Clone, Args)]
pub struct TrustOptions {
    /// Public key (PEM) the signature must verify with.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Signing certificate (PEM) to verify with: signatures must carry exactly this certificate (or
    /// none). With --certificate-chain the certificate is checked against that chain; else, with
    /// --trusted-root, it must chain to one of the trusted root's Fulcio CAs (checked at its notBefore,
    /// with an embedded SCT unless --insecure-ignore-sct), as cosign does; with neither, it is only
    /// pinned (and must be valid at the signing time, or now without a transparency-log time).
    #[arg(long)]
    pub certificate: Option<PathBuf>,
    /// Chain (PEM, leaf's issuer first, root last) for --certificate.
    #[arg(long)]
    pub certificate_chain: Option<PathBuf>,
    /// Keyless: the expected certificate identity (SAN), exactly.
    #[arg(long)]
    pub certificate_identity: Option<String>,
    /// Keyless: the expected certificate identity, as a regular expression.
    #[arg(long)]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the expected OIDC issuer, exactly.
    #[arg(long)]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: the expected OIDC issuer, as a regular expression.
    #[arg(long)]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Sigstore `trusted_root.json` (Fulcio CAs, Rekor and CT log keys, TSAs); offline.
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: do not require an embedded SCT in the signing certificate (pre-2022 Fulcio certificates).
    #[arg(long)]
    pub insecure_ignore_sct: bool,
}

/// `sigil verify REF`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image to verify.
    pub reference: String,
    /// Trust options.
    #[command(flatten)]
    pub trust: TrustOptions,
    /// Required annotations, `key=value` (repeatable): in the signed payload's `optional` section
    /// (legacy `.sig`), or the in-toto statement subject's `annotations` (bundles, cosign v3).
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Look for signatures in this repository (like $COSIGN_REPOSITORY): the legacy `.sig` tag and
    /// the bundle referrers of the image digest.
    #[arg(long, env = "COSIGN_REPOSITORY")]
    pub signature_repository: Option<String>,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil verify-attestation REF`
#[derive(Debug, Args)]
pub struct VerifyAttestationArgs {
    /// The image to verify.
    pub reference: String,
    /// Only attestations of this predicate type (short name or URI).
    #[arg(long = "type")]
    pub predicate_type: Option<String>,
    /// Trust options.
    #[command(flatten)]
    pub trust: TrustOptions,
    /// Look for attestations in this repository (like $COSIGN_REPOSITORY).
    #[arg(long, env = "COSIGN_REPOSITORY")]
    pub signature_repository: Option<String>,
    /// Print the number of registry requests made (stderr).
    #[arg(long)]
    pub stats: bool,
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}

/// `sigil verify-blob FILE --bundle B`
#[derive(Debug, Args)]
pub struct VerifyBlobArgs {
    /// The signed file, or `sha256:<hex>` for a digest.
    pub blob: String,
    /// The Sigstore bundle (v0.1-v0.3 JSON).
    #[arg(long)]
    pub bundle: PathBuf,
    /// Trust options.
    #[command(flatten)]
    pub trust: TrustOptions,
}

/// `sigil verify-blob-attestation --bundle B [FILE]`
#[derive(Debug, Args)]
pub struct VerifyBlobAttestationArgs {
    /// A file or `sha256:<hex>` the statement's subject must name (optional).
    pub blob: Option<String>,
    /// The Sigstore bundle holding a DSSE envelope.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Only accept this predicate type (short name or URI).
    #[arg(long = "type")]
    pub predicate_type: Option<String>,
    /// Trust options.
    #[command(flatten)]
    pub trust: TrustOptions,
}
