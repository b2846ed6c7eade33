"""Runs the real bepasty-client-cli 0.3.0 (PyPI) unchanged, with one fix to its environment.

Usage: <venv>/bin/python bcc_run.py [bepasty-cli options] [FILE]

0.3.0 passes an int as the Content-Length header value; requests >= 2.11 rejects that
(`InvalidHeader`) and requests < 2.11 does not import on current Python. This launcher only
turns int header values into strings, then calls the packaged entry point. Nothing else about
the client changes (see shared/reference/clients.md section 9.1).

For the tests, with BCC_TRACE=<file> set, every request the client sends and the status and
headers of its answer are appended to <file>, one JSON object a line. This only observes.
"""
import json
import os

import requests.models
import requests.sessions

_orig = requests.models.PreparedRequest.prepare_headers


def _prep(self, headers):
    if headers:
        headers = {k: (str(v) if isinstance(v, int) else v) for k, v in headers.items()}
    return _orig(self, headers)


requests.models.PreparedRequest.prepare_headers = _prep

_trace = os.environ.get("BCC_TRACE")
if _trace:
    _send = requests.sessions.Session.send

    def _traced(self, request, **kwargs):
        response = _send(self, request, **kwargs)
        body = request.body or b""
        with open(_trace, "a") as f:
            f.write(json.dumps({
                "method": request.method,
                "url": request.url,
                "headers": dict(request.headers),
                "body_len": len(body),
                "status": response.status_code,
                "response_headers": dict(response.headers),
            }) + "\n")
        return response

    requests.sessions.Session.send = _traced

from bepasty_cli.cli import main  # noqa: E402

main()
