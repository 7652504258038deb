"""Quarantine moves on the built-in registry and on docker-registry 2.8: interrupted after every
journaled step — in-process with a step hook, and by killing a real ``safeguard serve`` — and
resumed, with the artifact (manifest, OCI referrers, cosign ``.sig`` tag) never lost: at every
point it is in its repository, in quarantine, or both; then served under its old name with a
``Warning`` until the deadline (pulls logged as quarantined), and purged after it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.core.reference import Reference
from safeguard.gateway.quarantine import Entry, QuarantineJournal, QuarantineMover
from safeguard.gateway.upstream import HttpUpstream, InProcessUpstream, Upstream
from safeguard.keys.software import SoftwareSigner
from safeguard.oci.client import RegistryClient
from safeguard.oci.transport.credentials import Credentials
from safeguard.registry import create_registry_app
from safeguard.signing.sign import sign_image
from safeguard.store import Database, default_database_url, open_database
from tests.fixtures.distribution import RegistryServer
from tests.unit.gateway.harness import (
    USERS,
    GatewayServer,
    basic,
    kill,
    run_owned_registry,
    start_gateway,
    write_users,
)
from tests.unit.oci.artifacts import Artifact, image, push, referrer

runner = CliRunner()
ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


class Crash(Exception):
    pass


@pytest.fixture(params=["builtin", "distribution"])
async def upstream(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Upstream, Database]]:
    db = open_database(default_database_url(tmp_path / "gateway"))
    if request.param == "builtin":
        registry = create_registry_app(db, tmp_path / "registry")
        up: Upstream = InProcessUpstream(registry)
    else:
        server: RegistryServer = request.getfixturevalue("distribution_registry")
        up = HttpUpstream(server.url)
    yield up, db
    await up.aclose()
    db.dispose()


async def populate(client: RegistryClient, repo: str) -> tuple[Artifact, set[Digest]]:
    """An image with a signature (referrer and .sig tag) and an SBOM referrer."""
    subject = image()
    await push(client, repo, subject, "v1")
    sbom = referrer(subject, "application/spdx+json")
    await push(client, repo, sbom)
    signed = await sign_image(
        client, Reference(client.host, repo, None, subject.digest), SoftwareSigner.generate()
    )
    assert signed.referrer is not None and signed.legacy is not None
    return subject, {subject.digest, sbom.digest, signed.referrer, signed.legacy.digest}


async def locations(client: RegistryClient, repos: tuple[str, str], digests: set[Digest]) -> dict:
    out: dict[Digest, set[str]] = {}
    for digest in digests:
        out[digest] = {r for r in repos if await client.manifests.head(r, digest) is not None}
    return out


@pytest.mark.parametrize("crash_after", ["planned", "copied", "verified", "removed"])
async def test_a_move_interrupted_after_each_step_resumes_losing_nothing(
    upstream: tuple[Upstream, Database], crash_after: str
) -> None:
    up, db = upstream
    client = up.client()
    repo = f"qr/{uuid.uuid4().hex[:8]}"
    target = f"quarantine/{repo}"
    subject, digests = await populate(client, repo)
    journal = QuarantineJournal(db)
    entry = journal.plan(
        kind="move",
        repository=repo,
        tag="v1",
        digest=str(subject.digest),
        namespace="quarantine",
        until=datetime.now(UTC) + timedelta(days=1),
        reason="test",
        actor="tester",
        serve=True,
    )

    def hook(_: int, state: str) -> None:
        if state == crash_after:
            raise Crash(state)

    if crash_after != "planned":
        with pytest.raises(Crash):
            await QuarantineMover(journal, up, after_step=hook).run(entry)
    current = journal.get(entry.id)
    assert current is not None and current.state == crash_after
    where = await locations(client, (repo, target), digests)
    assert all(where[d] for d in digests), where  # never in neither place
    resumed: Entry = await QuarantineMover(journal, up).run(current)
    assert resumed.state == "removed"
    assert set(resumed.referrers) >= {str(d) for d in digests - {subject.digest}}
    where = await locations(client, (repo, target), digests)
    assert all(where[d] == {target} for d in digests), where
    copy = await client.manifests.get(target, "v1")
    assert copy.raw == subject.raw
    for blob, data in subject.blobs.items():
        assert await client.blobs.get(target, blob) == data


async def test_plan_joins_an_unfinished_move(upstream: tuple[Upstream, Database]) -> None:
    up, db = upstream
    journal = QuarantineJournal(db)
    common: dict[str, Any] = {
        "kind": "move",
        "repository": "qr/same",
        "tag": None,
        "digest": "sha256:" + "e" * 64,
        "namespace": "quarantine",
        "until": datetime.now(UTC) + timedelta(days=1),
        "reason": "x",
        "actor": "a",
        "serve": True,
    }
    first = journal.plan(**common)
    assert journal.plan(**common).id == first.id
    with pytest.raises(Exception) as info:  # nothing to move: a typed NotFound, journaled
        await QuarantineMover(journal, up).run(first)
    assert getattr(info.value, "code", "") == "NOT_FOUND"
    failed = journal.get(first.id)
    assert failed is not None and failed.state == "planned" and failed.error


def _cli(*args: str, user: str = "root") -> Any:
    env = {"SAFEGUARD_GATEWAY_PASSWORD": USERS[user][0]}
    return runner.invoke(app, [*args, "--username", user, "-o", "json"], env=env)


def _pull(gateway: GatewayServer, repo: str, reference: str) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        return c.get(f"/v2/{repo}/manifests/{reference}", headers={"accept": ACCEPT})


@pytest.mark.parametrize("kind", ["builtin", "distribution"])
def test_killed_gateway_resumes_then_serves_and_purges(kind: str, tmp_path: Path) -> None:
    import asyncio
    import contextlib

    users = write_users(tmp_path / "users.yaml")
    with contextlib.ExitStack() as stack:
        upstream = None
        if kind == "distribution":
            upstream = stack.enter_context(run_owned_registry(tmp_path / "upstream")).server
        data = tmp_path / "gw"
        env = {"SAFEGUARD_QUARANTINE_CRASH_AFTER": "copied"}
        gateway = start_gateway(data, upstream, auth_file=users, env=env)
        stack.callback(lambda: kill(gateway) if gateway.proc.poll() is None else None)
        repo = f"team/{uuid.uuid4().hex[:8]}"

        async def setup() -> tuple[Artifact, set[Digest]]:
            creds = Credentials("ci", USERS["ci"][0])
            async with RegistryClient(gateway.host, credentials=creds) as client:
                return await populate(client, repo)

        subject, digests = asyncio.run(setup())
        until = (datetime.now(UTC) + timedelta(seconds=8)).isoformat()
        moved = _cli(
            "quarantine", "move", f"{gateway.host}/{repo}:v1", "--until", until,
            "--reason", "CVE-2026-0001",
        )  # fmt: skip
        assert moved.exit_code == 3, moved.output  # the gateway died mid-move
        gateway.proc.wait(timeout=10)
        # restart without the fault: the interrupted move is finished at start-up
        gateway = start_gateway(
            data, upstream, auth_file=users, port=int(gateway.host.split(":")[1])
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listed = _cli("quarantine", "list", gateway.host)
            entries = json.loads(listed.stdout)["entries"]
            if entries and entries[0]["state"] == "removed":
                break
            time.sleep(0.2)
        (entry,) = entries
        assert entry["state"] == "removed" and entry["served"]
        target = f"quarantine/{repo}"
        # served under the old name, with a warning, and logged as such
        pulled = _pull(gateway, repo, "v1")
        assert pulled.status_code == 200, pulled.text
        assert pulled.content == subject.raw
        assert pulled.headers["warning"].startswith('299 - "')
        assert (
            "quarantined" in pulled.headers["warning"]
            and "CVE-2026-0001" in pulled.headers["warning"]
        )
        assert _pull(gateway, repo, str(subject.digest)).status_code == 200
        assert _pull(gateway, target, "v1").status_code == 200
        # nothing is left in the old repository itself
        assert _pull(gateway, target, str(subject.digest)).content == subject.raw
        time.sleep(1.0)  # the pull log flushes
        pulls = runner.invoke(
            app, ["inventory", "last-pull", repo, "--data-dir", str(data), "-o", "json"]
        )
        (logged,) = json.loads(pulls.stdout)["pulls"]
        assert logged["identity"] == "viewer"
        with httpx.Client(base_url=gateway.url, headers={"authorization": basic("ci")}) as c:
            refused = c.delete(f"/v2/{target}/manifests/{subject.digest}")
            assert refused.status_code == 403  # the quarantine is read-only
        # past the deadline: no longer served; purge removes the copy
        while datetime.now(UTC) < datetime.fromisoformat(until):
            time.sleep(0.2)
        assert _pull(gateway, repo, "v1").status_code == 404
        purged = _cli("quarantine", "purge", gateway.host)
        assert purged.exit_code == 0, purged.output
        assert [p["id"] for p in json.loads(purged.stdout)["purged"]] == [entry["id"]]
        assert _pull(gateway, target, str(subject.digest)).status_code == 404
        for digest in digests:
            assert _pull(gateway, target, str(digest)).status_code == 404
        (after,) = json.loads(_cli("quarantine", "list", gateway.host).stdout)["entries"]
        assert after["state"] == "purged"
        assert json.loads(_cli("quarantine", "purge", gateway.host).stdout)["purged"] == []


def test_move_input_errors(tmp_path: Path) -> None:
    users = write_users(tmp_path / "users.yaml")
    gateway = start_gateway(tmp_path / "gw", None, auth_file=users)
    try:
        later = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        host = gateway.host
        cases = [
            (["quarantine", "move", f"{host}/team/none:v1", "--until", later, "--reason", "x"], 2),
            (
                [
                    "quarantine",
                    "move",
                    f"{host}/team/app:v1",
                    "--until",
                    "2001-01-01",
                    "--reason",
                    "x",
                ],
                2,
            ),
            (["quarantine", "move", f"{host}/team/app:v1", "--until", "soon", "--reason", "x"], 2),
            (["quarantine", "move", "team/app:v1", "--until", later, "--reason", "x"], 2),
        ]
        for args, code in cases:
            result = _cli(*args)
            assert result.exit_code == code, (args, result.output)
        refused = _cli("quarantine", "list", host, user="ci")
        assert refused.exit_code == 2 and "not an admin" in refused.output
    finally:
        kill(gateway)
