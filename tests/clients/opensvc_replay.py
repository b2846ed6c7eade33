"""Replay of the OpenSVC agent's support-tarball upload (`om <svc> support`).

The agent (opensvc/opensvc, method support() of the service object class; the same in b1.9,
b2.0, b2.1 and master) is not on PyPI, so this does exactly what it does after building the
tarball (shared/reference/clients.md section 1):
  * reads the whole tarball and base64-encodes it in one go (standard alphabet, no newlines);
  * one requests.post with the agent's header dict (note the `Content-length` spelling and its
    raw-size value, which requests replaces with the body length), auth ("user", "support"),
    no verify/proxies/timeout arguments, no Transaction-ID;
  * its only success test: a Content-Location header, printed after the hard-coded host.

Usage: python opensvc_replay.py URL TARBALL SVCNAME NODENAME [NAMESPACE]
URL replaces the agent's hard-coded https://sfx.opensvc.com/apis/rest/items.
stdout is what the agent prints; exit status 0 on success, 1 otherwise (as the agent returns).
Lines on stderr starting with "replay:" are diagnostics for the tests, not agent output.
"""
import base64
import json
import sys

try:
    import requests
except ImportError:
    print("uploading the support tarball requires the requests module", file=sys.stderr)
    sys.exit(1)


def support(url, tarball, svcname, nodename, namespace=""):
    print("uploading the support tarball")
    with open(tarball, "rb") as f:
        raw = f.read()
    size = len(raw)
    content = base64.b64encode(raw)
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Filename": "%s_%s_at_%s.tar.gz" % (namespace, svcname, nodename),
        "Content-length": str(size),
        "Content-Range": "bytes 0-%d/%d" % (size - 1, size),
        "Maxlife-Unit": "DAYS",
        "Maxlife-Value": "7",
    }
    resp = requests.post(url, data=content, headers=headers, auth=("user", "support"))
    wire = resp.request.headers
    print("replay: status=%d Content-Length=%s Authorization=%s" % (
        resp.status_code, wire.get("Content-Length"), wire.get("Authorization")), file=sys.stderr)
    loc = resp.headers.get("Content-Location")
    if loc:
        print("uploaded as https://sfx.opensvc.com%s" % loc)
        return
    # The agent's failure path; on Python 3 json.dumps(bytes) raises TypeError, as it does there.
    print(json.dumps(resp.content, indent=4), file=sys.stderr)
    return 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(support(*args))
