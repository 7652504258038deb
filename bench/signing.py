"""Benchmark: the signing service end to end over HTTP.

Run: ``.venv/bin/python bench/signing.py [--seconds 5]``.

Starts, on this machine: a SoftHSM2 token with the identity's P-256 key (its own temporary
``SOFTHSM2_CONF``), the test OIDC issuer (``tests.fixtures.oidc``: discovery and JWKS over HTTP,
GitHub Actions-shaped tokens), a data directory with the policy applied, and ``safeguard serve``
in a subprocess (registry, log and signing service on SQLite, as ``serve`` runs by default). Then
``POST /api/v1/signatures`` with 1, 8 and 32 concurrent keep-alive clients (the raw asyncio
HTTP/1.1 load generator of ``bench/tlog.py``, imported), each request a full signing: token
verification (RS256, cached JWKS), identity match, ``mayPublish``, rate-limit bucket, the cosign
v3 DSSE statement signed by SoftHSM2 through PKCS#11, a ``dsse`` entry integrated in the log
(SET, inclusion proof, checkpoint), the audit event committed — and, by default, the legacy
simple-signing payload signed and logged as a second (``hashedrekord``) entry. The
``legacy=false`` rows make one signature and one entry per request.

Targets (issue "Signer identities and the signing service"): >= 200 signatures/s and p99 < 100 ms
at 8 clients. Prints a Markdown table and writes ``bench/results/signing.json``. The server and
the load generator share this machine's cores, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import softhsm  # noqa: E402
from tests.fixtures.builtin import serve_command  # noqa: E402
from tests.fixtures.oidc import ServedIssuer, run_oidc_issuer  # noqa: E402
from tests.fixtures.ports import free_port, wait_for_port  # noqa: E402

from safeguard.policy import PolicyStore  # noqa: E402
from safeguard.store import default_database_url, open_database  # noqa: E402

CLIENTS = (1, 8, 32)
TARGET_PER_S = 200
TARGET_P99_MS = 100
TOKEN = "bench"
PIN = "1111"


def _load_generator() -> Any:
    """``bench/tlog.py``'s raw HTTP/1.1 load generator (``_load``), imported by path."""
    spec = importlib.util.spec_from_file_location("bench_tlog", ROOT / "bench" / "tlog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_tlog"] = module
    spec.loader.exec_module(module)
    return module._load


def _policy(hsm: softhsm.SoftHSM, pin_file: Path, issuer: str) -> str:
    ref = f"pkcs11:token={TOKEN};object=bench?module-path={hsm.module}&pin-source=file:{pin_file}"
    return f"""apiVersion: safeguard.dev/v1
kind: Policy
trustRoots:
  internal:
    keys:
      - name: bench
        ref: "{ref}"
identities:
  - name: bench-release
    trustRoot: internal
    key: bench
    oidc:
      issuer: {issuer}
      repository: org/bench
      ref: refs/heads/main
      workflow: .github/workflows/release.yml
    mayPublish: ["registry.bench/**"]
"""


def _requests(token: str, legacy: bool) -> Iterator[bytes]:
    head = (
        "POST /api/v1/signatures HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {{length}}\r\n\r\n"
    )
    for n in itertools.count():
        body = json.dumps(
            {
                "digest": f"sha256:{n:064x}",
                "repository": "registry.bench/team/app",
                "kind": "signature",
                "legacy": legacy,
            }
        ).encode()
        yield head.format(length=len(body)).encode() + body


def _serve(workdir: Path, data: Path, conf: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    env["SOFTHSM2_CONF"] = str(conf)
    log_path = workdir / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(serve_command(port, data), stdout=log, stderr=log, env=env)
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
    return proc, port, log_path


def run(seconds: float) -> dict[str, Any]:
    load = _load_generator()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sg-bench-signing-") as tmp:
        work = Path(tmp)
        with softhsm.run_softhsm(work / "hsm") as hsm, run_oidc_issuer() as issuer:
            hsm.init_token(TOKEN, PIN)
            hsm.generate_key(TOKEN, "bench", "01", "EC:prime256v1")
            pin_file = work / "pin"
            pin_file.write_text(PIN)
            data = work / "data"
            data.mkdir()
            db = open_database(default_database_url(data))
            try:
                PolicyStore(db).apply(_policy(hsm, pin_file, issuer.url), "bench")
            finally:
                db.dispose()
            proc, port, log_path = _serve(work, data, hsm.conf)
            try:
                results = _measure(load, port, issuer, seconds)
            finally:
                proc.terminate()
                proc.wait(20)
            if any(set(r["statuses"]) - {"201"} for r in results.values()):
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"some requests failed: {results}\n{tail}")
    return results


def _token(issuer: ServedIssuer) -> str:
    return issuer.github_token(repository="org/bench", lifetime=600)


def _measure(load: Any, port: int, issuer: ServedIssuer, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    asyncio.run(load(port, _requests(_token(issuer), True), 4, 2.0))  # warm up: JWKS, key, caches
    for legacy in (True, False):
        for clients in CLIENTS:
            row = asyncio.run(load(port, _requests(_token(issuer), legacy), clients, seconds))
            out[f"{'legacy' if legacy else 'bundle'}_{clients}"] = row
    return out


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| request | clients | requests/s | signatures/s | log entries/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        kind, clients = name.split("_")
        per_request = 2 if kind == "legacy" else 1
        label = "bundle + legacy .sig" if kind == "legacy" else "bundle only"
        lines.append(
            f"| {label} | {clients} | {row['per_s']:.0f} | {row['per_s'] * per_request:.0f} | "
            f"{row['per_s'] * per_request:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
        )
    at8 = results["legacy_8"]
    met = at8["per_s"] >= TARGET_PER_S and at8["p99_ms"] < TARGET_P99_MS
    lines.append(
        f"\nTarget at 8 clients (signing requests, legacy layout included): "
        f">= {TARGET_PER_S}/s and p99 < {TARGET_P99_MS} ms: "
        f"{at8['per_s']:.0f}/s, p99 {at8['p99_ms']:.1f} ms — {'met' if met else 'NOT met'}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not softhsm.available():
        raise SystemExit("SoftHSM2 and OpenSC are needed (softhsm2-util, pkcs11-tool)")
    started = time.time()
    results = run(args.seconds)
    doc = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "seconds": args.seconds,
        "results": results,
        "took_s": round(time.time() - started, 1),
    }
    out = ROOT / "bench" / "results" / "signing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(_table(results))
    print(f"\nwritten to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
