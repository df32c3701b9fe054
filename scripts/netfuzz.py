#!/usr/bin/env python3
"""Network fuzzer for a running Portcullis (docs/FUZZING.md; started by scripts/fuzz.sh).

Logs in through the proxy (TLS, SCRAM-SHA-256) as a read-only and as a read-write identity and
sends mutated message streams: bit flips, length-field corruption, truncation, random message
types, splices of valid Query/Parse/Bind/Describe/Execute/Sync/CopyData/FunctionCall sequences,
pipelined bursts, abrupt resets (RST) and half-closes, plus mutated startup packets, mutated SCRAM
messages and garbage instead of a TLS handshake. A sentinel session stays logged in and must
answer `SELECT 1` between rounds; a fresh login must work every few rounds; at the end the
proxy process must still be alive. Bounded by --rounds and --seconds.

Only 127.0.0.1 and ::1 are ever contacted. On failure the streams of the last rounds are
written (as JSON lines, hex bytes) to --crash-dir; `--replay FILE` sends them again.

    netfuzz.py --port P --ca ca.crt --pid PROXY_PID [--seconds 60] [--rounds 100000] [--seed N]
"""
import argparse, base64, hashlib, hmac, json, os, random, socket, ssl, struct, sys, time

LOOPBACK = ("127.0.0.1", "::1")
IDENTITIES = {"ro": ("app_ro", "app_ro_pw"), "rw": ("app_rw", "app_rw_pw")}


class Failure(Exception):
    pass


def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def msg(t, payload=b""):
    return t.encode() + struct.pack(">i", len(payload) + 4) + payload


def startup_packet(user, database="app", extra=()):
    body = struct.pack(">HH", 3, 0) + cstr("user") + cstr(user) + cstr("database") + cstr(database)
    for k, v in extra:
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack(">i", len(body) + 4) + body


class Conn:
    """One client connection: TCP, SSLRequest, TLS; raw bytes in and out."""

    def __init__(self, args, tls=True):
        self.args = args
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(args.io_timeout)
        raw.connect((args.host, args.port))
        self.raw = raw
        self.sock = raw
        if tls:
            raw.sendall(struct.pack(">iI", 8, 80877103))
            answer = raw.recv(1)
            if answer != b"S":
                raise Failure("SSLRequest answered %r" % answer)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.load_verify_locations(args.ca)
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_message(self, deadline):
        """(type, payload) or None at EOF; raises socket.timeout past the deadline."""
        while True:
            if len(self.buffer) >= 5:
                length = struct.unpack(">i", self.buffer[1:5])[0]
                if len(self.buffer) >= length + 1:
                    t, payload = self.buffer[:1], self.buffer[5:length + 1]
                    self.buffer = self.buffer[length + 1:]
                    return t, payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("deadline")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def drain(self, seconds):
        """Reads whatever comes for `seconds` or until the peer closes; returns (bytes, closed)."""
        deadline = time.monotonic() + seconds
        total = 0
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(65536)
                if not chunk:
                    return total, True
                total += len(chunk)
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        return total, False

    def reset(self):
        """Abortive close: RST instead of FIN."""
        try:
            self.raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.raw.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def scram_login(conn, user, password, deadline, mutate=None):
    """SCRAM-SHA-256 (gs2 flag n) as libpq does it; returns when ReadyForQuery arrives.
    `mutate(bytes) -> bytes`, when given, is applied to both SCRAM messages the client sends."""
    mutate = mutate or (lambda b: b)
    conn.send(startup_packet(user))
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = "n=,r=" + nonce
    server_first = None
    server_signature = None
    while True:
        m = conn.read_message(deadline)
        if m is None:
            raise Failure("closed during login")
        t, payload = m
        if t == b"E":
            raise Failure("login refused: %r" % payload[:200])
        if t == b"R":
            code = struct.unpack(">i", payload[:4])[0]
            if code == 10:
                first = mutate(("n,," + bare).encode())
                conn.send(msg("p", cstr("SCRAM-SHA-256") + struct.pack(">i", len(first)) + first))
            elif code == 11:
                server_first = payload[4:].decode()
                attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
                stored = hashlib.sha256(client_key).digest()
                without_proof = "c=biws,r=" + attrs["r"]
                auth = ",".join([bare, server_first, without_proof]).encode()
                proof = bytes(a ^ b for a, b in zip(client_key, hmac.new(stored, auth, hashlib.sha256).digest()))
                server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
                server_signature = base64.b64encode(hmac.new(server_key, auth, hashlib.sha256).digest()).decode()
                conn.send(msg("p", mutate((without_proof + ",p=" + base64.b64encode(proof).decode()).encode())))
            elif code == 12:
                if payload[4:].decode() != "v=" + server_signature:
                    raise Failure("bad server signature")
            elif code != 0:
                raise Failure("unexpected authentication request %d" % code)
        elif t == b"Z":
            return


