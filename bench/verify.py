"""Benchmark: the verification engine, key-based against a local registry and keyless offline.

Run: ``.venv/bin/python bench/verify.py [--rounds 200]``.

Measured in one process, in one run:

* **key, cold**: ``verify_image`` on a key-signed image (bundle referrer + legacy ``.sig``) in
  Safeguard's built-in registry (``safeguard serve`` on a free loopback port), with a new
  ``RegistryClient`` and no cache each time: resolve, list referrers and cosign tags, fetch
  manifests and blobs, check both signatures;
* **key, warm (cache hit)**: a ``VerdictCache`` lookup for the same question (what a surface pays
  once it has the listing), and the full ``verify_image`` call with the cache (listing requests
  plus the hit) on a kept client;
* **keyless**: ``verify_bundle`` on ``tests/fixtures/keyless/bundle_v3_github.whl.sigstore``
  (public-good, identity policy) against sigstore-python's own ``Verifier.verify_artifact`` on the
  same bytes (bundle parsed from JSON each time in all), interleaved: once with a ``Verifier``
  made per call (what one ``sigstore verify`` run does) and once with one ``Verifier`` reused
  (sigstore-python's best case in a long-lived process). Safeguard builds its per-root objects
  once (``safeguard.verify.keyless.verifier_for``) and nothing per bundle is cached. Also timed:
  ``checks.check`` + ``Verdict`` alone, i.e. ``verify_bundle`` without the engine's digest step
  that parses the bundle once more before ``check`` (``engine._digested_as_signed``).

Prints a Markdown table with medians and the targets (keyless no slower than sigstore-python,
warm cache lookup < 0.2 ms, cold key-based < 20 ms) and writes ``bench/results/verify.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sigstore.models import Bundle as SigstoreBundle  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import Identity  # noqa: E402
from tests.fixtures.builtin import run_builtin  # noqa: E402
from tests.unit.oci.artifacts import image, push  # noqa: E402

from safeguard.core.digest import Digest  # noqa: E402
from safeguard.core.reference import Reference  # noqa: E402
from safeguard.keys import SoftwareSigner  # noqa: E402
from safeguard.oci.client import RegistryClient  # noqa: E402
from safeguard.signing.sign import sign_image  # noqa: E402
from safeguard.verify.cache import VerdictCache  # noqa: E402
from safeguard.verify.checks import Artifact, Candidate, Expectation, check  # noqa: E402
from safeguard.verify.engine import verify_bundle, verify_image  # noqa: E402
from safeguard.verify.identity import IdentityPolicy, Match  # noqa: E402
from safeguard.verify.policy import TrustPolicy  # noqa: E402
from safeguard.verify.trustroot import load_trust_material  # noqa: E402
from safeguard.verify.verdict import Verdict  # noqa: E402

KEYLESS = ROOT / "tests" / "fixtures" / "keyless"
SIGNER = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
GH = "https://token.actions.githubusercontent.com"
TARGETS = {"keyless_ratio_max": 1.0, "warm_cache_ms": 0.2, "cold_key_ms": 20.0}


def ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[int(len(ordered) * 0.9) - 1] * 1000,
        "min_ms": ordered[0] * 1000,
    }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def key_based(host: str, rounds: int) -> dict[str, Any]:
    repo = "bench/verify"
    signer = SoftwareSigner.generate()
    art = image()
    async with RegistryClient(host) as client:
        await push(client, repo, art, "v1")
        ref = Reference.parse(f"{host}/{repo}@{art.digest}")
        await sign_image(client, ref, signer)
    policy = TrustPolicy(keys=(signer.public_key,))

    cold: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        async with RegistryClient(host) as client:
            verdict = await verify_image(client, ref, policy)
        cold.append(time.perf_counter() - start)
        assert verdict.allowed and len(verdict.verified) == 2, verdict.reasons

    cache = VerdictCache()
    warm_call: list[float] = []
    async with RegistryClient(host) as client:
        await verify_image(client, ref, policy, cache=cache)  # fills the cache
        for _ in range(rounds):
            start = time.perf_counter()
            verdict = await verify_image(client, ref, policy, cache=cache)
            warm_call.append(time.perf_counter() - start)
            assert verdict.cached and verdict.allowed
    key = next(iter(cache._items))
    lookups: list[float] = []
    for _ in range(rounds * 50):
        start = time.perf_counter()
        cache.get(key)
        lookups.append(time.perf_counter() - start)
    return {
        "cold": ms(cold),
        "warm_with_listing": ms(warm_call),
        "warm_cache_lookup": ms(lookups),
        "signatures_checked": 2,
    }


def keyless(rounds: int) -> dict[str, Any]:
    artifact = (KEYLESS / "bundle_v3_github.whl").read_bytes()
    raw = (KEYLESS / "bundle_v3_github.whl.sigstore").read_bytes()
    trust = load_trust_material(KEYLESS / "public-good.trusted_root.json")
    root = trust.sigstore_root()
    policy = TrustPolicy(identity=IdentityPolicy(Match(exact=SIGNER), Match(exact=GH)), trust=trust)
    target = Artifact(Digest.of(artifact), artifact)

    def ours() -> None:
        assert verify_bundle(raw, target, policy, Expectation()).allowed

    def checked() -> None:  # verify_bundle without the engine's step before ``check``
        result = check(
            Candidate("bundle", "<bundle>", bundle_json=raw), target, policy, Expectation()
        )
        assert Verdict.from_checks("bundle", [result]).allowed

    def theirs() -> None:
        Verifier(trusted_root=root).verify_artifact(
            artifact, SigstoreBundle.from_json(raw), Identity(identity=SIGNER, issuer=GH)
        )

    kept = Verifier(trusted_root=root)

    def theirs_reused() -> None:
        kept.verify_artifact(
            artifact, SigstoreBundle.from_json(raw), Identity(identity=SIGNER, issuer=GH)
        )

    for _ in range(20):  # warm all
        ours()
        checked()
        theirs()
        theirs_reused()
    safeguard, check_only, sigstore, reused = [], [], [], []
    for _ in range(rounds):
        safeguard.append(timed(ours))
        check_only.append(timed(checked))
        sigstore.append(timed(theirs))
        reused.append(timed(theirs_reused))
    a, b, c, d = ms(safeguard), ms(sigstore), ms(reused), ms(check_only)
    return {
        "safeguard": a,
        "safeguard_check_only": d,
        "check_only_ratio": d["median_ms"] / b["median_ms"],
        "sigstore_python": b,
        "sigstore_python_reused_verifier": c,
        "ratio": a["median_ms"] / b["median_ms"],
        "ratio_reused": a["median_ms"] / c["median_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, run_builtin(Path(tmp)) as server:
        key = asyncio.run(key_based(server.host, args.rounds))
    kl = keyless(args.rounds)
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "rounds": args.rounds,
        "key_based_builtin_registry": key,
        "keyless_bundle": kl,
        "targets": TARGETS,
        "met": {
            "keyless_no_slower": max(kl["ratio"], kl["ratio_reused"])
            <= TARGETS["keyless_ratio_max"],
            "warm_cache_lookup": key["warm_cache_lookup"]["median_ms"] < TARGETS["warm_cache_ms"],
            "cold_key_based": key["cold"]["median_ms"] < TARGETS["cold_key_ms"],
        },
    }
    out = ROOT / "bench" / "results" / "verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("key-based, cold (new client, no cache)", key["cold"], "< 20 ms"),
        ("key-based, warm: cache lookup", key["warm_cache_lookup"], "< 0.2 ms"),
        ("key-based, warm: verify_image with cache (listing + hit)", key["warm_with_listing"], ""),
        (
            "keyless bundle, Safeguard",
            kl["safeguard"],
            f"<= sigstore-python (x{kl['ratio']:.2f}; x{kl['ratio_reused']:.2f} vs reused)",
        ),
        (
            "keyless bundle, Safeguard check + Verdict (no engine pre-parse)",
            kl["safeguard_check_only"],
            f"x{kl['check_only_ratio']:.2f}",
        ),
        ("keyless bundle, sigstore-python, Verifier per call", kl["sigstore_python"], "baseline"),
        (
            "keyless bundle, sigstore-python, one Verifier reused",
            kl["sigstore_python_reused_verifier"],
            "baseline",
        ),
    ]
    print("| measurement | median ms | p90 ms | target |")
    print("| --- | ---: | ---: | --- |")
    for name, stats, target in rows:
        print(f"| {name} | {stats['median_ms']:.3f} | {stats['p90_ms']:.3f} | {target} |")
    print(f"\nTargets met: {results['met']}\nWrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
