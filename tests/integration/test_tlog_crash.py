"""Crash safety of the log: ``safeguard serve`` in a subprocess, many concurrent submissions,
``kill -9`` in the middle of the stream; after a restart on the same data directory, no entry that
was answered 201 is lost or changed, and the tree is consistent with every checkpoint published
before the crash. ``safeguard tlog monitor`` (the CLI, over real HTTP) agrees across the crash."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from safeguard.cli.app import app as cli
from safeguard.keys import SoftwareSigner
from safeguard.tlog import merkle
from tests.fixtures.builtin import serve_command
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.process import stop
from tests.unit.tlog.tlog_helpers import hashedrekord


@contextmanager
def serve(data_dir: Path, log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(serve_command(port, data_dir), stdout=log, stderr=log, env=env)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            stop(proc)


def _monitor(url: str, state: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli, ["tlog", "monitor", "--url", url, "--state", str(state), "--output", "json"]
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["ok"], report
    return report


def test_kill_9_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    data_dir, log_path, state = tmp_path / "data", tmp_path / "serve.log", tmp_path / "mon.json"
    signer = SoftwareSigner.generate()
    acked: dict[int, dict[str, Any]] = {}
    heads: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**9))

    def submit(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                try:
                    r = client.post(
                        "/api/v1/log/entries", json=hashedrekord(signer, b"crash %d" % n)
                    )
                except httpx.HTTPError:
                    return
                if r.status_code != 201:
                    continue
                ((entry_id, entry),) = r.json().items()
                proof = entry["verification"]["inclusionProof"]
                with lock:
                    acked[entry["logIndex"]] = {"id": entry_id, "body": entry["body"]}
                    heads[proof["treeSize"]] = bytes.fromhex(proof["rootHash"])

    with serve(data_dir, log_path) as (url, proc):
        threads = [threading.Thread(target=submit, args=(url,)) for _ in range(16)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        _monitor(url, state)  # remembers a checkpoint taken while appends are under way
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)  # mid-batch: submissions are continuously in flight
        proc.wait()
        stop.set()
        for t in threads:
            t.join()
    assert len(acked) >= 400, log_path.read_text()[-2000:]

    with serve(data_dir, log_path) as (url, _):
        with httpx.Client(base_url=url, timeout=10) as client:
            info = client.get("/api/v1/log").json()
            size, root = info["treeSize"], bytes.fromhex(info["rootHash"])
            assert size >= max(acked) + 1
            # Every acknowledged entry is there, unchanged, at its index.
            for start in range(0, max(acked) + 1, 10):
                wanted = [i for i in range(start, start + 10) if i in acked]
                if not wanted:
                    continue
                got = client.post("/api/v1/log/entries/retrieve", json={"logIndexes": wanted})
                by_index = {e["logIndex"]: (i, e) for d in got.json() for i, e in d.items()}
                for index in wanted:
                    entry_id, entry = by_index[index]
                    assert entry_id == acked[index]["id"]
                    assert entry["body"] == acked[index]["body"]
            # The tree after the crash extends every checkpoint published before it.
            for old_size in [*sorted(heads)[:: max(1, len(heads) // 40)], max(heads)]:
                proof = client.get(
                    "/api/v1/log/proof", params={"firstSize": old_size, "lastSize": size}
                ).json()
                merkle.verify_consistency(
                    old_size,
                    size,
                    [bytes.fromhex(h) for h in proof["hashes"]],
                    heads[old_size],
                    root,
                )
            leaf = merkle.leaf_hash(base64.b64decode(acked[0]["body"]))
            assert leaf.hex() == acked[0]["id"][16:]
            # The log takes new entries after the restart.
            more = client.post("/api/v1/log/entries", json=hashedrekord(signer, b"after"))
            assert more.status_code == 201
            assert next(iter(more.json().values()))["logIndex"] == size
        report = _monitor(url, state)
        assert report["current"]["treeSize"] == size + 1
        assert report["entries_checked"] == size + 1
