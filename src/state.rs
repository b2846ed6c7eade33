//! Everything a handler needs, built once at start-up.

use crate::audit::{Audit, AuditEvent};
use crate::auth::{Auth, Lockout, Permission, SecretBook, Signer, write_private};
use crate::blobs::{BlobStore, Blobs, LocalBlobs, S3Blobs};
use crate::config::{Config, SecretCheck, SecretSpec};
use crate::items::ItemName;
use crate::lock::{DataDirLock, LockError};
use crate::store::{MetaStore, PgStore, SqliteStore, StoreError};
use crate::upload::{Admission, AdmissionLimits, Engine, Limits, QuotaLimits, Settings};
use base64::Engine as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Locked(#[from] LockError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartupError {
    let what = what.into();
    move |source| StartupError::Io { what, source }
}

/// A staged (durable, not yet published) blob of [`Blobs`].
pub type Blob = <Blobs as BlobStore>::Blob;

pub struct State {
    pub config: Config,
    pub store: Arc<dyn MetaStore>,
    pub blobs: Blobs,
    pub auth: Auth,
    /// The upload engine every upload route goes through.
    pub engine: Arc<Engine<Blobs>>,
    /// Slots of uploads in progress.
    pub uploads: Arc<Admission>,
    /// Per-client quotas and the store's total size.
    pub limits: Arc<Limits>,
    /// The audit trail (`state.audit.record(AuditEvent::…)`).
    pub audit: Audit,
    /// Set when shutdown begins: `/readyz` answers 503 while requests in flight finish.
    pub draining: std::sync::atomic::AtomicBool,
    /// Places for ZIPs being made (see `routes::console::zip`).
    pub zips: Arc<tokio::sync::Semaphore>,
    /// Held as long as this state lives: no second server (or `sfx check --repair`) changes
    /// the data directory meanwhile.
    _lock: DataDirLock,
}

impl State {
    /// Opens (or creates) the data directory and everything in it, and removes what an earlier
    /// crash left behind. Returns the state and lines to show the operator once.
    pub fn open(config: Config) -> Result<(State, Vec<String>), StartupError> {
        let dir = config.data_dir.clone();
        // Everything sfx creates from here on is its service user's alone (customers' bundles,
        // the database, keys), whatever umask it was started with.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::create_dir_all(&dir).map_err(io_err(format!(
            "cannot create data directory {}",
            dir.display()
        )))?;
        make_private(&dir).map_err(io_err(format!("cannot restrict {}", dir.display())))?;
        // Before anything is read or cleaned up: recovery must never run beside another server.
        let lock = DataDirLock::acquire(&dir)?;
        let mut notes = Vec::new();
        let secrets = match &config.secrets {
            Some(s) => s.clone(),
            None => default_secrets(&dir, &mut notes)?,
        };
        let book = SecretBook::new(&secrets).map_err(io_err("cannot initialise secrets"))?;
        let store = open_store(&config)?;
        let signer = if config.metadata.is_some() {
            // Several instances: an operator's login on one is valid on all.
            let mut candidate = [0u8; 32];
            getrandom::fill(&mut candidate).map_err(|e| StartupError::Io {
                what: "random".into(),
                source: std::io::Error::other(e),
            })?;
            let key = store.shared_key("session", &candidate)?;
            Signer::from_key(&key).map_err(io_err("the shared session key"))?
        } else {
            Signer::load_or_create(&dir.join("session.key"))
                .map_err(io_err("cannot load the session key"))?
        };
        let audit =
            Audit::open(store.clone(), config.audit_log.clone()).map_err(io_err("audit_log"))?;
        let blobs = match &config.storage {
            None => {
                let local = LocalBlobs::open(&dir).map_err(io_err("cannot open the file store"))?;
                recover(store.as_ref(), &local)?;
                Blobs::Local(local)
            }
            Some(s3) => {
                tracing::info!(bucket = %s3.bucket, endpoint = ?s3.endpoint, prefix = %s3.prefix,
                    "items' bytes in an object store");
                let s3 = S3Blobs::open(s3, Arc::clone(&store))
                    .map_err(io_err("cannot open the object store"))?;
                Blobs::S3(s3)
            }
        };
        if config.antivirus.is_none() {
            release_scans(store.as_ref())?;
        }
        // Alone on its store, this instance's crash is what left alerts leased: they are due
        // now. Sharing it, they may be another instance's sends in progress: leases run out.
        if config.metadata.is_none() {
            let released = store.release_alert_leases(crate::now())?;
            if released > 0 {
                tracing::info!(alerts = released, "alerts still to send are due now");
            }
        }
        let l = &config.limits;
        let uploads = Admission::new(AdmissionLimits {
            total: config.max_concurrent_uploads,
            per_client: config.max_uploads_per_client,
            per_network: l.max_uploads_per_network,
            min_rate: l.min_upload_rate,
            window: l.slow_upload_window,
        });
        let limits = Limits::new(
            QuotaLimits {
                window: l.quota_window,
                items: l.quota_items,
                bytes: l.quota_bytes,
                max_total_size: l.max_total_size,
            },
            store.live_size()?,
        );
        let auth = Auth {
            secrets: Arc::new(book),
            signer,
            lockout: Lockout::new(20, Duration::from_secs(300)),
            default_permissions: config.default_permissions,
            audit: audit.clone(),
        };
        audit.record_blocking(AuditEvent::startup());
        let engine = Arc::new(Engine::new(
            Arc::clone(&store),
            blobs.clone(),
            Arc::clone(&limits),
            audit.clone(),
            Settings {
                max_file_size: config.max_file_size,
                min_free_space: config.min_free_space,
                batch_window: config.batch_window,
                idle_timeout: config.upload_idle_timeout,
                antivirus: config.antivirus.is_some(),
            },
        ));
        Ok((
            State {
                config,
                store,
                blobs,
                auth,
                engine,
                uploads,
                limits,
                audit,
                draining: std::sync::atomic::AtomicBool::new(false),
                zips: Arc::new(tokio::sync::Semaphore::new(
                    crate::routes::console::zip::MAX_ZIPS,
                )),
                _lock: lock,
            },
            notes,
        ))
    }

    /// Hides an item, then removes its bytes (see [`Engine::delete`]).
    pub async fn delete_item(&self, name: &ItemName, by: &str) -> Result<bool, StoreError> {
        self.engine.delete(name, by).await
    }
}

