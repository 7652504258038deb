"""Benchmark: pulls straight from docker-registry against the same pulls through the gateway.

Run: ``.venv/bin/python bench/gateway.py [--seconds 5] [--concurrency 32] [--blob-mib 64]``.

One docker-registry (Debian's 2.8.2) and one gateway in front of it (``safeguard serve
--upstream``, no auth, no rule for the repository: the relay plus the pull log) run on free
loopback ports, and in the same run, interleaved:

* 64 MiB blob pull and push throughput, direct and through the gateway (median of
  ``--repeat``), over plain sockets;
* 64 MiB blob pull throughput through a second gateway started with ``--blob-redirect``: the
  gateway answers 307 and the client follows it to docker-registry, as real clients do, so the
  blob's bytes do not pass through the gateway (the time includes the redirect round trip);
* manifest GETs per second (``--concurrency`` keep-alive connections, ``--seconds`` each);
* the latency the gateway adds to a manifest GET: p50 (and p90/p99) of sequential GETs on one
  keep-alive connection, through the gateway minus direct.

The transfer and load-generator code is ``bench/registry.py``'s, imported. Targets: blob
throughput through the gateway >= 0.8x direct, <= 2 ms added at p50. Prints a Markdown table
and writes ``bench/results/gateway.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_registry_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_registry", ROOT / "bench" / "registry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rb = _load_registry_bench()

from tests.fixtures import distribution  # noqa: E402
from tests.fixtures.distribution import RegistryServer, run_distribution  # noqa: E402
from tests.fixtures.ports import free_port  # noqa: E402
from tests.unit.gateway.harness import start_gateway  # noqa: E402

MIB = rb.MIB
BLOB_TARGET = 0.8
ADDED_P50_TARGET_MS = 2.0


async def manifest_latencies(url: str, path: str, count: int) -> list[float]:
    """Seconds per ``GET path``, one request at a time on one keep-alive connection (the
    same minimal HTTP/1.1 exchange as ``bench/registry.py``'s load generator)."""
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: {rb.OCI_MANIFEST}\r\n"
        "User-Agent: safeguard-bench\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, int(port))
    out: list[float] = []
    try:
        for i in range(count + 50):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"\r\ncontent-length:")
            end = head.index(b"\r\n", at + 2)
            await reader.readexactly(int(head[at + 17 : end]))
            if head[9:12] != b"200":
                raise RuntimeError(f"manifest GET answered {head[:40]!r}")
            if i >= 50:  # warm-up
                out.append(time.perf_counter() - start)
    finally:
        writer.close()
    return out


def pull_blob_following(url: str, repo: str, digest: str) -> float:
    """Seconds for ``GET`` of a blob at ``url``, following one 307 as clients do (the blob
    itself is read with ``bench/registry.py``'s socket code)."""
    host, port = url.removeprefix("http://").split(":")
    path = f"/v2/{repo}/blobs/{digest}"
    start = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response head")
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    if head[0][9:12] != "307":
        raise RuntimeError(f"expected a redirect, got {head[0]!r}")
    location = next(
        v.strip() for k, _, v in (h.partition(":") for h in head[1:]) if k.lower() == "location"
    )
    target = urlsplit(location)
    request = (
        f"GET {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nConnection: close\r\n\r\n"
    ).encode()
    status = rb._exchange(f"http://{target.netloc}", request, sink=True)
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"blob pull after the redirect failed: {status}")
    return elapsed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    servers: dict[str, RegistryServer],
    redirecting: RegistryServer,
    blob: bytes,
    args: argparse.Namespace,
) -> dict:
    digest = rb._digest(blob)
    size_mb = len(blob) / 1e6
    manifest = rb.prepare(servers["direct"], blob)  # the gateway relays to the same storage
    runs: dict[str, dict[str, list[float]]] = {
        kind: {"blob_pull": [], "blob_push": [], "manifest_get": []} for kind in servers
    }
    redirected: list[float] = []
    latencies: dict[str, list[float]] = {kind: [] for kind in servers}
    for i in range(args.repeat):
        seconds = pull_blob_following(redirecting.url, "bench/image", digest)
        redirected.append(size_mb / seconds)
        for kind, server in servers.items():
            with httpx.Client(base_url=server.url, timeout=300) as client:
                runs[kind]["blob_pull"].append(
                    size_mb / rb.pull_blob(client, "bench/image", digest, len(blob))
                )
                seconds = rb.push_blob(client, f"bench/push-{kind}-{i}", blob, digest)
                runs[kind]["blob_push"].append(size_mb / seconds)
    path = f"/v2/bench/image/manifests/{manifest}"
    for _ in range(args.rate_repeat):
        for kind, server in servers.items():
            rate = asyncio.run(rb.manifest_rate(server.url, path, args.seconds, args.concurrency))
            runs[kind]["manifest_get"].append(rate)
            latencies[kind].extend(asyncio.run(manifest_latencies(server.url, path, args.samples)))
    results: dict[str, Any] = {}
    for kind, server in servers.items():
        results[kind] = {"url": server.url, "runs": runs[kind]}
        for metric, values in runs[kind].items():
            results[kind][metric] = statistics.median(values)
        lat = latencies[kind]
        results[kind]["latency_ms"] = {
            "p50": _pct(lat, 0.5) * 1000,
            "p90": _pct(lat, 0.9) * 1000,
            "p99": _pct(lat, 0.99) * 1000,
            "samples": len(lat),
        }
    results["gateway_redirect"] = {
        "url": redirecting.url,
        "runs": {"blob_pull": redirected},
        "blob_pull": statistics.median(redirected),
    }
    return results


