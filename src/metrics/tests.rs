use super::*;

/// The value of the sample `line_start` (name and labels, as encoded), if present.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn counters_labels_and_gauges() {
    // The registry is the process's: read values before and after, never absolute counts.
    let before = encode(&Snapshot::default());
    let failed = r#"sfx_uploads_failed_total{protocol="tus",status="413"}"#;
    let was = sample(&before, failed).unwrap_or(0.0);
    let upload = Traffic::Upload {
        protocol: Protocol::Tus,
        new: true,
    };
    request_started(upload);
    request_answered("tus-create", upload, 413);
    upload_finished(Protocol::Put, 1000, Duration::from_millis(300));
    let text = encode(&Snapshot {
        uploads_active: 3,
        disk_free_bytes: Some(12345),
        ..Snapshot::default()
    });
    assert_eq!(sample(&text, failed), Some(was + 1.0), "{text}");
    assert!(sample(&text, r#"sfx_uploads_started_total{protocol="tus"}"#).is_some());
    assert!(sample(&text, r#"sfx_uploaded_bytes_total{protocol="put"}"#).unwrap() >= 1000.0);
    assert!(
        sample(
            &text,
            r#"sfx_upload_duration_seconds_bucket{le="0.4",protocol="put"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(sample(&text, "sfx_uploads_active"), Some(3.0));
    assert_eq!(sample(&text, "sfx_disk_free_bytes"), Some(12345.0));
    assert!(
        !text.contains("sfx_store_items"),
        "a gauge that could not be read is left out"
    );
    assert!(text.ends_with("# EOF\n"));
}