def login(args, identity):
    user, password = IDENTITIES[identity]
    conn = Conn(args)
    scram_login(conn, user, password, time.monotonic() + args.login_timeout)
    return conn


def simple_query(conn, sql, seconds):
    """Runs one simple query; returns the list of DataRow first columns, raises on error/timeout."""
    conn.send(msg("Q", cstr(sql)))
    deadline = time.monotonic() + seconds
    rows, error = [], None
    while True:
        m = conn.read_message(deadline)
        if m is None:
            raise Failure("closed during %r" % sql)
        t, payload = m
        if t == b"D":
            n = struct.unpack(">i", payload[2:6])[0]
            rows.append(payload[6:6 + n].decode() if n >= 0 else None)
        elif t == b"E":
            error = payload
        elif t == b"Z":
            if error is not None:
                raise Failure("%r failed: %r" % (sql, error[:200]))
            return rows


# --- message streams -----------------------------------------------------------------------------

QUERIES = [
    "SELECT 1", "SELECT * FROM pg_class LIMIT 3", "select 'a;b'; select 2", "BEGIN", "COMMIT", "ROLLBACK",
    "SELECT pg_sleep(0)", "CREATE TEMP TABLE fz(a int)", "INSERT INTO fz VALUES (1)", "DELETE FROM fz",
    "COPY (SELECT 1) TO STDOUT", "COPY fz FROM STDIN", "SET search_path = public", "RESET ALL",
    "SELECT set_config('search_path', 'x', false)", "DO $$BEGIN END$$", "LISTEN fz", "NOTIFY fz",
    "SELECT 1/0", "SELECT repeat('x', 100000)", "DISCARD ALL", "PREPARE p AS SELECT 1", "EXECUTE p",
    "DEALLOCATE ALL", "SELECT " + "+".join(["1"] * 300), "SELECT " + "(" * 200 + "1" + ")" * 200, "",
    "SELECT $1", "VACUUM", "ALTER SYSTEM SET work_mem = '1MB'", "SELECT 'caf\u00e9'",
]


def i16(*v):
    return b"".join(struct.pack(">h", x) for x in v)


def i32(*v):
    return b"".join(struct.pack(">i", x) for x in v)


def extended(rng, sql):
    name = rng.choice(["", "s1", "s%d" % rng.randrange(100)])
    params = sql.count("$1")
    return [
        msg("P", cstr(name) + cstr(sql) + i16(params) + i32(*([23] * params))),
        msg("B", cstr("") + cstr(name) + i16(0) + i16(params) + b"".join(i32(1) + b"1" for _ in range(params)) + i16(0)),
        msg("D", b"P" + cstr("")),
        msg("E", cstr("") + i32(rng.choice([0, 1]))),
        msg("S"),
    ]


def valid_sequence(rng):
    kind = rng.randrange(6)
    sql = rng.choice(QUERIES)
    if kind == 0:
        return [msg("Q", cstr(sql))]
    if kind == 1:
        return extended(rng, sql)
    if kind == 2:  # COPY FROM STDIN with data, done or failed
        return [msg("Q", cstr("COPY fz FROM STDIN")), msg("d", b"1\n2\n"),
                rng.choice([msg("c"), msg("f", cstr("client gave up"))])]
    if kind == 3:  # stray CopyData / Flush / Close / FunctionCall
        return [rng.choice([msg("d", rng.randbytes(rng.randrange(16))), msg("H"), msg("C", b"S" + cstr("s1")),
                            msg("F", i32(1598) + i16(0) + i16(0) + i16(0)), msg("c")]), msg("S")]
    if kind == 4:  # a long query, up to 64 KB
        return [msg("Q", cstr("SELECT 1 -- " + "x" * rng.randrange(65536)))]
    return [msg("Q", cstr("SELECT %d" % rng.randrange(1000))), msg("X")]


