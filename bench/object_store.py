#!/usr/bin/env python3
"""Builds against each other on a table in Azure Blob storage (Azurite), alternating (issue 28).

Usage: python3 bench/object_store.py BIN [BIN ...]

Starts Azurite's Blob service on a loopback port (the copy `.ci/run` installs under
~/.cache/procforest/npm, or $AZURITE_BLOB), generates with the first binary a table of
$PROCFOREST_BENCH_EVENTS events (default 2 M; 30 days, EVENTS / 20000 hosts, seed 1) in
$PROCFOREST_BENCH_FILES_PER_DAY files a day (default 100: streaming ingestion) at
az://events/t, then for PROCFOREST_BENCH_ROUNDS rounds (default 3) runs every binary in
turn on it (notebook preset, `--as-of 2026-11-27`). Prints each run's wall time and
process CPU, and stops unless every run gives the same anomalies (JSON lines without the
run id). Every request crosses loopback to a Node.js server: slower than a disk, as an
object store is. With PROCFOREST_BENCH_LATENCY_MS set, the runs reach Azurite through a
proxy that holds each chunk a client sends for that long (a request's one-way latency; the
table is generated without it).
"""

import asyncio
import base64
import datetime
import hashlib
import hmac
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from run import measured  # wall, CPU and anomalies of one run

EVENTS = int(os.environ.get("PROCFOREST_BENCH_EVENTS", "2000000"))
FILES_PER_DAY = int(os.environ.get("PROCFOREST_BENCH_FILES_PER_DAY", "100"))
ROUNDS = int(os.environ.get("PROCFOREST_BENCH_ROUNDS", "3"))
LATENCY_MS = float(os.environ.get("PROCFOREST_BENCH_LATENCY_MS", "0"))
AZURITE = os.environ.get(
    "AZURITE_BLOB", os.path.expanduser("~/.cache/procforest/npm/node_modules/.bin/azurite-blob"))
# Azurite's well-known account and key (public, documented by Microsoft).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_container(port, name):
    """PUT ?restype=container, signed with the account's shared key."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    resource_ = f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
    to_sign = f"PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:2021-08-06\n{resource_}"
    mac = hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{ACCOUNT}/{name}?restype=container", method="PUT",
        headers={"x-ms-date": date, "x-ms-version": "2021-08-06",
                 "Authorization": f"SharedKey {ACCOUNT}:{base64.b64encode(mac).decode()}"})
    urllib.request.urlopen(request).close()


def start_delaying_proxy(port, delay):
    """A loopback port forwarding to `port`, each chunk from a client held `delay` s."""
    async def pipe(reader, writer, hold):
        try:
            while chunk := await reader.read(1 << 16):
                if hold:
                    await asyncio.sleep(hold)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, 0))

    proxy_port = free_port()
    loop = asyncio.new_event_loop()

    async def serve():
        await asyncio.start_server(handle, "127.0.0.1", proxy_port)

    loop.run_until_complete(serve())
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return proxy_port


def run(binary, env, out):
    """Wall and CPU seconds of one run, and its anomalies without the run id."""
    args = [binary, "run", "--table", "az://events/t", "--as-of", "2026-11-27", "--quiet",
            "--json", out]
    return measured(args, out, env)


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        azurite = subprocess.Popen(
            [AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", work,
             "--disableTelemetry", "--skipApiVersionCheck", "--loose"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            create_container(port, "events")
            env = {**os.environ, "AZURE_STORAGE_USE_EMULATOR": "true",
                   "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{port}",
                   "PROCFOREST_LOG": "warn"}
            start = time.monotonic()
            subprocess.run(
                [binaries[0], "generate", "--out", "az://events/t", "--events", str(EVENTS),
                 "--days", "30", "--hosts", str(max(50, EVENTS // 20000)), "--seed", "1",
                 "--end-date", "2026-11-27", "--attack-rate", "0.01", "--files-per-day",
                 str(FILES_PER_DAY)], check=True, env=env, stdout=subprocess.DEVNULL)
            print(f"generated {EVENTS:,} events, {FILES_PER_DAY} files a day, in "
                  f"{time.monotonic() - start:.0f} s")
            if LATENCY_MS:
                proxy = start_delaying_proxy(port, LATENCY_MS / 1000)
                env["AZURITE_BLOB_STORAGE_URL"] = f"http://127.0.0.1:{proxy}"
                print(f"runs through a proxy adding {LATENCY_MS:g} ms to each request")
            walls = {b: [] for b in binaries}
            seen = None
            for r in range(ROUNDS):
                for b in binaries:
                    wall, cpu, anomalies = run(b, env, f"{work}/anomalies.json")
                    if seen is not None and anomalies != seen:
                        sys.exit(f"{b}: the anomalies differ from the first run's")
                    seen = anomalies
                    walls[b].append(wall)
                    print(f"round {r + 1} {b}: {wall:.2f} s wall, {cpu:.2f} s CPU")
            print(f"every run gave the same {len(seen)} anomalies")
            for b in binaries:
                print(f"{b}: median {statistics.median(walls[b]):.2f} s")
        finally:
            azurite.terminate()
            azurite.wait()


if __name__ == "__main__":
    main()
