//! `Authorization: Basic` / `Bearer`: `sfx::auth::parse_authorization`.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use sfx::auth::parse_authorization;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(secret)) = parse_authorization(data) {
        assert!(!secret.is_empty());
        assert!(!secret.chars().any(char::is_control), "{secret:?}");
        // A secret that came out goes back in, both ways a client may send it.
        let basic = format!("Basic {}", STANDARD.encode(format!("user:{secret}")));
        assert_eq!(
            parse_authorization(basic.as_bytes()),
            Ok(Some(secret.clone()))
        );
        if secret.trim() == secret {
            let bearer = format!("Bearer {secret}");
            assert_eq!(parse_authorization(bearer.as_bytes()), Ok(Some(secret)));
        }
    }
    // The same bytes as a Basic payload: whatever is accepted is the text after the first ':'.
    let basic = format!("Basic {}", STANDARD.encode(data));
    if let Ok(Some(secret)) = parse_authorization(basic.as_bytes()) {
        let text = std::str::from_utf8(data).expect("accepted credentials are UTF-8");
        assert_eq!(Some(secret.as_str()), text.split_once(':').map(|(_, p)| p));
    }
});