def mutate(rng, messages):
    """Returns (bytes, description)."""
    messages = list(messages)
    ops = []
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(9)
        if op == 0 and messages:  # bit flips
            i = rng.randrange(len(messages))
            b = bytearray(messages[i])
            for _ in range(rng.randrange(1, 8)):
                p = rng.randrange(len(b))
                b[p] ^= 1 << rng.randrange(8)
            messages[i] = bytes(b)
            ops.append("bitflip")
        elif op == 1 and messages:  # length field corruption
            i = rng.randrange(len(messages))
            b = bytearray(messages[i])
            if len(b) >= 5:
                real = struct.unpack(">i", b[1:5])[0]
                new = rng.choice([0, 3, 4, real - 1, real + 1, real + rng.randrange(1, 1 << 16), -1,
                                  0x7FFFFFFF, 64 * 1024 * 1024, 64 * 1024 * 1024 + 1, rng.randrange(-2**31, 2**31)])
                b[1:5] = struct.pack(">i", new)
            messages[i] = bytes(b)
            ops.append("length")
        elif op == 2:  # random message type
            t = bytes([rng.randrange(256)])
            messages.insert(rng.randrange(len(messages) + 1),
                            t + struct.pack(">i", 4 + (n := rng.randrange(32))) + rng.randbytes(n))
            ops.append("type")
        elif op == 3:  # splice in another valid sequence
            other = valid_sequence(rng)
            at = rng.randrange(len(messages) + 1)
            messages[at:at] = other[:rng.randrange(1, len(other) + 1)]
            ops.append("splice")
        elif op == 4:  # pipelined burst
            messages = messages * rng.randrange(2, 60)
            ops.append("burst")
        elif op == 5:  # drop a message (e.g. the Sync)
            if messages:
                del messages[rng.randrange(len(messages))]
            ops.append("drop")
        elif op == 6:  # raw random bytes
            messages.append(rng.randbytes(rng.randrange(1, 64)))
            ops.append("garbage")
        else:
            ops.append("none")
    data = b"".join(messages)
    if rng.random() < 0.25 and data:  # truncation
        data = data[:rng.randrange(len(data))]
        ops.append("truncate")
    return data, "+".join(ops)


# --- rounds ----------------------------------------------------------------------------------------

def round_session(args, rng, identity, record):
    """Logs in, sends one mutated stream, reads, then closes one of three ways."""
    conn = login(args, identity)
    try:
        if identity == "rw" and rng.random() < 0.5:
            try:
                simple_query(conn, "CREATE TEMP TABLE fz(a int)", args.io_timeout)
            except Failure:
                pass
        chunks = []
        for _ in range(rng.randrange(1, 4)):
            data, ops = mutate(rng, valid_sequence(rng))
            chunks.append((data, ops))
        record["kind"] = "session-" + identity
        record["streams"] = [[d.hex(), o] for d, o in chunks]
        for data, _ in chunks:
            try:
                conn.send(data)
            except (OSError, ssl.SSLError):
                break
            conn.drain(rng.choice([0.0, 0.05, 0.3]))
        ending = rng.choice(["reset", "close", "halfclose", "read"])
        record["ending"] = ending
        if ending == "reset":
            conn.reset()
            return
        if ending == "halfclose":
            try:
                conn.raw.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if ending in ("halfclose", "read"):
            conn.drain(0.5)
    finally:
        conn.close()


REFUSED = ["DELETE FROM pg_class", "CREATE TABLE fz_ro(a int)", "VACUUM", "SELECT pg_terminate_backend(1)",
           "COPY pg_class TO '/tmp/x'", "SET default_transaction_read_only = off"]


