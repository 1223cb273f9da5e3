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
    /// Registry options.
    #[command(flatten)]
    pub registry: RegistryOptions,
}
