//! The route table: path and method → [`Route`], then [`dispatch`] to the handler.
//! Item names in paths must parse as [`ItemName`]; anything else is a 404, so no handler ever
//! sees a name that could be a path trick. Nothing is percent-decoded here.

use super::{AppError, Request, Response};
use crate::items::ItemName;
use crate::metrics::{Protocol, Traffic};
use crate::routes;
use crate::state::State;
use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Index,
    Healthz,
    Readyz,
    Asset(&'static str),
    Login,
    Logout,
    Upload,
    /// `PUT /+upload/<filename>`: the body is the file.
    UploadPut,
    /// tus creation (`/+tus/`) and upload resources (`/+tus/<id>`).
    TusCreate,
    TusUpload,
    /// IETF resumable upload resources (`/+resumable/<id>`); creation is on `/+upload`.
    Resumable,
    Receipt,
    List,
    ItemPage,
    ItemDownload,
    ItemInline,
    ItemDelete,
    ApiInfo,
    ApiItems,
    ApiItem,
    ApiItemDownload,
    ApiItemModify,
    ApiItemDelete,
    ApiItemLock,
    ApiItemUnlock,
    Audit,
    ClientScript,
    /// `/u/<token>`: a link's upload page (GET) and form post (POST).
    LinkUpload,
    /// `PUT /u/<token>/<filename>`.
    LinkPut,
    /// `/+links` (list, create), `/+links/<id>`, `/+links/<id>/revoke`.
    Links,
    LinkPage,
    LinkRevoke,
    /// `GET /metrics` on the main listener (only with `metrics_token`).
    Metrics,
    /// `POST /+delete`: many items (a confirmation page first).
    BulkDelete,
    /// `/+zip?name=…`: many items as one streamed ZIP.
    Zip,
    /// `/+deliveries`, `/+deliveries/<id>`, `/+deliveries/<id>/zip`.
    Deliveries,
    DeliveryPage,
    DeliveryZip,
}

const GET: &str = "GET, HEAD";
const POST: &str = "POST";
const GET_POST: &str = "GET, HEAD, POST";
const UPLOAD: &str = "POST, OPTIONS";
const PUT: &str = "PUT";
const TUS_CREATE: &str = "POST, OPTIONS";
const RESOURCE: &str = "HEAD, PATCH, DELETE, OPTIONS";

impl Route {
    /// The methods this route answers, as sent in `Allow`.
    fn allow(self) -> &'static str {
        match self {
            Route::Upload => UPLOAD,
            Route::UploadPut => PUT,
            Route::TusCreate => TUS_CREATE,
            Route::TusUpload | Route::Resumable => RESOURCE,
            Route::LinkPut => PUT,
            Route::LinkUpload | Route::Links => GET_POST,
            Route::LinkRevoke | Route::BulkDelete => POST,
            Route::Zip => GET_POST,
            Route::Login
            | Route::Logout
            | Route::ItemDelete
            | Route::ApiItemModify
            | Route::ApiItemDelete
            | Route::ApiItemLock
            | Route::ApiItemUnlock => POST,
            Route::ApiItems => GET_POST,
            _ => GET,
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Route::Index => "index",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Asset(_) => "asset",
            Route::Login => "login",
            Route::Logout => "logout",
            Route::Upload => "upload",
            Route::UploadPut => "upload-put",
            Route::TusCreate => "tus-create",
            Route::TusUpload => "tus-upload",
            Route::Resumable => "resumable",
            Route::Receipt => "receipt",
            Route::List => "list",
            Route::ItemPage => "item",
            Route::ItemDownload => "download",
            Route::ItemInline => "inline",
            Route::ItemDelete => "delete",
            Route::ApiInfo => "api-info",
            Route::ApiItems => "api-items",
            Route::ApiItem => "api-item",
            Route::ApiItemDownload => "api-download",
            Route::ApiItemModify => "api-modify",
            Route::ApiItemDelete => "api-delete",
            Route::ApiItemLock => "api-lock",
            Route::ApiItemUnlock => "api-unlock",
            Route::Audit => "audit",
            Route::ClientScript => "client-script",
            Route::LinkUpload => "link-upload",
            Route::LinkPut => "link-put",
            Route::Links => "links",
            Route::LinkPage => "link",
            Route::LinkRevoke => "link-revoke",
            Route::Metrics => "metrics",
            Route::BulkDelete => "bulk-delete",
            Route::Zip => "zip",
            Route::Deliveries => "deliveries",
            Route::DeliveryPage => "delivery",
            Route::DeliveryZip => "delivery-zip",
        }
    }
}

