//! Upload links as credentials: finding the link a request presents (the `/u/<token>` path,
//! or the token as Bearer or Basic password), and its limits at admission.

use crate::auth::{Principal, Source, parse_authorization};
use crate::links::{self, Usage};
use crate::server::{AppError, Request};
use crate::state::State;
use crate::store::{Transaction, blocking};

/// The link token a request presents, if any, and how.
pub fn presented(req: &Request) -> Result<Option<(String, Source)>, AppError> {
    if let Some(token) = path_token(req.uri.path()) {
        return Ok(Some((token.to_string(), Source::Token)));
    }
    if let Some(value) = req.headers.get(http::header::AUTHORIZATION)
        && let Some(secret) = parse_authorization(value.as_bytes())?
        && links::is_token(&secret)
    {
        return Ok(Some((secret, Source::Header)));
    }
    Ok(None)
}

/// The token of `/u/<token>` and `/u/<token>/<filename>`; the router lets only well-formed
/// tokens through.
pub fn path_token(path: &str) -> Option<&str> {
    let rest = path.trim_start_matches('/').strip_prefix("u/")?;
    let token = rest.split('/').next()?;
    links::is_token(token).then_some(token)
}

/// The principal of a link token. Revoked links answer `410` at once; expired ones still
/// authenticate (an upload begun before may finish) and [`admit`] refuses new uploads.
pub async fn principal(
    state: &State,
    req: &Request,
    token: &str,
    source: Source,
) -> Result<Principal, AppError> {
    state.auth.link_begin(req.client_ip)?;
    let hash = links::token_hash(token);
    let link = blocking(&state.store, move |s| s.link_by_token(&hash)).await?;
    let who = match state.auth.link_end(link, req.client_ip, source).await {
        Ok(who) => who,
        // An unknown `/u/<token>` is a page that does not exist.
        Err(crate::auth::AuthError::WrongSecret) if source == Source::Token => {
            return Err(AppError::NotFound);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(link) = &who.link {
        link.usable(crate::now(), false)?;
    }
    Ok(who)
}

/// A link's limits for one upload request: `bytes` more (the declared length of a new upload,
/// or this request's body), one more file unless `resuming` an upload of the link. Returns the
/// link's total size limit and the bytes this request may still send, for the request's account
/// to stop the stream at.
pub async fn admit(
    state: &State,
    who: &Principal,
    bytes: u64,
    resuming: Option<&Transaction>,
) -> Result<Option<(u64, u64)>, AppError> {
    let Some(link) = who.link.clone() else {
        return Ok(None);
    };
    link.usable(crate::now(), resuming.is_none())?;
    let id = link.id;
    let mut used = blocking(&state.store, move |s| s.link_usage(id)).await?;
    let files = match resuming {
        None => 1,
        Some(tx) => {
            // Its reservation is part of what was sent; only the bytes it has not sent yet
            // are new.
            let reserved = tx.total.unwrap_or(0).max(tx.item.size);
            used = Usage {
                files: used.files,
                bytes: used
                    .bytes
                    .saturating_sub(reserved)
                    .saturating_add(tx.item.size),
            };
            0
        }
    };
    let room = link.admit(used, files, bytes)?;
    Ok(link.max_size.zip(room))
}

/// The reference of a new item: the link's case for link uploads (the customer cannot file
/// into another case), else what the client sent.
pub fn case_reference(who: &Principal, sent: Option<&str>) -> Result<Option<String>, AppError> {
    match &who.link {
        Some(link) => Ok(Some(link.reference.clone())),
        None => Ok(crate::upload::engine::clean_reference(sent)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_paths() {
        let (t, _) = links::new_token().unwrap();
        let cases = [
            (format!("/u/{t}"), true),
            (format!("/u/{t}/bundle.tgz"), true),
            (format!("//u/{t}/"), true),
            ("/u/support".to_string(), false),
            (format!("/x/{t}"), false),
            (format!("/u/{t}x"), false),
        ];
        for (path, ok) in cases {
            assert_eq!(path_token(&path).is_some(), ok, "{path}");
        }
    }
}
