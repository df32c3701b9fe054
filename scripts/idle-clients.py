#!/usr/bin/env python3
"""Hold N idle, authenticated PostgreSQL connections over TLS (for scripts/bench-scale.sh).

    idle-clients.py --port P --count N --ca CA.crt [--host localhost] [--addr 127.0.0.1]
                    [--user app_rw] [--password-env PGPASSWORD] [--database app]
                    [--concurrency 32] [--status FILE] [--query-after]

Each connection sends an SSLRequest, does a TLS handshake with verify-full semantics (the
server certificate must chain to --ca and name --host), sends a StartupMessage and completes a
SCRAM-SHA-256 login (RFC 5802/7677 as PostgreSQL's protocol-flow "SASL Authentication" section
describes it, without channel binding), checks the server signature, and waits for
ReadyForQuery. Then it sits idle. At most --concurrency logins run at once (a proxy limits
start-ups per address). When all are in, a line `ready OK FAILED SECONDS` goes to --status
(and stdout); the process then waits for SIGTERM or SIGINT. With --query-after it first runs
`SELECT 1` on every held connection (again at most --concurrency at once) and writes
`queried OK FAILED SECONDS` before stopping; then each connection sends Terminate and closes.
Python's standard library only, so it runs with /usr/bin/python3.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import signal
import ssl
import struct
import sys
import time


class LoginError(Exception):
    pass


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


async def read_message(reader):
    head = await reader.readexactly(5)
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    if length < 4 or length > 1 << 20:
        raise LoginError(f"bad message length {length}")
    return kind, await reader.readexactly(length - 4)


def error_text(body: bytes) -> str:
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[part[:1]] = part[1:].decode("utf-8", "replace")
    return f"{fields.get(b'C', '?')} {fields.get(b'M', '')}"


# SaltedPassword depends only on (password, salt, iterations): computed once per pair, as a
# client may (PgBouncer picks a fresh salt per login for a plaintext auth_file entry, a proxy
# serving stored verifiers the same one every time).
_salted_cache = {}


def salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    key = (salt, iterations)
    value = _salted_cache.get(key)
    if value is None:
        value = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
        if len(_salted_cache) < 64:
            _salted_cache[key] = value
    return value


class Client:
    def __init__(self, args, context):
        self.args = args
        self.context = context
        self.reader = None
        self.writer = None

    async def connect(self):
        a = self.args
        reader, writer = await asyncio.open_connection(a.addr, a.port)
        writer.write(struct.pack("!II", 8, 80877103))  # SSLRequest
        await writer.drain()
        answer = await reader.readexactly(1)
        if answer != b"S":
            writer.close()
            raise LoginError(f"server refused TLS ({answer!r})")
        await writer.start_tls(self.context, server_hostname=a.host)
        self.reader, self.writer = reader, writer
        params = b"user\0" + a.user.encode() + b"\0database\0" + a.database.encode() + b"\0"
        params += b"application_name\0idle-clients\0\0"
        writer.write(struct.pack("!II", len(params) + 8, 196608) + params)
        await writer.drain()
        await self.authenticate()

    async def authenticate(self):
        password = self.args.password.encode()
        nonce = base64.b64encode(os.urandom(18)).decode()
        client_first_bare = f"n=,r={nonce}"
        server_first = None
        server_signature = None
        while True:
            kind, body = await read_message(self.reader)
            if kind == b"E":
                raise LoginError(error_text(body))
            if kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    if server_signature is None:
                        raise LoginError("AuthenticationOk without a SCRAM exchange")
                elif code == 10:  # AuthenticationSASL: mechanism list
                    mechanisms = body[4:].split(b"\0")
                    if b"SCRAM-SHA-256" not in mechanisms:
                        raise LoginError(f"no SCRAM-SHA-256 in {mechanisms}")
                    first = ("n,," + client_first_bare).encode()
                    self.writer.write(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
                    await self.writer.drain()
                elif code == 11:  # AuthenticationSASLContinue: server-first-message
                    server_first = body[4:].decode()
                    attrs = dict(item.split("=", 1) for item in server_first.split(","))
                    if not attrs["r"].startswith(nonce):
                        raise LoginError("server nonce does not extend ours")
                    salted = salted_password(password, base64.b64decode(attrs["s"]), int(attrs["i"]))
                    client_key = hmac.digest(salted, b"Client Key", "sha256")
                    stored_key = hashlib.sha256(client_key).digest()
                    final_bare = f"c=biws,r={attrs['r']}"
                    auth_message = f"{client_first_bare},{server_first},{final_bare}".encode()
                    signature = hmac.digest(stored_key, auth_message, "sha256")
                    proof = bytes(x ^ y for x, y in zip(client_key, signature))
                    server_key = hmac.digest(salted, b"Server Key", "sha256")
                    server_signature = hmac.digest(server_key, auth_message, "sha256")
                    final = f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
                    self.writer.write(message(b"p", final))
                    await self.writer.drain()
                elif code == 12:  # AuthenticationSASLFinal
                    attrs = dict(item.split("=", 1) for item in body[4:].decode().split(","))
                    if server_signature is None or base64.b64decode(attrs.get("v", "")) != server_signature:
                        raise LoginError("wrong server signature")
                else:
                    raise LoginError(f"unexpected authentication request {code}")
            elif kind == b"Z":
                return
            # ParameterStatus, BackendKeyData, NoticeResponse: nothing to do.

    async def select_one(self):
        self.writer.write(message(b"Q", b"SELECT 1\0"))
        await self.writer.drain()
        rows = 0
        while True:
            kind, body = await read_message(self.reader)
            if kind == b"E":
                raise LoginError(error_text(body))
            if kind == b"D":
                rows += 1
            if kind == b"Z":
                if rows != 1:
                    raise LoginError(f"{rows} rows")
                return

    def close(self):
        if self.writer is not None:
            try:
                self.writer.write(message(b"X", b""))
                self.writer.close()
            except Exception:
                pass


async def bounded(items, concurrency, action):
    """Runs action(item) for each item, at most `concurrency` at once; returns (ok, errors)."""
    semaphore = asyncio.Semaphore(concurrency)
    errors = []

    async def one(item):
        async with semaphore:
            try:
                await action(item)
                return True
            except Exception as e:  # one failure is counted, not fatal
                if len(errors) < 5:
                    errors.append(f"{type(e).__name__}: {e}")
                return False

    results = await asyncio.gather(*(one(i) for i in items))
    return sum(results), errors


def report(args, line):
    print(line, flush=True)
    if args.status:
        with open(args.status + ".tmp", "w") as f:
            f.write(line + "\n")
        os.replace(args.status + ".tmp", args.status)


async def main(args):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    clients = [Client(args, context) for _ in range(args.count)]
    start = time.monotonic()
    ok, errors = await bounded(clients, args.concurrency, lambda c: c.connect())
    for e in errors:
        print(f"idle-clients: {e}", file=sys.stderr)
    held = [c for c in clients if c.reader is not None]
    report(args, f"ready {ok} {args.count - ok} {time.monotonic() - start:.1f}")
    await stop.wait()
    if args.query_after:
        start = time.monotonic()
        live = [c for c in held]
        qok, qerrors = await bounded(live, args.concurrency, lambda c: c.select_one())
        for e in qerrors:
            print(f"idle-clients: query: {e}", file=sys.stderr)
        report(args, f"queried {qok} {len(live) - qok} {time.monotonic() - start:.1f}")
    for c in clients:
        c.close()
    await asyncio.sleep(0.5)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--host", default="localhost", help="name the server certificate must carry")
    p.add_argument("--addr", default="127.0.0.1", help="address to connect to")
    p.add_argument("--user", default="app_rw")
    p.add_argument("--database", default="app")
    p.add_argument("--password-env", default="PGPASSWORD")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--status")
    p.add_argument("--query-after", action="store_true",
                   help="after the stop signal, run SELECT 1 on every held connection first")
    a = p.parse_args()
    a.password = os.environ.get(a.password_env, "")
    asyncio.run(main(a))
