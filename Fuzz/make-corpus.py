#!/usr/bin/env python3
"""Writes the committed seed corpora under Fuzz/Corpus/<target>/ from the test suite's own
messages and fixture files (docs/FUZZING.md). Re-run after changing the fixtures:

    python3 Fuzz/make-corpus.py

Binary seeds (startup packets, frames) are built here with the layouts the Wire tests use;
SCRAM seeds follow the RFC 7677 exchange the Auth tests use (with a computed -PLUS variant);
the pg_hba/pg_ident, configuration and SQL seeds are the fixture files (SQL split into one
statement per seed, plus pairs for the cache property)."""
import base64, hashlib, hmac, os, shutil, struct, sys

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(repo, "Fuzz", "Corpus")


def reset(target):
    path = os.path.join(out, target)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write(directory, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def cstr(s):
    return s.encode() + b"\0"


# --- startup ---------------------------------------------------------------------------------
def startup(params, major=3, minor=0):
    body = struct.pack(">HH", major, minor) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack(">i", len(body) + 4) + body


def special(code, extra=b""):
    return struct.pack(">iI", 8 + len(extra), code) + extra


libpq = startup([("user", "alice"), ("database", "app"), ("application_name", "psql"), ("client_encoding", "UTF8")])
d = reset("startup")
write(d, "libpq", libpq)
write(d, "ssl-request", special(80877103))
write(d, "gssenc-request", special(80877104))
write(d, "cancel-4", special(80877102, struct.pack(">i", 12345) + bytes([1, 2, 3, 4])))
write(d, "cancel-32", special(80877102, struct.pack(">i", 7) + bytes(range(32))))
write(d, "ssl-then-startup", special(80877103) + libpq)
write(d, "protocol-3.2", startup([("user", "u"), ("_pq_.x", "1")], minor=2))
write(d, "protocol-2", struct.pack(">iI", 9, 2 << 16) + b"\0")
write(d, "replication", startup([("user", "rep"), ("replication", "database"), ("options", "-c search_path=x")]))
write(d, "no-terminator", struct.pack(">iI", 8 + 11, 196608) + b"user\0alice\0")
write(d, "after-terminator", struct.pack(">iI", 8 + 15, 196608) + b"user\0alice\0\0x\0")
write(d, "too-large", bytes([0x7F, 0xFF, 0xFF, 0xFF, 0]))
write(d, "utf8-values", startup([("user", "\u00e9l\u00e8ve"), ("database", "\u65e5\u672c")]))


# --- frames ----------------------------------------------------------------------------------
def msg(t, payload=b""):
    return t.encode() + struct.pack(">i", len(payload) + 4) + payload


def i16(*v):
    return b"".join(struct.pack(">h", x) for x in v)


def i32(*v):
    return b"".join(struct.pack(">i", x) for x in v)


frontend = [
    msg("Q", cstr("SELECT 1; SELECT 'a;b'")),
    msg("P", cstr("s1") + cstr("SELECT $1") + i16(1) + i32(23)),
    msg("B", cstr("") + cstr("s1") + i16(1, 0) + i16(2) + i32(2) + b"42" + i32(-1) + i16(1, 1)),
    msg("E", cstr("") + i32(0)),
    msg("D", b"P" + cstr("")),
    msg("C", b"S" + cstr("s1")),
    msg("S"), msg("H"),
    msg("d", bytes([1, 2, 3])), msg("c"), msg("f", cstr("no")),
    msg("F", i32(954) + i16(1, 1) + i16(1) + i32(4) + bytes([0, 0, 0, 1]) + i16(1)),
    msg("X"),
]
backend = [
    msg("R", i32(0)), msg("R", i32(10) + cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + b"\0"),
    msg("R", i32(5) + bytes([1, 2, 3, 4])), msg("R", i32(11) + b"r=abc"), msg("R", i32(12) + b"v=xyz"),
    msg("S", cstr("server_version") + cstr("15.18")), msg("K", i32(4242) + bytes([9, 8, 7, 6])),
    msg("Z", b"I"), msg("Z", b"T"), msg("Z", b"E"),
    msg("E", b"SFATAL\0C28P01\0Mpassword authentication failed for user \"x\"\0\0"),
    msg("N", b"SNOTICE\0C00000\0Mhi\0Dd\0Hh\0\0"),
    msg("v", i32(0, 2) + cstr("_pq_.a") + cstr("_pq_.b")),
    msg("C", cstr("SELECT 1")), msg("I"), msg("1"), msg("2"), msg("3"), msg("n"), msg("s"),
    msg("A", i32(7) + cstr("c") + cstr("p")), msg("c"),
    msg("T", i16(1) + cstr("a") + i32(0) + i16(0) + i32(23) + i16(4) + i32(-1) + i16(0)),
    msg("D", i16(1) + i32(1) + b"1"),
]
sasl = [
    msg("p", cstr("SCRAM-SHA-256") + i32(11) + b"n,,n=,r=abc"),
    msg("p", cstr("SCRAM-SHA-256") + i32(-1)),
    msg("p", b"c=biws"),
    msg("p", cstr("md5abc")),
]
d = reset("frames")
write(d, "frontend-all", b"\x00" + b"".join(frontend))
write(d, "frontend-all-chunk3", b"\x02" + b"".join(frontend))
write(d, "backend-all", b"\x00" + b"".join(backend))
write(d, "backend-all-small-limit", b"\x85" + b"".join(backend))
write(d, "sasl", b"\x01" + b"".join(sasl))
write(d, "extended-pipeline", b"\x07" + (frontend[1] + frontend[2] + frontend[4] + frontend[3] + frontend[6]) * 3)
for i, m in enumerate(frontend):
    write(d, "frontend-%02d-%s" % (i, chr(m[0])), b"\x00" + m)
for i, m in enumerate(backend):
    write(d, "backend-%02d-%s" % (i, chr(m[0])), b"\x00" + m)
write(d, "huge-length", b"\x00Q\x7f\xff\xff\xff")
write(d, "short-length", b"\x00Q\x00\x00\x00\x03")
write(d, "sync-trailing", b"\x00S\x00\x00\x00\x05\x00")
write(d, "unterminated-query", b"\x00Q\x00\x00\x00\x06ab\x00")
write(d, "parse-65535-types", b"\x00" + msg("P", cstr("") + cstr("SELECT 1") + struct.pack(">H", 65535) + i32(0) * 8))


# --- SCRAM (RFC 7677 exchange; "pencil") ------------------------------------------------------
def scram(client_nonce, server_nonce, gs2, binding=b""):
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    bare = "n=user,r=" + client_nonce
    first = gs2 + bare
    server_first = "r=%s%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" % (client_nonce, server_nonce)
    without_proof = "c=%s,r=%s%s" % (base64.b64encode(gs2.encode() + binding).decode(), client_nonce, server_nonce)
    auth = ",".join([bare, server_first, without_proof]).encode()
    proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored, auth, hashlib.sha256).digest()))
    final = without_proof + ",p=" + base64.b64encode(proof).decode()
    server_final = "v=" + base64.b64encode(hmac.new(server_key, auth, hashlib.sha256).digest()).decode()
    return first, server_first, final, server_final


