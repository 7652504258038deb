"""``verify* --tlog-url``: the online log check, against real logs in ``safeguard serve``
subprocesses on real SQLite files.

Material is signed with ``--tlog-url``; the log is then stopped, its database tampered with as
the monitor tests do, and the log restarted (on another port: it keeps signing under the name it
was created with, which the exported trusted root names). ``verify-blob --tlog-url`` must refuse,
with exit 1 and the named reason, a rewritten entry (``TLOG_ENTRY_REWRITTEN``), a truncated log
(``TLOG_ROLLED_BACK``, also against a checkpoint remembered with ``--log-state``) and a forked copy
of the database served by a second server (``TLOG_FORKED``); the unmodified log passes, a log that
cannot be reached exits 3 (``TLOG_UNREACHABLE``), and without ``--tlog-url`` nothing changes.
Images (``verify``) are checked the same way, signature by signature.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.oci.client import RegistryClient
from tests.fixtures.builtin import serve_command
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.process import stop
from tests.unit.oci.artifacts import image, push
from tests.unit.verify.tlog_tamper import rewrite_entry, truncate

PASSWORD = "online log"
PREDICATE = Path(__file__).parents[1] / "fixtures/vectors/sigstore-python/slsa_predicate_v1_0.json"
runner = CliRunner()


@contextmanager
def serving(data: Path) -> Iterator[str]:
    """``safeguard serve`` over ``data`` on a free port; yields its URL. A new log is named after
    this first address; a restarted one keeps its name, wherever it is reached."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    env["SAFEGUARD_TLOG_HOSTNAME"] = f"127.0.0.1:{port}"
    data.mkdir(parents=True, exist_ok=True)
    log_path = data.parent / f"{data.name}-serve-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(serve_command(port, data), stdout=log, stderr=log, env=env)
        try:
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("online-keys") / "cosign", PASSWORD)


@dataclass
class Logged:
    """A log's data directory, its trusted root, and blobs signed into it (file, bundle)."""

    data: Path
    root: Path
    blobs: list[tuple[Path, Path]]
    key: Path
    pub: Path

    def sign(self, url: str, content: bytes) -> tuple[Path, Path]:
        artifact = self.data.parent / f"blob-{uuid.uuid4().hex[:8]}.txt"
        artifact.write_bytes(content)
        bundle = artifact.with_suffix(".sigstore.json")
        made = run("sign-blob", "--key", str(self.key), "--tlog-url", url,
                   "--bundle", str(bundle), str(artifact))  # fmt: skip
        assert made.exit_code == 0, made.output
        return artifact, bundle

    def verify(self, blob: tuple[Path, Path], *extra: str) -> Any:
        artifact, bundle = blob
        return run("verify-blob", "--key", str(self.pub), "--trusted-root", str(self.root),
                   "--bundle", str(bundle), "-o", "json", *extra, str(artifact))  # fmt: skip


@contextmanager
def logged(tmp_path: Path, keys: tuple[Path, Path], count: int = 4) -> Iterator[tuple[Logged, str]]:
    """A fresh log with ``count`` signed blobs, its root exported; yields it while it runs."""
    data = tmp_path / "log"
    root = tmp_path / "trusted_root.json"
    with serving(data) as url:
        made = Logged(data, root, [], *keys)
        made.blobs = [made.sign(url, b"blob %d\n" % i) for i in range(count)]
        exported = run("tlog", "export-trusted-root", "--url", url, "--out", str(root))
        assert exported.exit_code == 0, exported.output
        yield made, url


def refusal(result: Any) -> tuple[str, str]:
    assert result.exit_code == 1, result.output
    (item,) = json.loads(result.stdout)["evidence"]
    return item["code"], item["reason"]


