//! `sfx link create|list|revoke`: the same operations as the `/+links` page, on the data
//! directory's store (SQLite's WAL lets this run beside the server).

use super::{LinkError, LinkRequest, create, revoke};
use crate::audit::Audit;
use crate::cli::LinkCommand;
use crate::config::{ChannelKind, Config};
use crate::pages::{format_time, human_size};
use crate::store::{MetaStore, StoreError};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no link #{0}")]
    Unknown(i64),
    #[error("{} has no sfx.db: not an sfx data directory (start the server once)", .0.display())]
    NoStore(std::path::PathBuf),
}

/// Made by the command line rather than by a person's credential.
const BY: &str = "cli";

pub fn run(
    config: &Config,
    command: &LinkCommand,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let db = config.data_dir.join("sfx.db");
    if config.metadata.is_none() && !db.is_file() {
        return Err(CommandError::NoStore(config.data_dir.clone()));
    }
    let store: Arc<dyn MetaStore> = crate::state::open_store(config)?;
    let audit = Audit::open(store.clone(), config.audit_log.clone())?;
    let now = crate::now();
    match command {
        LinkCommand::Create {
            reference,
            expires,
            max_size,
            max_files,
            notify,
            note,
        } => {
            let notify = notify.join(",");
            let new = LinkRequest {
                reference,
                note: note.as_deref(),
                expires: expires.as_deref(),
                max_size: max_size.as_deref(),
                max_files: max_files.as_deref(),
                notify: Some(&notify),
            }
            .parse(now)?;
            let email = config
                .alerts
                .iter()
                .any(|c| matches!(c.kind, ChannelKind::Email { .. }));
            if !new.notify.is_empty() && !email {
                return Err(LinkError::NoEmailChannel.into());
            }
            let (link, token) = create(store.as_ref(), &audit, &new, BY, "", now)?;
            if config.public_url_is_default {
                eprintln!(
                    "note: public_url is not configured; the URL below names this machine's listen address"
                );
            }
            writeln!(out, "{}/u/{token}", config.public_url)?;
            eprintln!(
                "link #{} for {} ({})",
                link.id,
                link.reference,
                super::super::pages::link_limits(&link)
            );
        }
        LinkCommand::List => {
            let (links, _) = store.links(0, u64::MAX)?;
            for (link, used) in links {
                writeln!(
                    out,
                    "{}\t{}\t{}\texpires {}\t{} files, {}",
                    link.id,
                    link.status(now).word(),
                    link.reference,
                    format_time(link.expires_at),
                    used.files,
                    human_size(used.bytes)
                )?;
            }
        }
        LinkCommand::Revoke { id } => match revoke(store.as_ref(), &audit, *id, BY, "", now) {
            Ok(true) => writeln!(out, "link #{id} revoked")?,
            Ok(false) => writeln!(out, "link #{id} was already revoked")?,
            Err(LinkError::Unknown) => return Err(CommandError::Unknown(*id)),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}
