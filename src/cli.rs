//! Command-line interface.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sfx",
    version,
    about = "Secure file exchange server (bepasty-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server (embedded defaults when no config is given).
    Serve {
        /// TOML config file.
        #[arg(long, env = "SFX_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on, overriding the config (`127.0.0.1:0` picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory, overriding the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Read a secret on stdin and print its Argon2id PHC string, for `secret_hash` in the config.
    HashSecret,
    /// Send a test alert to every configured alert channel and report each result.
    AlertTest {
        /// TOML config file.
        #[arg(long, env = "SFX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Verify the data directory against its metadata: every complete item's size and SHA-256,
    /// orphans, missing files, partial uploads, leftovers, types and modes. Exit status 0 when
    /// clean, 1 on problems, 2 on errors.
    Check {
        /// TOML config file (its `data_dir` is checked).
        #[arg(long, env = "SFX_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory, overriding the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Fix what can be fixed safely, and say what was done (refused while a server runs).
        #[arg(long)]
        repair: bool,
        /// Compare sizes only, without re-hashing every file.
        #[arg(long)]
        quick: bool,
    },
    /// Import a bepasty storage directory (its `<name>.data` and `<name>.meta` files), keeping
    /// each item's name so old links keep working. Exit status 0 when every item is in sfx
    /// (imported now or before), 1 when some were skipped, 2 on errors. Refused while a server
    /// runs on the data directory.
    ImportBepasty {
        /// bepasty's STORAGE_FILESYSTEM_DIRECTORY.
        dir: PathBuf,
        /// TOML config file (its `data_dir`, `min_free_space`, `audit_log`, `[antivirus]`).
        #[arg(long, env = "SFX_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory, overriding the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Report what would be imported or skipped, changing nothing (no data is copied, so
        /// bepasty's SHA-256 values are not checked).
        #[arg(long)]
        dry_run: bool,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Per-case upload links (also on the `/+links` page). Works while the server runs.
    Link {
        /// TOML config file (its `data_dir`, `public_url` and alert channels).
        #[arg(long, env = "SFX_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// Data directory, overriding the config.
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: LinkCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Make a link for a case and print its URL (shown only now: sfx keeps only a hash).
    Create {
        /// The case reference, e.g. CASE-1234: every file sent through the link carries it.
        #[arg(long)]
        reference: String,
        /// How long the link takes new uploads, e.g. 7d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        /// Total size the link accepts, e.g. 50GiB.
        #[arg(long)]
        max_size: Option<String>,
        /// Number of files the link accepts.
        #[arg(long)]
        max_files: Option<String>,
        /// E-mail address told of each delivery (repeat or separate with commas); needs an
        /// e-mail alert channel.
        #[arg(long)]
        notify: Vec<String>,
        /// A note shown to the customer on the upload page.
        #[arg(long)]
        note: Option<String>,
    },
    /// List links: id, state, case, what they received.
    List,
    /// Revoke a link: its URL answers 410 Gone from then on.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of the audit trail (also while the server runs): prints
    /// `ok: N records`, or the first broken record and exits with status 1.
    Verify {
        /// TOML config file (for its data_dir).
        #[arg(long, env = "SFX_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory, overriding the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}