/// Finds the route for a path (leading slashes collapsed, as bepasty-cli may send `//apis/...`)
/// and checks the method.
pub fn resolve(method: &Method, path: &str) -> Result<(Route, Option<ItemName>), AppError> {
    let trimmed = path.trim_start_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    let item = |s: &str, route: Route| ItemName::parse(s).map(|n| (route, Some(n)));
    let found = match segments.as_slice() {
        [""] => Some((Route::Index, None)),
        ["healthz"] => Some((Route::Healthz, None)),
        ["readyz"] => Some((Route::Readyz, None)),
        ["+static", file] => routes::assets::find(file).map(|a| (Route::Asset(a), None)),
        ["+login"] => Some((Route::Login, None)),
        ["+logout"] => Some((Route::Logout, None)),
        ["+upload"] => Some((Route::Upload, None)),
        ["+upload", filename] if !filename.is_empty() => Some((Route::UploadPut, None)),
        ["+tus"] | ["+tus", ""] => Some((Route::TusCreate, None)),
        ["+tus", _] => Some((Route::TusUpload, None)),
        ["+resumable", _] => Some((Route::Resumable, None)),
        ["+receipt"] => Some((Route::Receipt, None)),
        ["+list"] => Some((Route::List, None)),
        ["+delete"] => Some((Route::BulkDelete, None)),
        ["+zip"] => Some((Route::Zip, None)),
        ["+deliveries"] => Some((Route::Deliveries, None)),
        ["+deliveries", id] if is_id(id) => Some((Route::DeliveryPage, None)),
        ["+deliveries", id, "zip"] if is_id(id) => Some((Route::DeliveryZip, None)),
        ["+audit"] => Some((Route::Audit, None)),
        ["+client.sh"] => Some((Route::ClientScript, None)),
        ["u", token] if crate::links::is_token(token) => Some((Route::LinkUpload, None)),
        ["u", token, _] if crate::links::is_token(token) => Some((Route::LinkPut, None)),
        ["+links"] => Some((Route::Links, None)),
        ["+links", id] if is_id(id) => Some((Route::LinkPage, None)),
        ["+links", id, "revoke"] if is_id(id) => Some((Route::LinkRevoke, None)),
        ["metrics"] => Some((Route::Metrics, None)),
        ["apis", "rest"] => Some((Route::ApiInfo, None)),
        ["apis", "rest", "items"] => Some((Route::ApiItems, None)),
        ["apis", "rest", "items", name] => item(name, Route::ApiItem),
        ["apis", "rest", "items", name, "download"] => item(name, Route::ApiItemDownload),
        ["apis", "rest", "items", name, "modify"] => item(name, Route::ApiItemModify),
        ["apis", "rest", "items", name, "delete"] => item(name, Route::ApiItemDelete),
        ["apis", "rest", "items", name, "lock"] => item(name, Route::ApiItemLock),
        ["apis", "rest", "items", name, "unlock"] => item(name, Route::ApiItemUnlock),
        [name] => item(name, Route::ItemPage),
        [name, "+download"] => item(name, Route::ItemDownload),
        [name, "+inline"] => item(name, Route::ItemInline),
        [name, "+delete"] => item(name, Route::ItemDelete),
        _ => None,
    };
    let (route, name) = found.ok_or(AppError::NotFound)?;
    let allowed = route.allow().split(", ").any(|m| m == method.as_str());
    if !allowed {
        return Err(AppError::MethodNotAllowed {
            allow: route.allow(),
        });
    }
    Ok((route, name))
}

/// A link or delivery id: a positive decimal number.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0')
}

pub async fn dispatch(state: &State, route: Route, req: Request) -> Result<Response, AppError> {
    match route {
        Route::Index => routes::index::page(state, req).await,
        Route::Healthz => routes::health::check(state, req).await,
        Route::Readyz => routes::health::ready(state, req).await,
        Route::Asset(file) => routes::assets::serve(file, &req),
        Route::Login => routes::login::login(state, req).await,
        Route::Logout => routes::login::logout(state, req).await,
        Route::Upload if req.method == Method::OPTIONS => routes::ietf::options(state, req),
        // A body with the draft's headers creates an IETF resumable upload; anything else is
        // a form post.
        Route::Upload if routes::ietf::is_creation(&req) => routes::ietf::create(state, req).await,
        Route::Upload => routes::upload::form_upload(state, req).await,
        Route::UploadPut => routes::upload::put::put(state, req).await,
        Route::TusCreate | Route::TusUpload if req.method == Method::OPTIONS => {
            routes::tus::options(state, req)
        }
        Route::TusCreate => routes::tus::create(state, req).await,
        Route::TusUpload => routes::tus::resource(state, req).await,
        Route::Resumable => routes::ietf::resource(state, req).await,
        Route::Receipt => routes::upload::receipt_page(state, req).await,
        Route::List => routes::console::list::page(state, req).await,
        Route::BulkDelete => routes::console::bulk::delete(state, req).await,
        Route::Zip => routes::console::zip::download(state, req).await,
        Route::Deliveries => routes::console::deliveries::list(state, req).await,
        Route::DeliveryPage => routes::console::deliveries::page(state, req).await,
        Route::DeliveryZip => routes::console::deliveries::zip(state, req).await,
        Route::ItemPage => routes::item::page(state, req).await,
        Route::ItemDownload => routes::download::download(state, req).await,
        Route::ItemInline => routes::download::inline(state, req).await,
        Route::ItemDelete => routes::item::delete(state, req).await,
        Route::ApiInfo => routes::rest::info(state, req).await,
        Route::ApiItems if req.method == Method::POST => {
            routes::rest::upload::upload(state, req).await
        }
        // HEAD with a Transaction-ID asks how much of that upload is stored.
        Route::ApiItems
            if req.method == Method::HEAD && req.headers.contains_key("transaction-id") =>
        {
            routes::rest::upload::offset(state, req).await
        }
        Route::ApiItems => routes::list::api_items(state, req).await,
        Route::ApiItem => routes::rest::item(state, req).await,
        Route::ApiItemDownload => routes::download::download(state, req).await,
        Route::ApiItemModify => routes::rest::modify(state, req).await,
        Route::ApiItemDelete => routes::rest::delete(state, req).await,
        Route::ApiItemLock => routes::rest::lock(state, req).await,
        Route::ApiItemUnlock => routes::rest::unlock(state, req).await,
        Route::Audit => routes::audit::page(state, req).await,
        Route::ClientScript => routes::client_script::serve(state, req).await,
        Route::LinkUpload if req.method == Method::POST => {
            routes::upload::form_upload(state, req).await
        }
        Route::LinkUpload => routes::links::upload_page(state, req).await,
        Route::LinkPut => routes::upload::put::put(state, req).await,
        Route::Links if req.method == Method::POST => routes::links::create(state, req).await,
        Route::Links => routes::links::list(state, req).await,
        Route::LinkPage => routes::links::page(state, req).await,
        Route::LinkRevoke => routes::links::revoke(state, req).await,
        Route::Metrics => routes::metrics::guarded(state, req).await,
    }
}