def round_flood(args, rng, record):
    """The two shapes that once took the whole process down (issue 8, item 1): on a read-only
    session, one message the server answers with FATAL and a close, then hundreds of refused
    statements; or hundreds of refused statements and then a TCP reset."""
    conn = login(args, "ro")
    try:
        flood = b"".join(msg("Q", cstr(rng.choice(REFUSED))) for _ in range(rng.randrange(100, 600)))
        if rng.random() < 0.5:
            # Terminate ends the server side at once; the others draw an error or FATAL from it.
            poison = rng.choice([msg("X"), msg("z"), msg("B", b"\xff" * 7), msg("d", b"x"), msg("E", b"x")])
            record.update(kind="flood-after-fatal", streams=[[(poison + flood).hex(), "poison+flood"]])
            pause = rng.choice([0.0, 0.0, 0.02, 0.2])
            try:
                if pause == 0:
                    conn.send(poison + flood)  # one write: the server closes while the flood is judged
                else:
                    conn.send(poison)
                    time.sleep(pause)
                    conn.send(flood)
            except (OSError, ssl.SSLError):
                pass
            conn.drain(0.5)
            conn.close()
        else:
            record.update(kind="flood-then-reset", streams=[[flood.hex(), "flood"]], ending="reset")
            conn.send(flood)
            time.sleep(rng.choice([0.0, 0.01, 0.1]))
            conn.reset()
    except (OSError, ssl.SSLError):
        conn.close()


def round_preauth(args, rng, record):
    """Mutated startup packet, mutated SCRAM messages, or garbage instead of TLS."""
    choice = rng.randrange(3)
    if choice == 0:
        conn = Conn(args)
        data, ops = mutate(rng, [startup_packet(rng.choice(["app_ro", "app_rw", "nobody"]),
                                                extra=[("application_name", "fz")])])
        data = data[4:] if rng.random() < 0.1 else data
        record.update(kind="startup", streams=[[data.hex(), ops]])
        try:
            conn.send(data)
            conn.drain(0.3)
        except (OSError, ssl.SSLError):
            pass
        (conn.reset if rng.random() < 0.5 else conn.close)()
    elif choice == 1:
        conn = Conn(args)
        flips = rng.randrange(1, 6)

        def scramble(b):
            b = bytearray(b)
            for _ in range(flips):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            return bytes(b[:rng.randrange(1, len(b) + 1)] if rng.random() < 0.3 else b)
        record.update(kind="scram", streams=[["", "flips=%d" % flips]])
        user, password = IDENTITIES[rng.choice(["ro", "rw"])]
        try:
            scram_login(conn, user, password, time.monotonic() + 2, mutate=scramble)
        except (Failure, OSError, ssl.SSLError, socket.timeout, KeyError, ValueError, UnicodeDecodeError):
            pass
        conn.close()
    else:
        conn = Conn(args, tls=False)
        garbage = rng.choice([struct.pack(">iI", 8, 80877103) + rng.randbytes(rng.randrange(1, 512)),
                              rng.randbytes(rng.randrange(1, 512))])
        record.update(kind="raw", streams=[[garbage.hex(), "garbage"]])
        try:
            conn.send(garbage)
            conn.drain(0.2)
        except OSError:
            pass
        (conn.reset if rng.random() < 0.5 else conn.close)()


def proxy_alive(pid):
    if pid is None:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def sentinel_check(sentinel, args, stats):
    started = time.monotonic()
    try:
        rows = simple_query(sentinel, "SELECT 1", args.sentinel_timeout)
    except (Failure, OSError, ssl.SSLError, socket.timeout) as error:
        raise Failure("sentinel session failed: %s" % error)
    if rows != ["1"]:
        raise Failure("sentinel got %r" % rows)
    stats["sentinel_max_ms"] = max(stats["sentinel_max_ms"], (time.monotonic() - started) * 1000)