def test_clean_log_passes_and_a_log_down_exits_3(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with logged(tmp_path, keys) as (log, url):
        result = log.verify(log.blobs[1], "--tlog-url", url)
        assert result.exit_code == 0, result.output
        (item,) = json.loads(result.stdout)["evidence"]
        online = item["tlog"][0]["online"]
        assert online["url"] == url and online["treeSize"] == 4 and online["bundleTreeSize"] == 2
        assert online["entry"] == "unchanged" and "checked online" in item["reason"]
        artifact, bundle = log.blobs[1]
        text = run("verify-blob", "--key", str(log.pub), "--trusted-root", str(log.root),
                   "--bundle", str(bundle), "--tlog-url", url, str(artifact))  # fmt: skip
        assert text.exit_code == 0 and f"checked online at {url} (tree size 4)" in text.stderr
        # Blob attestations too.
        attestation = artifact.with_suffix(".att.json")
        made = run("attest-blob", "--key", str(log.key), "--tlog-url", url, "--predicate",
                   str(PREDICATE), "--type", "slsaprovenance1", "--bundle", str(attestation),
                   str(artifact))  # fmt: skip
        assert made.exit_code == 0, made.output
        attested = run("verify-blob-attestation", "--key", str(log.pub), "--trusted-root",
                       str(log.root), "--type", "slsaprovenance1", "--bundle", str(attestation),
                       "--tlog-url", url, "-o", "json", str(artifact))  # fmt: skip
        assert attested.exit_code == 0, attested.output
        (item,) = json.loads(attested.stdout)["evidence"]
        assert item["tlog"][0]["online"]["treeSize"] == 5
        # Usage errors: a state without a URL, a URL without the log's key.
        assert log.verify(log.blobs[1], "--log-state", str(tmp_path / "s.json")).exit_code == 2
        no_root = run("verify-blob", "--key", str(log.pub), "--bundle", str(log.blobs[1][1]),
                      "--tlog-url", url, str(log.blobs[1][0]))  # fmt: skip
        assert no_root.exit_code == 2 and "--trusted-root" in no_root.stderr
    down = log.verify(log.blobs[1], "--tlog-url", url)
    assert down.exit_code == 3, down.output
    assert json.loads(down.stderr)["error"]["code"] == "TLOG_UNREACHABLE"
    assert log.verify(log.blobs[1]).exit_code == 0  # offline: unchanged, no log needed


def test_rewritten_entry(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with logged(tmp_path, keys) as (log, _):
        pass
    old, new = (Digest.of(b).hex.encode() for b in (b"blob 1\n", b"something else\n"))
    rewrite_entry(log.data, 1, body=lambda body: body.replace(old, new))
    with serving(log.data) as url:
        code, reason = refusal(log.verify(log.blobs[1], "--tlog-url", url))
        assert code == "TLOG_ENTRY_REWRITTEN" and "body differs" in reason
        assert log.verify(log.blobs[2], "--tlog-url", url).exit_code == 0
        assert log.verify(log.blobs[1]).exit_code == 0  # offline cannot see it


def test_truncated_log(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    state = tmp_path / "log-state.json"
    with logged(tmp_path, keys) as (log, url):
        assert log.verify(log.blobs[0], "--tlog-url", url, "--log-state", str(state)).exit_code == 0
    assert json.loads(state.read_text())["treeSize"] == 4
    truncate(log.data, 2)
    with serving(log.data) as url:
        code, reason = refusal(log.verify(log.blobs[3], "--tlog-url", url))
        assert code == "TLOG_ROLLED_BACK" and "went back from size 4 to 2" in reason
        # Entry 0 is still there, but the log is smaller than what was seen before.
        code, reason = refusal(
            log.verify(log.blobs[0], "--tlog-url", url, "--log-state", str(state))
        )
        assert code == "TLOG_ROLLED_BACK" and str(state) in reason
        assert log.verify(log.blobs[0], "--tlog-url", url).exit_code == 0
    assert json.loads(state.read_text())["treeSize"] == 4


def test_two_checkpoints_of_one_size(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with logged(tmp_path, keys) as (log, _):
        pass
    fork = tmp_path / "fork"
    shutil.copytree(log.data, fork)  # the same key, tree ID and origin
    with serving(log.data) as main_url, serving(fork) as fork_url:
        signed = log.sign(main_url, b"on the main log\n")
        log.sign(fork_url, b"on the fork\n")
        assert log.verify(signed, "--tlog-url", main_url).exit_code == 0
        code, reason = refusal(log.verify(signed, "--tlog-url", fork_url))
        assert code == "TLOG_FORKED" and "two different signed checkpoints of size 5" in reason
        log.sign(fork_url, b"more on the fork\n")
        code, reason = refusal(log.verify(signed, "--tlog-url", fork_url))
        assert code == "TLOG_FORKED" and "not an extension" in reason


async def _push_image(host: str) -> Digest:
    art = image()
    async with RegistryClient(host) as client:
        await push(client, "online/app", art, "v1")
    return art.digest


def test_image_signatures_checked_one_by_one(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """``sign`` logs a DSSE entry for the referrer bundle and a hashedrekord entry for the legacy
    ``.sig`` layer (SET only): each accepted signature is checked online on its own."""
    key, pub = keys
    with logged(tmp_path, keys, count=1) as (log, url):
        host = url.removeprefix("http://")
        digest = asyncio.run(_push_image(host))
        signed = run("sign", "--key", str(key), "--tlog-url", url, "-o", "json",
                     f"{host}/online/app@{digest}")  # fmt: skip
        assert signed.exit_code == 0, signed.output
        indexes = {e["kind"]: e["logIndex"] for e in json.loads(signed.stdout)["tlog"]}
        attested = run("attest", "--key", str(key), "--tlog-url", url, "--predicate",
                       str(PREDICATE), "--type", "slsaprovenance1",
                       f"{host}/online/app@{digest}")  # fmt: skip
        assert attested.exit_code == 0, attested.output

    def verify(url: str, command: str = "verify", *extra: str) -> Any:
        host = url.removeprefix("http://")
        return run(command, "--key", str(pub), "--trusted-root", str(log.root), "-o", "json",
                   "--tlog-url", url, *extra, f"{host}/online/app@{digest}")  # fmt: skip

    with serving(log.data) as url:
        clean = verify(url)
        assert clean.exit_code == 0, clean.output
        items = json.loads(clean.stdout)["evidence"]
        assert len(items) == 2 and all(
            i["tlog"][0]["online"]["entry"] == "unchanged" for i in items
        )
    rewrite_entry(log.data, indexes["dsse/0.0.1"], integrated_time=1)
    with serving(log.data) as url:
        one = verify(url)  # the legacy signature still stands: cosign accepts any valid one
        assert one.exit_code == 0, one.output
        codes = sorted(i["code"] for i in json.loads(one.stdout)["evidence"])
        assert codes == ["TLOG_ENTRY_REWRITTEN", "VERIFIED"]
    rewrite_entry(log.data, indexes["hashedrekord/0.0.1"], integrated_time=1)
    with serving(log.data) as url:
        both = verify(url)
        assert both.exit_code == 1
        codes = [i["code"] for i in json.loads(both.stdout)["evidence"]]
        assert codes == ["TLOG_ENTRY_REWRITTEN"] * 2
        # The attestations' entries are untouched: verify-attestation checks them online too.
        att = verify(url, "verify-attestation", "--type", "slsaprovenance1")
        assert att.exit_code == 0, att.output
        items = json.loads(att.stdout)["evidence"]
        assert items and all(i["tlog"][0]["online"]["entry"] == "unchanged" for i in items)