/// What a request is, for the metrics' counters: which upload protocol (and whether it starts
/// a new upload), a download, or other.
pub fn traffic(route: Route, req: &Request) -> Traffic {
    let upload = |protocol, new| Traffic::Upload { protocol, new };
    let m = &req.method;
    match route {
        Route::Upload if *m == Method::POST && routes::ietf::is_creation(req) => {
            upload(Protocol::Ietf, true)
        }
        Route::Upload if *m == Method::POST => upload(Protocol::Form, true),
        Route::UploadPut | Route::LinkPut => upload(Protocol::Put, true),
        // An upload link's form post.
        Route::LinkUpload if *m == Method::POST => upload(Protocol::Form, true),
        Route::ApiItems if *m == Method::POST => {
            upload(Protocol::Rest, !req.headers.contains_key("transaction-id"))
        }
        Route::TusCreate if *m == Method::POST => upload(Protocol::Tus, true),
        Route::TusUpload if *m == Method::PATCH => upload(Protocol::Tus, false),
        Route::Resumable if *m == Method::PATCH => upload(Protocol::Ietf, false),
        Route::ItemDownload
        | Route::ItemInline
        | Route::ApiItemDownload
        | Route::Zip
        | Route::DeliveryZip
            if *m != Method::HEAD =>
        {
            Traffic::Download
        }
        _ => Traffic::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Route, AppError> {
        resolve(&Method::GET, path).map(|(r, _)| r)
    }

    #[test]
    fn table() {
        assert_eq!(get("/").unwrap(), Route::Index);
        assert_eq!(get("/4qVsTtL9").unwrap(), Route::ItemPage);
        assert_eq!(get("/4qVsTtL9/+download").unwrap(), Route::ItemDownload);
        assert_eq!(get("//apis/rest/items").unwrap(), Route::ApiItems);
        assert_eq!(
            get("/apis/rest/items/4qVsTtL9/download").unwrap(),
            Route::ApiItemDownload
        );
        assert!(matches!(get("/+list/"), Err(AppError::NotFound)));
        assert!(matches!(get("/../etc/passwd"), Err(AppError::NotFound)));
        assert!(matches!(get("/4qVsTtL%39"), Err(AppError::NotFound)));
        assert!(matches!(
            get("/+upload"),
            Err(AppError::MethodNotAllowed {
                allow: "POST, OPTIONS"
            })
        ));
        assert_eq!(
            resolve(&Method::PUT, "/+upload/a%20b.tgz").unwrap().0,
            Route::UploadPut
        );
        assert_eq!(
            resolve(&Method::POST, "/+tus/").unwrap().0,
            Route::TusCreate
        );
        assert_eq!(
            resolve(&Method::PATCH, "/+tus/abc").unwrap().0,
            Route::TusUpload
        );
        assert!(matches!(
            resolve(&Method::GET, "/+tus/abc"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert!(matches!(get("/+tus/a/b"), Err(AppError::NotFound)));
        assert_eq!(
            resolve(&Method::POST, "//apis/rest/items").unwrap().0,
            Route::ApiItems
        );
        assert!(matches!(
            resolve(&Method::DELETE, "/4qVsTtL9"),
            Err(AppError::MethodNotAllowed { .. })
        ));
        assert_eq!(
            resolve(&Method::HEAD, "/healthz").unwrap().0,
            Route::Healthz
        );
    }
}