def run(args):
    rng = random.Random(args.seed)
    stats = {"rounds": 0, "bytes": 0, "sentinel_max_ms": 0.0, "kinds": {}}
    history = []
    sentinel = login(args, "ro")
    deadline = time.monotonic() + args.seconds
    try:
        while stats["rounds"] < args.rounds and time.monotonic() < deadline:
            record = {"round": stats["rounds"]}
            history = (history + [record])[-args.keep:]
            try:
                draw = rng.random()
                if draw < 0.2 and "preauth" not in args.skip:
                    round_preauth(args, rng, record)
                elif 0.2 <= draw < 0.3 and "flood" not in args.skip:
                    round_flood(args, rng, record)
                else:
                    round_session(args, rng, rng.choice(["ro", "rw"]), record)
            except (OSError, ssl.SSLError, socket.timeout) as error:
                record["error"] = str(error)  # the proxy closing a fuzzed session is expected
            except Failure as error:
                # A login that fails outright (not a mutated one) is a health failure.
                raise Failure("round %d: %s" % (stats["rounds"], error))
            stats["rounds"] += 1
            stats["bytes"] += sum(len(s[0]) // 2 for s in record.get("streams", []))
            stats["kinds"][record.get("kind", "?")] = stats["kinds"].get(record.get("kind", "?"), 0) + 1
            if not proxy_alive(args.pid):
                raise Failure("proxy process %d is gone after round %d" % (args.pid, record["round"]))
            sentinel_check(sentinel, args, stats)
            if stats["rounds"] % 25 == 0:
                login(args, rng.choice(["ro", "rw"])).close()
        time.sleep(0.5)  # a crash the last round caused may take a moment
        if not proxy_alive(args.pid):
            raise Failure("proxy process %d is gone after the last round" % args.pid)
        sentinel_check(sentinel, args, stats)
        fresh = login(args, "rw")
        simple_query(fresh, "SELECT 1", args.sentinel_timeout)
        fresh.close()
        if not proxy_alive(args.pid):
            raise Failure("proxy process %d is gone at the end" % args.pid)
    except Failure as error:
        path = save(args, history)
        print("netfuzz: FAILED: %s\nnetfuzz: last %d rounds saved to %s (replay: %s --replay %s ...)"
              % (error, len(history), path, sys.argv[0], path), file=sys.stderr)
        print("netfuzz: stats %s" % json.dumps(stats), file=sys.stderr)
        return 1
    print("netfuzz: ok: %d rounds, %d bytes of fuzzed stream, sentinel max %.1f ms, %s"
          % (stats["rounds"], stats["bytes"], stats["sentinel_max_ms"], json.dumps(stats["kinds"])))
    return 0


def save(args, history):
    os.makedirs(args.crash_dir, exist_ok=True)
    path = os.path.join(args.crash_dir, "netfuzz-%d-seed%s.jsonl" % (int(time.time()), args.seed))
    with open(path, "w") as f:
        for record in history:
            f.write(json.dumps(record) + "\n")
    return path


def replay(args):
    """Sends each saved round's streams again on a fresh logged-in session of the same kind."""
    try:
        return replay_rounds(args)
    except Failure as error:
        print("netfuzz: FAILED on replay: %s" % error, file=sys.stderr)
        return 1


def replay_rounds(args):
    sentinel = login(args, "ro")
    stats = {"sentinel_max_ms": 0.0}
    rounds = 0
    for line in open(args.replay):
        record = json.loads(line)
        kind = record.get("kind", "")
        try:
            if kind.startswith("session-"):
                conn = login(args, kind.split("-", 1)[1])
            elif kind.startswith("flood-"):
                conn = login(args, "ro")
            else:
                conn = Conn(args, tls=(kind != "raw"))
            for data, _ in record.get("streams", []):
                if data:
                    conn.send(bytes.fromhex(data))
                    conn.drain(0.3)
            conn.reset() if record.get("ending") == "reset" else conn.close()
        except (OSError, ssl.SSLError, socket.timeout, Failure) as error:
            print("netfuzz: round %s: %s" % (record.get("round"), error))
        time.sleep(0.5)
        if not proxy_alive(args.pid):
            raise Failure("proxy process %d is gone after round %s" % (args.pid, record.get("round")))
        sentinel_check(sentinel, args, stats)
        rounds += 1
        print("netfuzz: round %s replayed; sentinel ok" % record.get("round"))
    print("netfuzz: replayed %d rounds, sentinel max %.1f ms" % (rounds, stats["sentinel_max_ms"]))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True, help="CA certificate that signed the proxy's certificate")
    p.add_argument("--pid", type=int, help="the proxy's process id, checked after every round")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rounds", type=int, default=100000)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--keep", type=int, default=20, help="rounds of history saved on failure")
    p.add_argument("--crash-dir", default="Fuzz/.work/crashes/netfuzz")
    p.add_argument("--io-timeout", type=float, default=5)
    p.add_argument("--login-timeout", type=float, default=10)
    p.add_argument("--sentinel-timeout", type=float, default=5)
    p.add_argument("--replay")
    p.add_argument("--skip", default="", help="comma-separated round kinds to leave out: preauth, flood")
    args = p.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    if args.host not in LOOPBACK:
        p.error("only 127.0.0.1 and ::1 may be fuzzed")
    print("netfuzz: seed %d, %s port %d, up to %d rounds / %.0f s" % (args.seed, args.host, args.port, args.rounds, args.seconds))
    return replay(args) if args.replay else run(args)


if __name__ == "__main__":
    sys.exit(main())
