#!/usr/bin/env python3
"""A reverse proxy in front of an S3-compatible test server (moto) that checks every request's
AWS Signature Version 4 the way S3 does, because moto itself does not:

    sigv4-proxy.py LISTEN_PORT UPSTREAM_PORT ACCESS_KEY SECRET_KEY [FAULTS]

The canonical request is rebuilt from what arrived, following "Create a canonical request for
Signature Version 4" (AWS IAM User Guide): the method; the path as sent (S3 does not normalise
or re-encode it); the query decoded, re-encoded with only A-Z a-z 0-9 - . _ ~ left as they are,
sorted by name, every pair as name=value; the signed headers, lower-case, trimmed; the
signed-header list; and the payload hash from x-amz-content-sha256, which must also be the
SHA-256 of the body that arrived. A request with a wrong access key, scope, signature or
payload hash is answered 403 with S3's error document and never reaches the server behind;
every other one is forwarded unchanged. One line per request on stdout: OK or the reason.
Standard library only (runs under /usr/bin/python3).

FAULTS (optional, for the retry tests) makes the first N correctly signed requests of a kind
fail before they reach the server: `kind=N:what,...`, kind one of create (CreateMultipartUpload),
part (UploadPart), complete (CompleteMultipartUpload), list (either listing), get (an object),
head, put (a whole object), delete; what an HTTP status (500, 503 answers S3's SlowDown, 429,
403, 404 ...), `reset` (the connection is reset without an answer) or `hold` (never answered
nor forwarded: the connection stays open until the client goes away, so a test can kill a run
while that request is provably in flight). N may be `S+N`: the first S requests of the kind
pass, the N after them fail. The log line says `FAULT <what>`.
"""
import hashlib
import hmac
import io
import socket
import struct
import threading
import http.client
import http.server
import socketserver
import sys
import urllib.parse

# The server is threaded: one write per line under a lock, or two requests' lines run together
# (print writes the text and the newline apart; seen as "…: OKPUT …" failing a test).
_log_lock = threading.Lock()


def log(line):
    with _log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

LISTEN, UPSTREAM, ACCESS_KEY, SECRET_KEY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
FAULTS = {}
for spec in (sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []):
    kind, _, rest = spec.partition("=")
    count, _, what = rest.partition(":")
    skip, _, count = count.rpartition("+")
    FAULTS[kind] = [int(skip or 0), int(count), what]
FAULT_LOCK = threading.Lock()


def kind_of(method, target):
    path, _, query = target.partition("?")
    names = {item.partition("=")[0] for item in query.split("&") if item}
    if method == "POST":
        return "create" if "uploads" in names else "complete"
    if method == "PUT":
        return "part" if "partNumber" in names else "put"
    if method == "GET":
        return "list" if ("list-type" in names or "uploads" in names) else "get"
    return method.lower()


def take_fault(method, target):
    with FAULT_LOCK:
        fault = FAULTS.get(kind_of(method, target))
        if not fault:
            return None
        if fault[0] > 0:
            fault[0] -= 1
            return None
        if fault[1] <= 0:
            return None
        fault[1] -= 1
        return fault[2]

ERROR_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown", 504: "GatewayTimeout", 429: "SlowDown",
               403: "AccessDenied", 404: "NoSuchKey"}


def encode(text):
    return urllib.parse.quote(text, safe="-_.~")


def canonical_query(query):
    pairs = []
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        pairs.append((encode(urllib.parse.unquote(name)), encode(urllib.parse.unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def check(method, target, headers, body):
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    credential = fields["Credential"].split("/")
    if credential[0] != ACCESS_KEY:
        return "InvalidAccessKeyId"
    scope = "/".join(credential[1:])
    if credential[3:] != ["s3", "aws4_request"]:
        return f"bad scope {scope}"
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "XAmzContentSHA256Mismatch"
    signed = fields["SignedHeaders"].split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed:
            return f"{required} not signed"
    path, _, query = target.partition("?")
    canonical = "\n".join([method, path, canonical_query(query)]
                          + [f"{h}:{' '.join(headers.get(h, '').split())}" for h in signed]
                          + ["", ";".join(signed), payload])
    date = headers["x-amz-date"]
    if credential[1] != date[:8]:
        return "date of the scope is not the date of x-amz-date"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in credential[1:]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        return "SignatureDoesNotMatch (canonical request:\n" + canonical + "\n)"
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        problem = check(self.command, self.path, headers, body)
        if problem:
            log(f"{self.command} {self.path}: {problem}")
            code = problem.split(" ")[0]
            reply = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                     f"<Message>The request signature we calculated does not match the signature you provided.</Message></Error>").encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        fault = take_fault(self.command, self.path)
        if fault:
            log(f"{self.command} {self.path}: FAULT {fault}")
            if fault == "hold":
                # Until the client closes its end (or 10 minutes pass): then no answer at all.
                self.connection.settimeout(600)
                try:
                    while self.connection.recv(4096):
                        pass
                except OSError:
                    pass
                self.close_connection = True
                return
            if fault == "reset":
                # SO_LINGER 0: close() sends RST, the client sees the connection reset.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.wfile = io.BytesIO()
                self.close_connection = True
                return
            status = int(fault)
            reply = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{ERROR_CODES.get(status, "Fault")}</Code>'
                     f"<Message>injected by the test</Message></Error>").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(reply)))
            if status in (429, 503):
                self.send_header("Retry-After", "1")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        forward = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "expect")}
        upstream.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None, headers=forward)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(name, value)
        # HEAD keeps the object's length; every other answer carries its body.
        self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()
        log(f"{self.command} {self.path}: OK")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", LISTEN), Handler).serve_forever()
