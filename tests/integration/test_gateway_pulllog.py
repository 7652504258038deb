"""The pull log end to end: skopeo pulls through the gateway (in front of the built-in registry
and of docker-registry) show up in ``safeguard inventory last-pull``, and pulls that bypass the
gateway arrive from a real docker-registry's notifications at ``inventory import-events
--listen``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from tests.fixtures import distribution
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port, wait_for_port
from tests.integration.test_skopeo_roundtrip import build_layout, skopeo
from tests.unit.gateway.harness import (
    GatewayServer,
    creds,
    run_gateway,
    run_owned_registry,
    skopeo_available,
    write_users,
)
from tests.unit.oci.artifacts import image

runner = CliRunner()


@pytest.fixture(scope="module", params=["builtin", "distribution"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    upstream: RegistryServer | None = None
    if request.param == "distribution":
        upstream = request.getfixturevalue("distribution_registry")
    workdir = tmp_path_factory.mktemp(f"gw-pulls-{request.param}")
    users = write_users(workdir / "users.yaml")
    with run_gateway(workdir, upstream, auth_file=users) as server:
        yield server


def last_pull(data_dir: Path, repository: str) -> dict[str, Any]:
    result = runner.invoke(
        app, ["inventory", "last-pull", repository, "--data-dir", str(data_dir), "-o", "json"]
    )
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def wait_for_pulls(data_dir: Path, repository: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        doc = last_pull(data_dir, repository)
        if sum(p["pulls"] for p in doc["pulls"]) >= count or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)


@pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
def test_pulls_through_the_gateway_reach_last_pull(gateway: GatewayServer, tmp_path: Path) -> None:
    repo = f"pulls/{uuid.uuid4().hex[:8]}"
    built = build_layout(tmp_path / "layout", "v1")
    target = f"docker://{gateway.host}/{repo}:v1"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds("ci"),
        f"oci:{tmp_path / 'layout'}:v1",
        target,
    )
    skopeo("inspect", "--raw", "--tls-verify=false", "--creds", creds("viewer"), target)
    doc = wait_for_pulls(gateway.data_dir, f"{gateway.host}/{repo}", 1)
    (pull,) = doc["pulls"]
    assert doc["repository"] == repo
    assert pull["digest"] == built["digest"]
    assert pull["identity"] == "viewer"
    assert pull["client"] == "127.0.0.1"
    assert "skopeo" in pull["userAgent"].lower() or "containers" in pull["userAgent"].lower()
    assert pull["source"] == "gateway"
    one = last_pull(gateway.data_dir, f"{repo}@{built['digest']}")
    assert one["pulls"][0]["lastPull"] == pull["lastPull"]


def test_last_pull_rejects_bad_names(tmp_path: Path) -> None:
    for bad in ("Team/App", "team/app@sha256:12", ""):
        result = runner.invoke(app, ["inventory", "last-pull", bad, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2, result.output


def test_import_events_file_and_hostile_files(tmp_path: Path) -> None:
    event = {
        "events": [
            {
                "action": "pull",
                "timestamp": "2026-11-28T10:00:00Z",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + "c" * 64,
                    "repository": "legacy/app",
                    "tag": "stable",
                },
                "request": {"addr": "192.0.2.10:40000", "useragent": "docker/24"},
                "actor": {},
            }
        ]
    }
    good = tmp_path / "events.json"
    good.write_text(json.dumps(event))
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, ["inventory", "import-events", str(good), *data, "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 1
    (pull,) = last_pull(tmp_path / "data", "legacy/app")["pulls"]
    assert (pull["source"], pull["client"], pull["reference"]) == ("event", "192.0.2.10", "stable")
    for raw in (b"{not json", b'{"events": "nope"}', b"\x00\x01"):
        bad = tmp_path / "bad.json"
        bad.write_bytes(raw)
        result = runner.invoke(app, ["inventory", "import-events", str(bad), *data])
        assert result.exit_code == 2, result.output
    assert runner.invoke(app, ["inventory", "import-events", *data]).exit_code == 2


@pytest.mark.skipif(not distribution.available(), reason="docker-registry is not installed")
def test_notifications_from_a_real_registry(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from safeguard.cli.app import main; main()",
            "inventory",
            "import-events",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        notifications = {
            "endpoints": [
                {
                    "name": "safeguard",
                    "url": f"http://127.0.0.1:{port}/events",
                    "timeout": "2s",
                    "threshold": 3,
                    "backoff": "200ms",
                }
            ]
        }
        with run_owned_registry(tmp_path / "registry", {"notifications": notifications}) as reg:
            artifact = image()
            repo = "bypass/app"
            with httpx.Client(base_url=reg.server.url) as client:
                for digest, blob in artifact.all_blobs().items():
                    started = client.post(
                        f"/v2/{repo}/blobs/uploads/?digest={digest}", content=blob
                    )
                    assert started.status_code in (201, 202), started.text
                    if started.status_code == 202:
                        location = started.headers["location"]
                        sep = "&" if "?" in location else "?"
                        assert (
                            client.put(f"{location}{sep}digest={digest}", content=blob).status_code
                            == 201
                        )
                put = client.put(
                    f"/v2/{repo}/manifests/v1",
                    content=artifact.raw,
                    headers={"content-type": artifact.media_type},
                )
                assert put.status_code == 201, put.text
                pulled = client.get(
                    f"/v2/{repo}/manifests/v1",
                    headers={"accept": artifact.media_type, "user-agent": "kubelet/1.30"},
                )
                assert pulled.status_code == 200
            doc = wait_for_pulls(data_dir, repo, 1)
        (pull,) = doc["pulls"]
        assert pull["digest"] == str(artifact.digest)
        assert pull["source"] == "event"
        assert pull["userAgent"] == "kubelet/1.30"
        assert pull["client"] == "127.0.0.1"
    finally:
        listener.terminate()
        listener.wait(timeout=10)
