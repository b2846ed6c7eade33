"""Runs tuspy (the tus project's Python client, PyPI `tuspy`) unchanged against sfx, for
tests/tus_clients.rs. One JSON argument says what to do:

  {"endpoint": "http://127.0.0.1:P/+tus/", "secret": "...", "file": "PATH",
   "chunk_size": N, "metadata": {...}, "checksum": true, "storage": "PATH" | null,
   "stop_at": N | null, "retries": N}

With "storage", the upload URL is kept in tuspy's own file storage keyed by its fingerprint,
so a second run resumes. With "stop_at", it stops once that many bytes are on the server
(tuspy's `upload(stop_at=)`), as an interrupted client would. Prints one JSON object: the
upload URL, the offset, the last PATCH's response headers, a HEAD's, and every request made
(method, URL, request headers, status), or the error.
"""

import json
import sys

import requests
from tusclient import client
from tusclient.storage import filestorage

trace = []
_send = requests.sessions.Session.send


def _traced(self, request, **kwargs):
    resp = _send(self, request, **kwargs)
    trace.append(
        {
            "method": request.method,
            "url": request.url,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_len": len(request.body or b"") if isinstance(request.body, (bytes, str)) else None,
            "status": resp.status_code,
            "response_headers": {k.lower(): v for k, v in resp.headers.items()},
        }
    )
    return resp


requests.sessions.Session.send = _traced


def main():
    spec = json.loads(sys.argv[1])
    import base64

    auth = base64.b64encode(("user:" + spec["secret"]).encode()).decode()
    tus = client.TusClient(spec["endpoint"], headers={"Authorization": "Basic " + auth})
    kwargs = {
        "file_path": spec["file"],
        "chunk_size": spec.get("chunk_size") or 1 << 20,
        "metadata": spec.get("metadata") or {},
        "upload_checksum": bool(spec.get("checksum")),
        "retries": spec.get("retries", 0),
        "retry_delay": 0,
    }
    if spec.get("storage"):
        kwargs["store_url"] = True
        kwargs["url_storage"] = filestorage.FileStorage(spec["storage"])
    out = {}
    try:
        uploader = tus.uploader(**kwargs)
        out["resumed_offset"] = uploader.offset if uploader.url else None
        uploader.upload(stop_at=spec.get("stop_at"))
        out["url"] = uploader.url
        out["offset"] = uploader.offset
        out["patch_headers"] = uploader.request.response_headers if uploader.request else None
        head = requests.head(uploader.url, headers=uploader.get_headers())
        out["head_status"] = head.status_code
        out["head_headers"] = {k.lower(): v for k, v in head.headers.items()}
        if spec.get("storage") and uploader.offset >= uploader.get_file_size():
            # Done: forget the URL, as an application would.
            uploader.url_storage.remove_item(uploader._get_fingerprint())
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        out["error"] = {
            "type": type(e).__name__,
            "message": str(e),
            "status": getattr(e, "status_code", None),
            "body": (getattr(e, "response_content", None) or b"").decode("utf-8", "replace"),
        }
    out["trace"] = trace
    print(json.dumps(out))


main()
