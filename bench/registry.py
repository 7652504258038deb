"""Benchmark: Safeguard's built-in registry against distribution (Debian's docker-registry).

Run: ``.venv/bin/python bench/registry.py [--seconds 5] [--concurrency 32] [--blob-mib 64]``.

Both registries run as real servers on free loopback ports and are measured with the same load
generator in this process: manifest GET requests per second (by tag and by digest, N concurrent
keep-alive connections of a minimal asyncio HTTP/1.1 client for a fixed time), and blob push and
pull throughput for one random blob over plain sockets (median of a few repetitions, the two
registries interleaved run by run). Prints a Markdown table with the ratios against the targets
(manifest GET >= 0.5x distribution, blob throughput >= 0.8x) and writes
``bench/results/registry.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import distribution  # noqa: E402
from tests.fixtures.builtin import OCI_MANIFEST, image_manifest, run_builtin  # noqa: E402
from tests.fixtures.distribution import RegistryServer, run_distribution  # noqa: E402

MIB = 1024 * 1024
TARGETS = {
    "manifest_get_by_tag": 0.5,
    "manifest_get_by_digest": 0.5,
    "blob_push": 0.8,
    "blob_pull": 0.8,
}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _exchange(url: str, head: bytes, body: bytes | memoryview = b"", sink: bool = False) -> int:
    """One HTTP/1.1 request on a fresh socket: send ``head`` and ``body``, read the response
    (into a reused buffer when ``sink``); return the status. The blob tests use this instead
    of httpx so that the client's own copying does not dominate what is measured."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head)
        if body:
            sock.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response head")
            data += chunk
        header, _, rest = data.partition(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        remaining = length - len(rest)
        buffer = bytearray(MIB)
        while remaining > 0:
            got = sock.recv_into(buffer, min(MIB, remaining))
            if not got:
                raise RuntimeError("connection closed mid-body")
            remaining -= got
        if not sink and length and status >= 300:
            raise RuntimeError(f"status {status}")
        return status


def push_blob(client: httpx.Client, repo: str, data: bytes, digest: str) -> float:
    """POST then PUT of ``data`` in one request body; returns seconds taken."""
    start = time.perf_counter()
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    sep = "&" if "?" in location else "?"
    host = str(client.base_url).rstrip("/")
    head = (
        f"PUT {location}{sep}digest={digest} HTTP/1.1\r\nHost: {host.removeprefix('http://')}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status = _exchange(host, head, memoryview(data))
    elapsed = time.perf_counter() - start
    if status != 201:
        raise RuntimeError(f"blob push failed: {status}")
    return elapsed


def pull_blob(client: httpx.Client, repo: str, digest: str, size: int) -> float:
    host = str(client.base_url).rstrip("/")
    head = (
        f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host.removeprefix('http://')}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    start = time.perf_counter()
    status = _exchange(host, head, sink=True)
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"blob pull failed: {status}")
    return elapsed


def push_image(client: httpx.Client, repo: str, blob: dict[str, Any]) -> str:
    config_raw = b'{"architecture":"amd64","os":"linux"}'
    config_digest = _digest(config_raw)
    push_blob(client, repo, config_raw, config_digest)
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": config_digest,
        "size": len(config_raw),
    }
    raw = image_manifest(config, [blob])
    response = client.put(
        f"/v2/{repo}/manifests/bench", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    if response.status_code != 201:
        raise RuntimeError(f"manifest push failed: {response.status_code} {response.text[:200]}")
    return _digest(raw)


async def manifest_rate(url: str, path: str, seconds: float, concurrency: int) -> float:
    """Requests per second of ``GET path`` over ``concurrency`` keep-alive connections.

    The load generator is a minimal HTTP/1.1 client on asyncio streams (write the request, read
    the head, read Content-Length bytes): a general-purpose client such as httpx costs more CPU
    per request than either server and would measure itself instead.
    """
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {OCI_MANIFEST}\r\n"
        "User-Agent: safeguard-bench\r\n\r\n"
    ).encode()
    count = 0
    failures = 0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"no Content-Length in {head[:200]!r}")
        end = head.index(b"\r\n", at + 2)
        await reader.readexactly(int(head[at + 17 : end]))
        return head[9:12] == b"200"

    async def worker(deadline: float) -> None:
        nonlocal count, failures
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                if await one(reader, writer):
                    count += 1
                else:
                    failures += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(time.perf_counter() + 0.5) for _ in range(concurrency)))
    count = failures = 0
    start = time.perf_counter()
    await asyncio.gather(*(worker(start + seconds) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} manifest GETs failed")
    return count / elapsed


def prepare(server: RegistryServer, blob: bytes) -> str:
    """Push the blob and an image manifest that uses it; return the manifest digest."""
    digest = _digest(blob)
    with httpx.Client(base_url=server.url, timeout=300) as client:
        push_blob(client, "bench/image", blob, digest)
        layer = {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": len(blob),
        }
        manifest_digest = push_image(client, "bench/image", layer)
        pull_blob(client, "bench/image", digest, len(blob))  # warm the page cache alike
    return manifest_digest


def measure(
    servers: dict[str, RegistryServer], blob: bytes, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Interleave the registries run by run, so a noisy neighbour hurts both alike."""
    digest = _digest(blob)
    size_mb = len(blob) / 1e6
    manifests = {kind: prepare(server, blob) for kind, server in servers.items()}
    runs: dict[str, dict[str, list[float]]] = {
        kind: {
            "blob_push": [],
            "blob_pull": [],
            "manifest_get_by_tag": [],
            "manifest_get_by_digest": [],
        }
        for kind in servers
    }
    for i in range(args.repeat):
        for kind, server in servers.items():
            with httpx.Client(base_url=server.url, timeout=300) as client:
                seconds = push_blob(client, f"bench/push{i}", blob, digest)
                runs[kind]["blob_push"].append(size_mb / seconds)
                seconds = pull_blob(client, "bench/image", digest, len(blob))
                runs[kind]["blob_pull"].append(size_mb / seconds)
    for _ in range(args.rate_repeat):
        for kind, server in servers.items():
            for metric, reference in (
                ("manifest_get_by_tag", "bench"),
                ("manifest_get_by_digest", manifests[kind]),
            ):
                rate = asyncio.run(
                    manifest_rate(
                        server.url,
                        f"/v2/bench/image/manifests/{reference}",
                        args.seconds,
                        args.concurrency,
                    )
                )
                runs[kind][metric].append(rate)
    results: dict[str, dict[str, Any]] = {}
    for kind, server in servers.items():
        results[kind] = {"url": server.url, "runs": runs[kind]}
        for metric, values in runs[kind].items():
            results[kind][metric] = statistics.median(values)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per manifest-GET run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--blob-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5, help="blob push/pull repetitions")
    parser.add_argument("--rate-repeat", type=int, default=2, help="manifest GET repetitions")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "registry.json")
    args = parser.parse_args()
    if not distribution.available():
        print("docker-registry is not installed (make install-test installs it)", file=sys.stderr)
        return 2
    blob = os.urandom(args.blob_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="safeguard-bench-") as tmp, ExitStack() as stack:
        servers = {
            "builtin": stack.enter_context(run_builtin(Path(tmp) / "builtin-dir")),
            "distribution": stack.enter_context(run_distribution(Path(tmp) / "dist-dir")),
        }
        print(
            "measuring " + ", ".join(f"{k} at {v.url}" for k, v in servers.items()), file=sys.stderr
        )
        results = measure(servers, blob, args)
    ratios = {k: results["builtin"][k] / results["distribution"][k] for k in TARGETS}
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "blob_mib": args.blob_mib,
            "repeat": args.repeat,
        },
        "results": results,
        "ratios": ratios,
        "targets": TARGETS,
        "met": {k: ratios[k] >= TARGETS[k] for k in TARGETS},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    units = {
        "manifest_get_by_tag": "req/s",
        "manifest_get_by_digest": "req/s",
        "blob_push": "MB/s",
        "blob_pull": "MB/s",
    }
    print("| metric | built-in | distribution | ratio | target | met |")
    print("|---|---:|---:|---:|---:|---|")
    for key in TARGETS:
        print(
            f"| {key} ({units[key]}) | {results['builtin'][key]:.0f} | "
            f"{results['distribution'][key]:.0f} | {ratios[key]:.2f} | >= {TARGETS[key]} | "
            f"{'yes' if report['met'][key] else 'no'} |"
        )
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
