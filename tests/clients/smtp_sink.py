#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for tests/alerts.rs, on 127.0.0.1 only.

    smtp_sink.py OUTDIR [--auth LOGIN:PASSWORD]

Listens on a free port of 127.0.0.1, prints `listening PORT` on stdout once it accepts
connections, and stores every accepted message as OUTDIR/msg-N.json (written to a temporary
name, then renamed, so a reader never sees half a file):

    {"mail_from", "rcpt_tos", "auth", "subject", "from", "to", "message_id", "text", "raw"}

`text` is the decoded text/plain body, `auth` the "login:password" the client authenticated
with (null without AUTH). With --auth, AUTH PLAIN/LOGIN is offered without TLS and only that
login and password are accepted (mail without authentication is then refused).

Needs aiosmtpd: Debian's python3-aiosmtpd (with /usr/bin/python3) or `pip install aiosmtpd`.
Exits 3 when aiosmtpd cannot be imported, so tests can tell "not installed" from a crash.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import warnings

# "Requiring AUTH while not requiring TLS": deliberate, this sink only listens on 127.0.0.1.
warnings.simplefilter("ignore")

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError as e:  # pragma: no cover - reported to the test
    print(f"aiosmtpd is not available: {e}", file=sys.stderr)
    sys.exit(3)


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        auth = session.auth_data
        if isinstance(auth, LoginPassword):
            auth = f"{auth.login.decode()}:{auth.password.decode()}"
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth": auth,
            "subject": str(msg["subject"] or ""),
            "from": str(msg["from"] or ""),
            "to": str(msg["to"] or ""),
            "message_id": str(msg["message-id"] or ""),
            "text": body.get_content() if body is not None else "",
            "raw": raw.decode("utf-8", "replace"),
        }
        self.count += 1
        final = os.path.join(self.outdir, f"msg-{self.count}.json")
        tmp = final + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, final)
        return "250 Message accepted for delivery"


async def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    outdir = args[0]
    credentials = None
    if len(args) == 3 and args[1] == "--auth":
        login, _, password = args[2].partition(":")
        credentials = (login.encode(), password.encode())
    os.makedirs(outdir, exist_ok=True)
    handler = Sink(outdir)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            credentials is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == credentials
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    def factory():
        if credentials is None:
            return SMTP(handler, hostname="sink.test")
        return SMTP(
            handler,
            hostname="sink.test",
            authenticator=authenticator,
            auth_require_tls=False,
            auth_required=True,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