/// The metadata store the configuration names: PostgreSQL with `[metadata] url`, else SQLite
/// in the data directory.
pub fn open_store(config: &Config) -> Result<Arc<dyn MetaStore>, StoreError> {
    match &config.metadata {
        Some(pg) => {
            tracing::info!(
                url = %crate::store::redact_url(&pg.url),
                max_connections = pg.max_connections,
                "metadata in PostgreSQL"
            );
            Ok(Arc::new(PgStore::open_with_ca(
                &pg.url,
                pg.max_connections,
                pg.ca_file.as_deref(),
            )?))
        }
        None => Ok(Arc::new(SqliteStore::open(
            &config.data_dir.join("sfx.db"),
        )?)),
    }
}

/// Mode 0700 for the data directory and 0600 for the files at its top (a data directory made by
/// an older sfx, or copied in, may have been readable by others).
pub(crate) fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Removes what a crash can leave behind, and restores what it interrupted.
fn recover(store: &dyn MetaStore, blobs: &LocalBlobs) -> Result<(), StartupError> {
    let incomplete = store.incomplete_names()?;
    let cleaned = blobs
        .clean_up(&store.live_names()?, &incomplete)
        .map_err(io_err("start-up clean-up failed"))?;
    if cleaned.temp_files + cleaned.orphans > 0 {
        tracing::warn!(
            temp_files = cleaned.temp_files,
            orphans = cleaned.orphans,
            "removed leftovers of an earlier run"
        );
    }
    for name in incomplete
        .iter()
        .filter_map(|n| crate::items::ItemName::parse(n))
    {
        let (partial, done) = (
            blobs.partial_path(&name).exists(),
            blobs.path(&name).exists(),
        );
        if partial && !done {
            continue;
        }
        // A crash between moving a completed upload into place and recording it complete (or
        // between the link and the unlink of that move): put the file back, so that the
        // client's retry of its last chunk completes it.
        if done {
            blobs
                .reopen_partial(&name)
                .map_err(io_err(format!("cannot restore upload {name}")))?;
            tracing::warn!(item = %name, "restored an upload whose completion was interrupted");
            continue;
        }
        // An incomplete upload whose bytes are gone cannot be resumed.
        store.mark_deleted(&name, crate::now(), "start-up: partial file missing")?;
    }
    Ok(())
}

/// Antivirus was turned off while items waited for their scan: nothing will scan them, so they
/// are released as explicitly not scanned (never left undownloadable, never called clean).
fn release_scans(store: &dyn MetaStore) -> Result<(), StartupError> {
    let why = crate::scan::ScanState::NotScanned("antivirus was turned off before its scan".into());
    loop {
        let waiting = store.scanning(256)?;
        if waiting.is_empty() {
            return Ok(());
        }
        for item in &waiting {
            store.set_scan(&item.name, &why)?;
        }
        tracing::warn!(
            items = waiting.len(),
            "antivirus is off: items waiting for a scan marked not scanned"
        );
    }
}

/// Without `[[secrets]]`: customers upload with the public `support`; operators get a secret
/// generated at first start and kept (mode 0600) in the data directory.
fn default_secrets(dir: &Path, notes: &mut Vec<String>) -> Result<Vec<SecretSpec>, StartupError> {
    let path = dir.join("admin-secret");
    let admin = match std::fs::read_to_string(&path) {
        Ok(s) => {
            notes.push(format!(
                "operator (admin) secret is kept in {}",
                path.display()
            ));
            s.trim().to_string()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 24];
            getrandom::fill(&mut raw).map_err(|e| StartupError::Io {
                what: "random".into(),
                source: std::io::Error::other(e),
            })?;
            let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            write_private(&path, format!("{secret}\n").as_bytes())
                .map_err(io_err(format!("cannot write {}", path.display())))?;
            notes.push(format!("generated operator (admin) secret: {secret}"));
            notes.push(format!(
                "it is kept in {} (mode 0600); it will not be printed again",
                path.display()
            ));
            secret
        }
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    };
    if admin.is_empty() {
        return Err(StartupError::Io {
            what: format!("{} is empty", path.display()),
            source: std::io::Error::other("delete it to generate a new secret"),
        });
    }
    Ok(vec![
        SecretSpec {
            label: "customers".into(),
            check: SecretCheck::Plain("support".into()),
            permissions: [Permission::Create].into_iter().collect(),
        },
        SecretSpec {
            label: "operators".into(),
            check: SecretCheck::Plain(admin),
            permissions: [Permission::Admin].into_iter().collect(),
        },
    ])
}