def d_pull(results: dict[str, Any]) -> float:
    return float(results["direct"]["blob_pull"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per manifest-GET rate run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--blob-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5, help="blob pull/push repetitions")
    parser.add_argument("--rate-repeat", type=int, default=2, help="manifest GET repetitions")
    parser.add_argument("--samples", type=int, default=2000, help="latency samples per run")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "gateway.json")
    args = parser.parse_args()
    if not distribution.available():
        print("docker-registry is not installed (make install-test installs it)", file=sys.stderr)
        return 2
    blob = os.urandom(args.blob_mib * MIB)
    with tempfile.TemporaryDirectory(prefix="safeguard-bench-") as tmp, ExitStack() as stack:
        direct = stack.enter_context(run_distribution(Path(tmp) / "dist"))
        gateway = start_gateway(Path(tmp) / "gateway" / "data", direct, port=free_port())
        stack.callback(gateway.proc.terminate)
        redirect_gw = start_gateway(
            Path(tmp) / "gateway-redirect" / "data",
            direct,
            port=free_port(),
            extra_args=["--blob-redirect"],
        )
        stack.callback(redirect_gw.proc.terminate)
        servers = {
            "direct": direct,
            "gateway": RegistryServer("gateway", gateway.host),
        }
        print(f"measuring {direct.url} directly and through {gateway.url}", file=sys.stderr)
        redirecting = RegistryServer("gateway", redirect_gw.host)
        results = measure(servers, redirecting, blob, args)
    ratios = {
        m: results["gateway"][m] / results["direct"][m]
        for m in ("blob_pull", "blob_push", "manifest_get")
    }
    ratios["blob_pull_redirect"] = results["gateway_redirect"]["blob_pull"] / d_pull(results)
    added = {
        q: results["gateway"]["latency_ms"][q] - results["direct"]["latency_ms"][q]
        for q in ("p50", "p90", "p99")
    }
    met = {
        "blob_pull": ratios["blob_pull"] >= BLOB_TARGET,
        "blob_pull_redirect": ratios["blob_pull_redirect"] >= BLOB_TARGET,
        "blob_push": ratios["blob_push"] >= BLOB_TARGET,
        "added_p50_ms": added["p50"] <= ADDED_P50_TARGET_MS,
    }
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": vars(args) | {"output": str(args.output)},
        "results": results,
        "ratios": ratios,
        "added_latency_ms": added,
        "targets": {"blob": BLOB_TARGET, "added_p50_ms": ADDED_P50_TARGET_MS},
        "met": met,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    d, g = results["direct"], results["gateway"]
    print("| metric | direct | through gateway | ratio / added | target | met |")
    print("|---|---:|---:|---:|---:|---|")
    for metric, unit in (("blob_pull", "MB/s"), ("blob_push", "MB/s")):
        print(
            f"| {metric} ({unit}) | {d[metric]:.0f} | {g[metric]:.0f} | {ratios[metric]:.2f}x "
            f"| >= {BLOB_TARGET}x | {'yes' if met[metric] else 'no'} |"
        )
        if metric == "blob_pull":
            r = results["gateway_redirect"]["blob_pull"]
            print(
                f"| blob_pull, --blob-redirect, 307 followed (MB/s) | {d[metric]:.0f} | {r:.0f} "
                f"| {ratios['blob_pull_redirect']:.2f}x | >= {BLOB_TARGET}x "
                f"| {'yes' if met['blob_pull_redirect'] else 'no'} |"
            )
    print(
        f"| manifest GETs/s ({args.concurrency} conns) | {d['manifest_get']:.0f} | "
        f"{g['manifest_get']:.0f} | {ratios['manifest_get']:.2f}x | - | - |"
    )
    for q in ("p50", "p90", "p99"):
        target = f"<= {ADDED_P50_TARGET_MS} ms" if q == "p50" else "-"
        ok = ("yes" if met["added_p50_ms"] else "no") if q == "p50" else "-"
        print(
            f"| manifest GET latency {q} (ms) | {d['latency_ms'][q]:.3f} | "
            f"{g['latency_ms'][q]:.3f} | +{added[q]:.3f} ms | {target} | {ok} |"
        )
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
