"""Benchmark: the transparency log's append rate, integration latency and proof serving.

Run: ``.venv/bin/python bench/tlog.py [--seconds 3]``.

Measured, on SQLite (WAL, sequencer commits with ``synchronous=FULL``) and PostgreSQL
(``tests.fixtures.postgres.run_postgres``: fsync off, as the test cluster runs), each with 1, 8
and 64 concurrent clients for ``--seconds``:

* **service layer**: client threads call ``TransparencyLog.submit(...).result()`` in a loop with
  already-validated entries (submit → committed in a batch, SET signed, checkpoint signed); the
  entry bodies are well-formed hashedrekord bodies whose signatures are not checked here;
* **HTTP**: ``safeguard serve`` under uvicorn in a subprocess, and a load generator in this
  process (raw asyncio HTTP/1.1 keep-alive connections on uvloop, one request in flight each,
  its CPU time per request recorded as ``client_cpu_us``) posting
  validly signed hashedrekord entries to ``POST /api/v1/log/entries`` (so the server validates
  and verifies every signature), latency = request sent → 201 (integrated, proof included);
* **proofs over HTTP**: ``GET /api/v1/log/entries?logIndex=<random>`` (entry, inclusion proof
  against the newest checkpoint, SET) with 64 connections; then each index once in random order
  (so no answer is served from the server's answer cache); and the service-layer proof rate.

Prints a Markdown table (with Tessera's ~10,000 appends/s on NVMe as the reference figure) and
writes ``bench/results/tlog.json``. Both the server and the load generator share this machine's
cores, so HTTP figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import postgres  # noqa: E402
from tests.fixtures.builtin import fresh_postgres_database, serve_command  # noqa: E402
from tests.fixtures.ports import free_port, wait_for_port  # noqa: E402

from safeguard.keys import SoftwareSigner  # noqa: E402
from safeguard.store import open_database  # noqa: E402
from safeguard.tlog.entries import PreparedEntry, prepare_entry  # noqa: E402
from safeguard.tlog.logkey import generate_log_key  # noqa: E402
from safeguard.tlog.merkle import leaf_hash  # noqa: E402
from safeguard.tlog.service import TransparencyLog  # noqa: E402

CLIENTS = (1, 8, 64)
TESSERA_REFERENCE = 10_000
SIGNER = SoftwareSigner.generate()
PEM_B64 = base64.b64encode(SIGNER.public_key_pem).decode()
SIG_B64 = base64.b64encode(SIGNER.sign(b"x")).decode()


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the load generator on uvloop when it is installed: it then takes less CPU per
    request, which it would otherwise take from the server on these shared cores."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fake_entry(n: int) -> PreparedEntry:
    """A canonical hashedrekord body with a unique digest (its signature is not checked)."""
    digest = hashlib.sha256(b"bench %d %f" % (n, time.time())).hexdigest()
    body = (
        '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":'
        f'"sha256","value":"{digest}"}}}},"signature":{{"content":"{SIG_B64}","publicKey":'
        f'{{"content":"{PEM_B64}"}}}}}}}}'
    ).encode()
    return PreparedEntry(body, leaf_hash(body), "hashedrekord", "0.0.1", f"sha256:{digest}")


def _signed_request(n: int) -> bytes:
    artifact = b"bench artifact %d %f" % (n, time.time())
    doc = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
            },
            "signature": {
                "content": base64.b64encode(SIGNER.sign(artifact)).decode(),
                "publicKey": {"content": PEM_B64},
            },
        },
    }
    body = json.dumps(doc).encode()
    head = (
        "POST /api/v1/log/entries HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


@contextmanager
def _databases(kind: str, workdir: Path, pg_url: str | None) -> Iterator[str]:
    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(dir=workdir))
        yield f"sqlite:///{path}/bench.db"
    else:
        assert pg_url is not None
        with fresh_postgres_database(pg_url) as url:
            yield url


# --- service layer ----------------------------------------------------------------------------


def bench_service(url: str, workdir: Path, clients: int, seconds: float) -> dict[str, Any]:
    db = open_database(url)
    log = TransparencyLog(db, generate_log_key(Path(tempfile.mkdtemp(dir=workdir)) / "k.pem"))
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        local: list[float] = []
        while time.perf_counter() < stop_at:
            with lock:
                n = next(counter)
            entry = _fake_entry(n)
            start = time.perf_counter()
            log.submit(entry).result(60)
            local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)

    log.add_sync(_fake_entry(-1))  # warm up (starts the sequencer)
    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    proofs = _service_proofs(log)
    log.close()
    db.dispose()
    return {
        "appends_per_s": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "entries": len(latencies),
        "service_proofs_per_s": proofs,
    }


def _service_proofs(log: TransparencyLog, count: int = 20_000) -> float:
    size = log.head().size
    rng = random.Random(1)
    start = time.perf_counter()
    for _ in range(count):
        log.inclusion_proof(rng.randrange(size), size)
    return count / (time.perf_counter() - start)


# --- HTTP ---------------------------------------------------------------------------------------


@contextmanager
def _server(workdir: Path, url: str | None) -> Iterator[int]:
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=workdir))
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    log = (data / "serve.log").open("wb")
    proc = subprocess.Popen(
        serve_command(port, data / "data", url), stdout=log, stderr=log, env=env
    )
    try:
        wait_for_port(port, timeout=60)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


async def _connection(
    port: int,
    requests: Iterator[bytes],
    stop_at: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < stop_at:
            request = next(requests, None)
            if request is None:  # the pre-signed requests ran out: stop early, not crash
                break
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _load(
    port: int, requests: Iterator[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu = time.process_time()
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(
        *(_connection(port, requests, stop_at, latencies, statuses) for _ in range(clients))
    )
    elapsed = time.perf_counter() - began
    return {
        "per_s": len(latencies) / elapsed,
        "client_cpu_us": (time.process_time() - cpu) / max(1, len(latencies)) * 1e6,
        "p50_ms": _pct(latencies, 0.5) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def bench_http(url: str | None, workdir: Path, seconds: float, with_proofs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _server(workdir, url) as port:
        for clients in CLIENTS:
            budget = int(seconds * 8000) + 500
            requests = iter([_signed_request(n) for n in range(budget)])
            _run(_load(port, iter([_signed_request(-1 - clients)]), 1, 5.0))  # warm up
            out[f"appends_{clients}"] = _run(_load(port, requests, clients, seconds))
        if with_proofs:
            info = _get_json(port, "/api/v1/log")
            size = info["treeSize"]
            rng = random.Random(2)
            get = "GET /api/v1/log/entries?logIndex={} HTTP/1.1\r\nHost: b\r\n\r\n"
            gets = (get.format(rng.randrange(size)).encode() for _ in iter(int, 1))
            out["proofs_64"] = _run(_load(port, gets, 64, seconds))
            # Each index once, in random order, cycling: the server's LRU of whole answers
            # (4,096, keyed by index and tree size) never hits while the tree is larger than it,
            # so this is the rate of answers computed afresh (proof, JSON) for every request.
            order = list(range(size))
            rng.shuffle(order)
            distinct = (get.format(order[i % size]).encode() for i in itertools.count())
            out["proofs_64_distinct"] = _run(_load(port, distinct, 64, seconds))
            out["tree_size"] = size
    return out


def _get_json(port: int, path: str) -> Any:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30).json()


def _validation_rate(count: int = 3000) -> float:
    raw = [_signed_request(n).split(b"\r\n\r\n", 1)[1] for n in range(count)]
    start = time.perf_counter()
    for body in raw:
        prepare_entry(body)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds": args.seconds,
        "validation_per_s": _validation_rate(),
        "service": {},
        "http": {},
        "reference": {"tessera_appends_per_s_nvme": TESSERA_REFERENCE},
    }
    with tempfile.TemporaryDirectory(prefix="safeguard-tlog-bench-") as tmp:
        workdir = Path(tmp)
        pg_ctx = postgres.run_postgres() if postgres.available() else None
        pg_url = pg_ctx.__enter__() if pg_ctx is not None else None
        try:
            backends = ["sqlite"] + (["postgresql"] if pg_url else [])
            for kind in backends:
                for clients in CLIENTS:
                    with _databases(kind, workdir, pg_url) as url:
                        results["service"][f"{kind}_{clients}"] = bench_service(
                            url, workdir, clients, args.seconds
                        )
                        print(
                            f"service {kind} x{clients}: {results['service'][f'{kind}_{clients}']}",
                            file=sys.stderr,
                        )
                with _databases(kind, workdir, pg_url) as url:
                    results["http"][kind] = bench_http(
                        None if kind == "sqlite" else url,
                        workdir,
                        args.seconds,
                        with_proofs=kind == "sqlite",
                    )
                    print(f"http {kind}: {results['http'][kind]}", file=sys.stderr)
        finally:
            if pg_ctx is not None:
                pg_ctx.__exit__(None, None, None)
    out = ROOT / "bench" / "results" / "tlog.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(_table(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| backend | layer | clients | appends/s | p50 submit→integration (ms) | p99 (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, row in results["service"].items():
        kind, clients = key.rsplit("_", 1)
        lines.append(
            f"| {kind} | service | {clients} | {row['appends_per_s']:,.0f} "
            f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    for kind, run in results["http"].items():
        for clients in CLIENTS:
            row = run[f"appends_{clients}"]
            lines.append(
                f"| {kind} | HTTP | {clients} | {row['per_s']:,.0f} "
                f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
            )
    lines.append(f"| Tessera (reference, NVMe) | — | — | ~{TESSERA_REFERENCE:,} | — | — |")
    lines.append("")
    lines.append("| proofs | per second | p50 (ms) | p99 (ms) |")
    lines.append("|---|---:|---:|---:|")
    sqlite_http = results["http"].get("sqlite", {})
    if "proofs_64" in sqlite_http:
        row = sqlite_http["proofs_64"]
        lines.append(
            "| HTTP GET entry + inclusion proof, 64 connections, random indexes "
            f"(tree {sqlite_http['tree_size']:,}) "
            f"| {row['per_s']:,.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    if "proofs_64_distinct" in sqlite_http:
        row = sqlite_http["proofs_64_distinct"]
        lines.append(
            "| the same, each index once (no answer-cache hits) "
            f"| {row['per_s']:,.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    service = results["service"].get("sqlite_64")
    if service:
        lines.append(
            "| service layer, in-memory node cache "
            f"| {service['service_proofs_per_s']:,.0f} | — | — |"
        )
    lines.append(
        "| entry validation (parse + ECDSA verify + canonicalise) "
        f"| {results['validation_per_s']:,.0f} | — | — |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
