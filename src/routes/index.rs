//! `GET /`: the upload page for those who may create, a short landing page otherwise.

use super::principal;
use crate::config::Lifetime;
use crate::pages::{IndexPage, Nav, UploadForm, human_size, render};
use crate::server::{AppError, Request, Response, response};
use crate::state::State;
use http::{StatusCode, header};

const UNITS: [(&str, &str, u64); 6] = [
    ("years", "years", 365 * 86400),
    ("months", "months", 30 * 86400),
    ("weeks", "weeks", 7 * 86400),
    ("days", "days", 86400),
    ("hours", "hours", 3600),
    ("minutes", "minutes", 60),
];

pub async fn page(state: &State, req: Request) -> Result<Response, AppError> {
    let who = principal(state, &req).await?;
    let host: String = req
        .header(header::HOST)
        .unwrap_or("HOST")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let page = IndexPage {
        nav: Nav::new(&state.config.site_name, &who),
        login_failed: req.query("login").as_deref() == Some("failed"),
        host,
        form: upload_form(state, "/+upload".into()),
    };
    Ok(response::html(StatusCode::OK, render(&page)))
}

/// The upload form as `/` shows it, posting to `action`.
pub fn upload_form(state: &State, action: String) -> UploadForm {
    let (value, unit) = preset(state.config.default_lifetime);
    let mut lifetime_units: Vec<_> = UNITS
        .iter()
        .rev()
        .map(|(u, label, _)| (*u, *label, *u == unit))
        .collect();
    if state.config.max_lifetime == Lifetime::Forever {
        lifetime_units.push(("forever", "forever", unit == "forever"));
    }
    UploadForm {
        action,
        bearer: None,
        fixed_reference: None,
        lifetime_value: value,
        lifetime_units,
        max_file_size: human_size(state.config.max_file_size),
        max_lifetime: describe(state.config.max_lifetime),
        upload_chunk_size: state.config.upload_chunk_size,
        max_file_bytes: state.config.max_file_size,
    }
}

/// "1 year", "30 days", "forever": in the form's own units (humantime would say "11months 30days…").
fn describe(lifetime: Lifetime) -> String {
    match preset(lifetime) {
        (_, "forever") => "forever".into(),
        (1, unit) => format!("1 {}", unit.trim_end_matches('s')),
        (n, unit) => format!("{n} {unit}"),
    }
}

/// The form's preselected value and unit for the default lifetime (largest exact unit).
fn preset(lifetime: Lifetime) -> (u64, &'static str) {
    match lifetime {
        Lifetime::Forever => (1, "forever"),
        Lifetime::For(d) => {
            let secs = d.as_secs().max(60);
            UNITS
                .iter()
                .find(|(_, _, s)| secs % s == 0)
                .map(|(u, _, s)| (secs / s, *u))
                .unwrap_or((secs.div_ceil(60), "minutes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn presets() {
        assert_eq!(
            preset(Lifetime::For(Duration::from_secs(30 * 86400))),
            (1, "months")
        );
        assert_eq!(
            preset(Lifetime::For(Duration::from_secs(7 * 86400))),
            (1, "weeks")
        );
        assert_eq!(
            preset(Lifetime::For(Duration::from_secs(3 * 86400))),
            (3, "days")
        );
        assert_eq!(
            preset(Lifetime::For(Duration::from_secs(90))),
            (2, "minutes")
        );
        assert_eq!(preset(Lifetime::Forever), (1, "forever"));
        assert_eq!(
            describe(Lifetime::For(Duration::from_secs(365 * 86400))),
            "1 year"
        );
        assert_eq!(
            describe(Lifetime::For(Duration::from_secs(3 * 86400))),
            "3 days"
        );
    }
}
