//! Receipts for browser uploads. A create-only customer may not read items, so after a form
//! upload the browser is sent (303) to `/+receipt?t=...`: a token signed for that browser's
//! login session, naming only the items it just uploaded.

use crate::auth::Principal;
use crate::items::ItemName;
use crate::pages::{Nav, ReceiptItem, ReceiptPage, render};
use crate::routes::principal;
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use crate::store::{ItemState, blocking};
use http::StatusCode;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// How long a receipt link works.
const RECEIPT_TTL: i64 = 24 * 3600;

/// Python's `urllib.parse.quote` (what bepasty uses for the `Location` fragment).
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

pub fn quote_fragment(filename: &str) -> String {
    utf8_percent_encode(filename, FRAGMENT).to_string()
}

fn purpose(sid: &str) -> String {
    format!("receipt:{sid}")
}

/// The answer to a form upload from our page.
pub fn after_form(state: &State, receipts: &[ReceiptItem], who: &Principal) -> Response {
    let nav = Nav::new(&state.config.site_name, who);
    let Some(session) = &who.session else {
        // Logged in by other means (Basic auth in a browser): show the receipt right away.
        return response::html(
            StatusCode::OK,
            render(&ReceiptPage {
                nav,
                items: receipts.to_vec(),
            }),
        );
    };
    let names: Vec<&str> = receipts.iter().map(|r| r.name.as_str()).collect();
    let data = format!("{}.{}", crate::now() + RECEIPT_TTL, names.join("-"));
    let token = state.auth.signer.sign(&purpose(&session.sid), &data);
    response::redirect(StatusCode::SEE_OTHER, &format!("/+receipt?t={token}"))
}

pub async fn receipt_page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = principal(state, &req).await?;
    let invalid =
        || AppError::Forbidden("this receipt link is not valid for this browser session".into());
    let session = who.session.as_ref().ok_or_else(invalid)?;
    let token = req.query("t").ok_or_else(invalid)?;
    let data = state
        .auth
        .signer
        .verify(&purpose(&session.sid), &token)
        .ok_or_else(invalid)?;
    let (expires, names) = data.split_once('.').ok_or_else(invalid)?;
    if expires.parse::<i64>().map_err(|_| invalid())? < crate::now() {
        return Err(AppError::Forbidden("this receipt link has expired".into()));
    }
    let names: Vec<ItemName> = names.split('-').filter_map(ItemName::parse).collect();
    let items = blocking(&state.store, move |s| {
        names
            .iter()
            .filter_map(|n| s.get(n).transpose())
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let receipts = items
        .iter()
        .filter(|i| i.state == ItemState::Complete)
        .map(ReceiptItem::from)
        .collect();
    let nav = Nav::new(&state.config.site_name, &who);
    Ok(response::html(
        StatusCode::OK,
        render(&ReceiptPage {
            nav,
            items: receipts,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_python() {
        assert_eq!(
            quote_fragment("my bundle (1).tar.gz"),
            "my%20bundle%20%281%29.tar.gz"
        );
        assert_eq!(quote_fragment("FILE.tar.gz"), "FILE.tar.gz");
        assert_eq!(quote_fragment("été"), "%C3%A9t%C3%A9");
    }
}
