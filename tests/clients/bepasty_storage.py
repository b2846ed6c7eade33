"""Fills a bepasty storage directory with bepasty's own code (tests/import_bepasty.rs).

Usage: python bepasty_storage.py STORAGE_DIR

Creates bepasty's Flask app (the real bepasty 1.2.2 from PyPI) with STORAGE_FILESYSTEM_DIRECTORY =
STORAGE_DIR and uploads through the app's test client, as a browser or REST client would: a form
upload, a pasted text, a REST upload in two chunks, one with a lifetime of two days, one locked by
an admin through /+lock, and a REST upload left incomplete after its first chunk. Writes the bytes
sent for each item to sent/<name> (in the current directory) and prints one JSON object: for each
item (by role) its name and the metadata bepasty itself reads back for it (storage.open(name).meta).
"""

import base64
import json
import pathlib
import os
import sys
import tempfile
import threading
from io import BytesIO


def main():
    storage = sys.argv[1]
    conf = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    conf.write(
        "SECRET_KEY = 'import-test-secret-key-0123456789abcdef'\n"
        "STORAGE = 'filesystem'\n"
        f"STORAGE_FILESYSTEM_DIRECTORY = {storage!r}\n"
        "SESSION_COOKIE_SECURE = False\n"
        "PERMISSIONS = {'admin': 'admin,list,create,modify,read,delete'}\n"
        "DEFAULT_PERMISSIONS = ''\n"
    )
    conf.close()
    os.environ["BEPASTY_CONFIG"] = conf.name
    from bepasty.app import create_app

    app = create_app()
    client = app.test_client()
    auth = {"Authorization": "Basic " + base64.b64encode(b"x:admin").decode()}
    sent = {}

    def form_upload(key, data, filename, ctype, **fields):
        r = client.post(
            "/+upload",
            headers=auth,
            data={"file": (BytesIO(data), filename, ctype), **fields},
            content_type="multipart/form-data",
        )
        assert r.status_code == 302, (r.status_code, r.data)
        name = r.headers["Location"].split("/")[-1].split("#")[0]
        sent[key] = (name, data)
        return name

    def rest_upload(key, data, filename, chunks, stop_after=None, **headers):
        tid = None
        step = -(-len(data) // chunks)
        for i, start in enumerate(range(0, len(data), step)):
            if stop_after is not None and i == stop_after:
                break
            part = data[start:start + step]
            h = dict(auth)
            h.update(headers)
            h["Content-Filename"] = filename
            h["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(data)}"
            if tid:
                h["Transaction-ID"] = tid
            r = client.post(
                "/apis/rest/items",
                headers=h,
                data=base64.b64encode(part),
                content_type="application/octet-stream",
            )
            assert r.status_code in (200, 201), (r.status_code, r.data)
            tid = r.headers["Transaction-ID"]
        name = base64.b64decode(tid).decode()
        sent[key] = (name, data)
        return name

    form_upload(
        "form", b"\x00\x01binary bundle\xff" * 1000, "bundle 1.tar.gz", "application/gzip",
        **{"maxlife-unit": "forever", "maxlife-value": "1"},
    )
    r = client.post(
        "/+upload",
        headers=auth,
        data={"text": "hello from bepasty\n", "filename": "notes.txt",
              "contenttype": "text/plain", "maxlife-unit": "days", "maxlife-value": "2"},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302, (r.status_code, r.data)
    sent["text"] = (r.headers["Location"].split("/")[-1].split("#")[0], b"hello from bepasty\n")
    rest_upload("rest", os.urandom(300_000), "big.bin", 2,
                **{"Maxlife-Unit": "WEEKS", "Maxlife-Value": "1"})
    locked = form_upload("locked", b"secret admin-only data\n", "secret.log", "text/plain")
    r = client.post(f"/{locked}/+lock", headers=auth)
    assert r.status_code == 302, (r.status_code, r.data)
    # The hashes of REST uploads are computed by bepasty's threads: wait for them.
    for t in threading.enumerate():
        if t is not threading.current_thread():
            t.join()
    rest_upload("incomplete", b"half of it" * 100, "partial.bin", 2, stop_after=1)
    # Spare items the test damages itself (truncated data, garbage meta, a flipped byte).
    form_upload("truncated", b"to be truncated " * 100, "cut.txt", "text/plain")
    form_upload("garbage", b"meta to be garbled\n", "garbled.txt", "text/plain")
    form_upload("flipped", b"one byte to be flipped\n", "flipped.txt", "text/plain")

    out = {}
    pathlib.Path("sent").mkdir()
    for key, (name, data) in sent.items():
        pathlib.Path("sent", name).write_bytes(data)
        with app.app_context():
            item = app.storage.open(name)
            meta = dict(item.meta)
            item.close()
        out[key] = {"name": name, "meta": meta}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
