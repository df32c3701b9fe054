#!/usr/bin/env python3
"""Asks a real PostgreSQL which pg_hba.conf line matches each connection attempt.

    scripts/hba-oracle.py DATADIR PORT HBA_FILE ATTEMPTS_FILE

DATADIR/PORT: a running cluster from scripts/pg-cluster.sh (its pg_hba.conf is replaced during
the run and restored afterwards). HBA_FILE: a PostgreSQL-15-compatible file whose methods are
all `trust`; files it references with @ must already sit in DATADIR. ATTEMPTS_FILE: rows
"kind | address | database | user | replication" as in Tests/AccessTests/Fixtures/*.attempts.

Method: the file is loaded five times; in run k every line whose number has bit k set becomes
`reject`. An attempt answered "pg_hba.conf rejects ..." in run k has bit k set in its line
number; "no pg_hba.conf entry" means no line matched. Prints each row with "| FILE:LINE" or
"| none" appended. Used to produce Tests/AccessTests/Fixtures/hba_oracle.attempts.
"""
import os, shutil, subprocess, sys, time

datadir, port, hba_path, attempts_path = sys.argv[1:5]
bindir = "/usr/lib/postgresql/15/bin"
source = open(hba_path).read().split("\n")
logical_start, current = {}, None
for number, text in enumerate(source, 1):
    current = current or number
    logical_start[number] = current
    if not text.endswith("\\"):
        current = None
rows = [r for r in open(attempts_path).read().split("\n") if r.strip() and not r.startswith("#")]


def variant(bit):
    out = []
    for number, text in enumerate(source, 1):
        if text.rstrip().endswith("trust") and (logical_start[number] >> bit) & 1:
            text = text.rstrip()[:-len("trust")] + "reject"
        out.append(text)
    return "\n".join(out)


def attempt(row):
    kind, address, database, user, replication = [c.strip() for c in row.split("|")[:5]]
    parts = [f"host={datadir if kind == 'local' else address}", f"port={port}", f"user='{user}'",
             "gssencmode=disable", "connect_timeout=5"]
    parts += {"host": ["sslmode=disable"], "hostssl": ["sslmode=require"]}.get(kind, [])
    parts.append("replication=true" if replication == "yes" else f"dbname='{database}'")
    result = subprocess.run(["psql", "-X", " ".join(parts), "-Atc", "select 1"], capture_output=True, text=True)
    text = result.stdout + result.stderr
    return "reject" if "rejects" in text else "none" if "no pg_hba.conf entry" in text else "accept"


hba_conf = os.path.join(datadir, "pg_hba.conf")
shutil.copy(hba_conf, hba_conf + ".oracle-backup")
line_of = {row: 0 for row in rows}
unmatched = set()
try:
    for bit in range(max(1, len(source).bit_length())):
        open(hba_conf, "w").write(variant(bit))
        subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "reload", "-D", datadir], capture_output=True)
        time.sleep(1)
        for row in rows:
            outcome = attempt(row)
            if outcome == "reject":
                line_of[row] |= 1 << bit
            elif outcome == "none":
                unmatched.add(row)
finally:
    shutil.copyfile(hba_conf + ".oracle-backup", hba_conf)  # keeps the file's owner (postgres)
    os.remove(hba_conf + ".oracle-backup")
    subprocess.run(["runuser", "-u", "postgres", "--", f"{bindir}/pg_ctl", "reload", "-D", datadir], capture_output=True)
name = os.path.basename(hba_path)
for row in rows:
    print(f"{row.rstrip()} | {'none' if row in unmatched else f'{name}:{line_of[row]}'}")
