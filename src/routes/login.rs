//! `POST /+login` (password-only, field `token`) and `POST /+logout`.

use super::{form_value, safe_next, small_form};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{COOKIE_NAME, Source};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use http::{HeaderValue, StatusCode, header};

const FORM_LIMIT: usize = 8 * 1024;

pub async fn login(state: &State, req: Request) -> Result<Response, AppError> {
    refuse_cross_site(&req)?;
    let peer = req.client_ip;
    let secure = cookie_flags(&req);
    let form = small_form(req, FORM_LIMIT).await?;
    let next = safe_next(form_value(&form, "next")).unwrap_or_else(|| "/".into());
    let token = form_value(&form, "token").unwrap_or("");
    let who = match state.auth.check_secret(token, peer, Source::Session).await {
        Ok(who) => who,
        Err(crate::auth::AuthError::WrongSecret) => {
            return Ok(response::redirect(StatusCode::FOUND, "/?login=failed"));
        }
        Err(e) => return Err(e.into()),
    };
    let label = who.label.unwrap_or_default();
    let grant = state
        .auth
        .secrets
        .by_label(&label)
        .ok_or_else(|| AppError::Internal("grant vanished".into()))?;
    let lifetime = i64::try_from(state.config.session_lifetime.as_secs()).unwrap_or(i64::MAX);
    let (_session, value) = state.auth.signer.new_session(
        &label,
        &grant.fingerprint,
        crate::now().saturating_add(lifetime),
    )?;
    tracing::info!(%peer, label, "logged in");
    state
        .audit
        .record(AuditEvent::new(Kind::LoginSuccess, peer, &label))
        .await;
    let mut resp = response::redirect(StatusCode::FOUND, &next);
    set_cookie(
        &mut resp,
        &format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"),
    )?;
    Ok(resp)
}

pub async fn logout(_state: &State, req: Request) -> Result<Response, AppError> {
    refuse_cross_site(&req)?;
    let secure = cookie_flags(&req);
    let form = small_form(req, FORM_LIMIT).await?;
    let next = safe_next(form_value(&form, "next")).unwrap_or_else(|| "/".into());
    let mut resp = response::redirect(StatusCode::FOUND, &next);
    set_cookie(
        &mut resp,
        &format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    )?;
    Ok(resp)
}

/// `; Secure` on HTTPS (directly or behind a trusted TLS-terminating proxy); over plain HTTP
/// a Secure cookie would never be sent back.
fn cookie_flags(req: &Request) -> &'static str {
    if req.secure { "; Secure" } else { "" }
}

fn set_cookie(resp: &mut Response, value: &str) -> Result<(), AppError> {
    let v = HeaderValue::from_str(value)
        .map_err(|e| AppError::Internal(format!("cookie header: {e}")))?;
    resp.headers_mut().append(header::SET_COOKIE, v);
    Ok(())
}

/// Login and logout forms only ever come from our own pages.
fn refuse_cross_site(req: &Request) -> Result<(), AppError> {
    if super::is_cross_site(req) {
        return Err(AppError::Forbidden("cross-site request refused".into()));
    }
    Ok(())
}
