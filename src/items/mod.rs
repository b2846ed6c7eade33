//! What an item is made of before it reaches the store: its name, its cleaned filename and
//! content type, and the lifetime a client asked for.

mod filename;
mod maxlife;
mod mime;
mod name;

pub use filename::{fallback_filename, sanitize_filename};
pub use maxlife::{MaxLife, MaxLifeError};
pub use mime::{content_type_for, is_inline_safe, sanitize_content_type};
pub use name::{ItemName, NAME_ALPHABET};
