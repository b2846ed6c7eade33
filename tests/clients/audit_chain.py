"""Checks an sfx audit_log (JSON lines) on its own, as README "Audit trail" describes the chain:
hash = SHA-256(prev_hash || "sfx-audit-v1" || each field as 8-byte big-endian length + UTF-8).
Usage: python3 audit_chain.py FILE [FIRST_PREV_HASH]. Prints "ok N HASH" or exits 1 naming the
first broken line's record."""
import hashlib
import json
import sys

FIELDS = ["id", "time", "kind", "outcome", "client_ip", "label", "item", "detail"]

prev = sys.argv[2] if len(sys.argv) > 2 else "0" * 64
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    data = b"sfx-audit-v1"
    for f in (str(r[k]).encode() for k in FIELDS):
        data += len(f).to_bytes(8, "big") + f
    if r["prev_hash"] != prev or hashlib.sha256(prev.encode() + data).hexdigest() != r["hash"]:
        sys.exit(f"broken at record {r['id']}")
    prev = r["hash"]
    n += 1
print("ok", n, prev)
