#!/usr/bin/python3
"""A one-connection TCP relay that measures the TLS records a server sends its client.

Used by IntegrationTests/ClientShapeTests. After the PostgreSQL SSLRequest answer ('S'), every
byte from the server is a TLS record (5-byte header: type, version, 16-bit length); the largest
record length seen is written to OUTFILE when the connection ends.

usage: tls-record-probe.py LISTEN_PORT TARGET_PORT OUTFILE   (prints READY when listening)
"""
import socket
import sys
import threading

listen_port, target_port, outfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(1)
server.settimeout(60)
print("READY", flush=True)
client, _ = server.accept()
upstream = socket.create_connection(("127.0.0.1", target_port), timeout=60)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
largest, records, pending = 0, 0, b""
seen_answer = False
while True:
    try:
        data = upstream.recv(65536)
    except OSError:
        break
    if not data:
        break
    client.sendall(data)
    pending += data
    if not seen_answer:
        if pending[:1] != b"S":
            break
        seen_answer, pending = True, pending[1:]
    while len(pending) >= 5:
        length = int.from_bytes(pending[3:5], "big")
        if len(pending) < 5 + length:
            break
        largest, records = max(largest, length), records + 1
        pending = pending[5 + length:]
try:
    client.shutdown(socket.SHUT_WR)
except OSError:
    pass
with open(outfile, "w") as f:
    f.write(f"{largest} {records}\n")