cb = hashlib.sha256(b"certificate").digest()
plain = scram("rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "n,,")
plus = scram("rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "p=tls-server-end-point,,", cb)
yflag = scram("rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "y,,")
assert plain[2].endswith("p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), "RFC 7677 vector"
d = reset("scram")
write(d, "server-rfc7677", "S\nSCRAM-SHA-256\n%s\n%s" % (plain[0], plain[2]))
write(d, "server-rfc7677-then-more", "S\nSCRAM-SHA-256\n%s\n%s\nc=biws" % (plain[0], plain[2]))
write(d, "server-empty-initial", "S\nSCRAM-SHA-256\n-\n%s\n%s" % (plain[0], plain[2]))
write(d, "server-plus", "T\nSCRAM-SHA-256-PLUS\n%s\n%s" % (plus[0], plus[2]))
write(d, "server-y-flag-tls", "T\nSCRAM-SHA-256\n%s\n%s" % (yflag[0], yflag[2]))
write(d, "server-unknown-role", "U\nSCRAM-SHA-256\n%s\n%s" % (plain[0], plain[2]))
write(d, "server-extension", "S\nSCRAM-SHA-256\nn,,n=user,r=abc,x=ext\nc=biws,r=abc%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,y=1,p=AAAA")
write(d, "server-authzid", "S\nSCRAM-SHA-256\nn,a=bob,n=user,r=abc")
write(d, "client-rfc7677", "C\n%s\n%s" % (plain[1], plain[3]))
write(d, "client-server-error", "C\ne=invalid-proof")
write(d, "client-y", "Y\n%s\n%s" % (yflag[1], yflag[3]))
write(d, "client-plus", "P\n%s\n%s" % (plus[1], plus[3]))
write(d, "verifier", "V\nSCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\ncGVuY2ls\nabc=")

# --- pg_hba.conf / pg_ident.conf ---------------------------------------------------------------
fixtures = os.path.join(repo, "Tests", "AccessTests", "Fixtures")
d = reset("access")
for root, _, files in os.walk(fixtures):
    for name in sorted(files):
        if name.endswith((".conf", ".list")):
            rel = os.path.relpath(os.path.join(root, name), fixtures).replace("/", "_")
            shutil.copy(os.path.join(root, name), os.path.join(d, rel))
write(d, "includes", "include_dir conf.d\ninclude_if_exists missing.conf\ninclude loop.conf\n"
      "host all @users.list 10.0.0.0/8 md5\nhost all all samenet trust\n")
write(d, "self-include", "include pg_hba.conf\nlocal all all trust\n")
write(d, "ip-lines", "127.1\n::ffff:1.2.3.4\nfe80::1\n10\n0x7f.1\n")

# --- configuration -----------------------------------------------------------------------------
d = reset("config")
for name in sorted(os.listdir(os.path.join(repo, "Tests", "ConfigTests", "Fixtures"))):
    shutil.copy(os.path.join(repo, "Tests", "ConfigTests", "Fixtures", name), os.path.join(d, name))
shutil.copy(os.path.join(repo, "conf", "portcullis.ini"), os.path.join(d, "conf-portcullis.ini"))
write(d, "connection-strings", "host=::1 port=5432 dbname='a b' password='it\\'s' sslmode=verify-full\n"
      "host=/tmp application_name=x options='-c search_path=a\\\\b'\n")

# --- SQL ---------------------------------------------------------------------------------------
d = reset("classifier")
sqldir = os.path.join(repo, "Tests", "PolicyTests", "Fixtures")
count = 0
for name in sorted(os.listdir(sqldir)):
    text = open(os.path.join(sqldir, name), encoding="utf-8").read()
    for i, statement in enumerate(s.strip() for s in text.split("\n-- ----\n")):
        if statement and len(statement.encode()) <= 4096:
            write(d, "%s-%03d" % (name[:-4], i), statement)
            count += 1
pairs = [
    ("SELECT set_config('search_path', 'x', false)", "SELECT set_config('role', 'x', false)"),
    ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 2"),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", "EXPLAIN (ANALYZE true) DELETE FROM t"),
    ("SET TRANSACTION READ ONLY", "SET TRANSACTION READ WRITE"),
    ("select 1; select 2", "select 1; delete from t"),
    ("SELECT $1::int", "SELECT 1::int"),
]
for i, (a, b) in enumerate(pairs):
    write(d, "pair-%02d" % i, a.encode() + b"\0" + b.encode())
# Moderate nesting (about 1 KB), so mutations reach the deep shapes of issue 8 item 2 quickly.
deep = {
    "operator-chain": "SELECT " + "1+" * 500 + "1",
    "subselects": "SELECT " + "(SELECT " * 100 + "1" + ")" * 100,
    "arrays": "SELECT " + "ARRAY[" * 200 + "1" + "]" * 200,
    "case": "SELECT " + "CASE WHEN true THEN " * 40 + "1" + " END" * 40,
    "not": "SELECT " + "NOT " * 250 + "true",
    "jsonb": "SELECT '" + "[" * 500 + "]" * 500 + "'::jsonb",
    "in-list": "SELECT * FROM t WHERE a IN (" + ",".join(str(i) for i in range(250)) + ")",
}
for name, sql in deep.items():
    write(d, "deep-" + name, sql)
print("make-corpus: wrote %s (%d SQL statements)" % (out, count))
