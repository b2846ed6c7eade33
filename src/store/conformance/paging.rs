//! Conformance cases of the listing's pages where the store may read them another way: a
//! range filter that matches many items (SQLite then walks the order's index instead of
//! sorting the matches, see `store::sqlite::listing`).

use super::{Backend, names, random_item};
use crate::store::{ListQuery, Sort};

/// Page by page, with a window small enough for every way of reading, the pages of a wide
/// range put together are the one long page of it, in every order and for admins and others.
pub(super) fn wide_ranges_page_alike(b: &Backend) {
    let s = b.open();
    let mut items: Vec<_> = (0..40).map(|i| random_item(1000 + i % 7)).collect();
    for (i, it) in items.iter_mut().enumerate() {
        it.size = (i as u64 * 37) % 11;
        it.filename = format!("{}-{}.tgz", ["b", "A", "c"][i % 3], i % 5);
        it.uploader.client_ip = format!("10.9.{}.{}", i % 2, i);
        it.sha256 = format!("{:x}{}", i % 2, "e".repeat(63));
        it.locked = i % 9 == 0;
    }
    s.insert(&items, None).unwrap();
    let text = |v: &str| Some(v.to_string());
    for include_locked in [true, false] {
        for sort in [Sort::Time, Sort::Size, Sort::Name] {
            for ascending in [false, true] {
                for filter in [0, 1, 2] {
                    let q = |offset: u64, limit: u64| {
                        let mut q = ListQuery {
                            sort,
                            ascending,
                            offset,
                            limit,
                            include_locked,
                            ..Default::default()
                        };
                        match filter {
                            0 => q.client = text("10.9."),
                            1 => q.sha256 = text("1"),
                            _ => q.since = Some(1001),
                        }
                        s.list(&q).unwrap()
                    };
                    let whole = q(0, 1000);
                    let mut paged = Vec::new();
                    for offset in 0..whole.items.len() as u64 {
                        let page = q(offset, 1);
                        assert_eq!(page.total, whole.total, "{sort:?} {filter} at {offset}");
                        paged.extend(names(&page).into_iter().map(str::to_string));
                    }
                    assert_eq!(paged, names(&whole), "{sort:?} asc={ascending} {filter}");
                    assert!(whole.total >= 10, "the range matches many: {}", whole.total);
                }
            }
        }
    }
}
