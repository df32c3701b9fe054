#!/usr/bin/python3
"""psycopg (3, asynchronous mode) through COPY FROM/TO with varied row sizes.

Used by IntegrationTests/ClientShapeTests: libpq-based asynchronous clients wait in poll() for
the socket; bytes left decrypted inside OpenSSL after a large TLS record are never reported,
and the client hangs. Every step has a deadline; a hang is reported as such and exits 3.

usage: psycopg-async-copy.py CONNINFO ROUNDS
"""
import asyncio
import random
import sys

import psycopg

SIZES = [0, 1, 7, 100, 1000, 8000, 8191, 8192, 8193, 16000, 16384, 16385, 40000, 100000, 300000]


async def round_trip(conninfo: str, seed: int) -> int:
    rng = random.Random(seed)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        async with conn.cursor() as cur:
            await cur.execute("CREATE TEMP TABLE shapes(i int, t text)")
            rows = [(i, "x" * rng.choice(SIZES)) for i in range(60)]
            async with cur.copy("COPY shapes FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
            got = []
            async with cur.copy("COPY (SELECT i, t FROM shapes ORDER BY i) TO STDOUT") as copy:
                async for row in copy.rows():
                    got.append((int(row[0]), row[1]))
            if got != rows:
                raise AssertionError("COPY TO returned other rows than COPY FROM stored")
            # A large result through the ordinary protocol too.
            await cur.execute("SELECT t FROM shapes ORDER BY i")
            fetched = [r[0] for r in await cur.fetchall()]
            if fetched != [t for _, t in rows]:
                raise AssertionError("SELECT returned other rows")
            return sum(len(t) for _, t in rows)


async def main() -> int:
    conninfo, rounds = sys.argv[1], int(sys.argv[2])
    total = 0
    for seed in range(rounds):
        try:
            total += await asyncio.wait_for(round_trip(conninfo, seed), timeout=30)
        except asyncio.TimeoutError:
            print(f"round {seed}: hung (no progress for 30 s)", file=sys.stderr)
            return 3
    print(f"{rounds} rounds, {total} bytes each way")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
