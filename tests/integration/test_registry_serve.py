"""``safeguard serve`` as users run it: on PostgreSQL, with ``--port 0``, and with bad flags."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fixtures.builtin import (
    fresh_postgres_database,
    push_blob,
    push_image,
    run_builtin,
    serve_command,
    sha256,
)
from tests.fixtures.ports import free_port


def test_registry_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    with (
        fresh_postgres_database(postgres_url) as url,
        run_builtin(tmp_path, database_url=url) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        pushed = push_image(client, "pg/app", "v1")
        got = client.get("/v2/pg/app/manifests/v1")
        assert got.content == pushed["raw"]

        def push_tag(i: int) -> int:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                push_blob(c, "pg/app", b"shared blob")
                return c.put(
                    f"/v2/pg/app/manifests/t{i % 3}",
                    content=pushed["raw"],
                    headers={"content-type": pushed["mediaType"]},
                ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(push_tag, range(24))) == {201}
        assert client.get("/v2/pg/app/tags/list").json()["tags"] == ["t0", "t1", "t2", "v1"]
        assert client.head(f"/v2/pg/app/blobs/{sha256(b'shared blob')}").status_code == 200
        assert client.get("/v2/_catalog").json()["repositories"] == ["pg/app"]
    assert not (tmp_path / "data" / "safeguard.db").exists()  # nothing went to SQLite


def test_port_zero_picks_a_free_port_and_says_where(tmp_path: Path) -> None:
    env = {**os.environ, "SAFEGUARD_DATA_DIR": str(tmp_path / "envdata")}
    cmd = [
        sys.executable,
        "-c",
        "from safeguard.cli.app import main; main()",
        "serve",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.match(r"Safeguard listening on http://127\.0\.0\.1:(\d+) \(data: (.+)\)", line)
        assert match, line
        assert Path(match.group(2)) == (tmp_path / "envdata").resolve()
        response = httpx.get(f"http://127.0.0.1:{match.group(1)}/v2/", timeout=10)
        assert response.status_code == 200
        assert (tmp_path / "envdata" / "safeguard.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            serve_command(port, tmp_path / "data"), capture_output=True, timeout=60, check=False
        )
    assert result.returncode == 2
    assert b"cannot listen" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("database", "code"),
    [("mysql://nobody@localhost/x", 2), ("postgresql+psycopg://nobody@127.0.0.1:1/x", 3)],
)
def test_bad_database_urls(tmp_path: Path, database: str, code: int) -> None:
    result = subprocess.run(
        serve_command(free_port(), tmp_path / "data", database),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == code, result.stderr
    assert b"Traceback" not in result.stderr


def test_upload_route_needs_a_separator(builtin_registry: object) -> None:
    from tests.fixtures.distribution import RegistryServer

    assert isinstance(builtin_registry, RegistryServer)
    response = httpx.get(f"{builtin_registry.url}/v2/a/blobs/uploadsabc")
    assert response.status_code == 400  # "uploadsabc" read as a digest, and not a valid one
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
