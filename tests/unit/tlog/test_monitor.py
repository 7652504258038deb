"""The monitor catches a rewritten entry, a truncated (rolled-back) log, a forked history, and a
checkpoint by the wrong key, each with its stable code; a clean log passes and moves the state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient
from typer.testing import CliRunner

from safeguard.cli.app import app as cli
from safeguard.keys import SoftwareSigner
from safeguard.server import SafeguardApp, create_app
from safeguard.tlog import storage
from safeguard.tlog.monitor import FindingCode, MonitorReport, monitor
from tests.unit.tlog.tlog_helpers import hashedrekord

SIGNER = SoftwareSigner.generate()


def _close(app: SafeguardApp) -> None:
    for close in app.closers:
        close()
    app.db.dispose()


def _append(app: SafeguardApp, prefix: str, count: int) -> None:
    with TestClient(app) as client:
        for i in range(count):
            response = client.post(
                "/api/v1/log/entries", json=hashedrekord(SIGNER, f"{prefix}{i}".encode())
            )
            assert response.status_code == 201, response.text


def _run(data_dir: Path, state: Path, pem: bytes | None = None) -> MonitorReport:
    app = create_app(data_dir)
    try:
        with TestClient(app) as client:
            return monitor("http://testserver", state, public_key_pem_bytes=pem, client=client)
    finally:
        _close(app)


def _codes(report: MonitorReport) -> list[str]:
    return [f.code.value for f in report.findings]


def _grown(data_dir: Path, prefix: str, count: int) -> None:
    app = create_app(data_dir)
    try:
        _append(app, prefix, count)
    finally:
        _close(app)


def test_clean_log_passes_and_state_moves(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    _grown(data, "a", 300)
    first = _run(data, state)
    assert first.ok and first.trusted_on_first_use and first.entries_checked == 300
    _grown(data, "b", 7)
    second = _run(data, state)
    assert second.ok, second.findings
    assert json.loads(state.read_text())["treeSize"] == 307


def test_rewritten_entry(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    _grown(data, "a", 20)
    assert _run(data, state).ok
    app = create_app(data)
    try:
        with app.db.write() as conn:
            body = conn.execute(
                sa.select(storage.ENTRIES.c.body).where(storage.ENTRIES.c.idx == 5)
            ).scalar_one()
            conn.execute(
                sa.update(storage.ENTRIES)
                .where(storage.ENTRIES.c.idx == 5)
                .values(body=body.replace(b"sha256", b"sha384"))
            )
    finally:
        _close(app)
    report = _run(data, state)
    assert _codes(report) == ["ENTRY_REWRITTEN"]
    assert report.findings[0].detail == {"logIndex": 5}


def test_truncated_log_is_a_rollback(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    _grown(data, "a", 30)
    assert _run(data, state).ok
    app = create_app(data)
    try:
        with app.db.write() as conn:
            keep = 20
            conn.execute(sa.delete(storage.ENTRIES).where(storage.ENTRIES.c.idx >= keep))
            for level in range(6):
                conn.execute(
                    sa.delete(storage.NODES).where(
                        storage.NODES.c.level == level, storage.NODES.c.idx >= keep >> level
                    )
                )
            conn.execute(sa.delete(storage.CHECKPOINTS).where(storage.CHECKPOINTS.c.size > keep))
            note = conn.execute(
                sa.select(storage.CHECKPOINTS.c.note, storage.CHECKPOINTS.c.root_hash).where(
                    storage.CHECKPOINTS.c.size == keep
                )
            ).one()
            storage.update_state(conn, keep, note[1], note[0])
    finally:
        _close(app)
    report = _run(data, state)
    assert _codes(report) == ["CHECKPOINT_ROLLBACK"]
    assert report.findings[0].detail["size"] == 20
    assert json.loads(state.read_text())["treeSize"] == 30  # the state never moves back


def test_forked_history(tmp_path: Path) -> None:
    main, fork, state = tmp_path / "main", tmp_path / "fork", tmp_path / "state.json"
    _grown(main, "a", 10)
    shutil.copytree(main, fork)  # a forked copy of the database, same key and tree ID
    _grown(main, "main", 5)
    _grown(fork, "fork", 5)
    assert _run(main, state).ok
    same_size = _run(fork, state)
    assert _codes(same_size) == ["FORKED_HISTORY"]
    assert "two different signed checkpoints of size 15" in same_size.findings[0].message
    _grown(fork, "more", 3)
    larger = _run(fork, state)
    assert _codes(larger) == ["FORKED_HISTORY"]
    assert "not an extension" in larger.findings[0].message


def test_wrong_key_and_cli_exit_code(tmp_path: Path) -> None:
    data, state = tmp_path / "data", tmp_path / "state.json"
    _grown(data, "a", 3)
    other = SoftwareSigner.generate().public_key_pem
    report = _run(data, state, pem=other)
    assert _codes(report) == [FindingCode.CHECKPOINT_SIGNATURE_INVALID.value]
    assert not state.exists()
    # The CLI against an unreachable URL: exit code 3, a clean error.
    result = CliRunner().invoke(
        cli, ["tlog", "monitor", "--url", "http://127.0.0.1:9", "--state", str(state)]
    )
    assert result.exit_code == 3, result.output
