"""Hostile and broken registries: every failure is a specific typed error, never a traceback.

A real registry will not serve tampered content, so these tests run a small deliberately broken
registry (starlette under uvicorn on a free loopback port) next to the real ones.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidManifest, RegistryError, Unreachable
from safeguard.core.reference import is_loopback_host
from safeguard.oci.client import RegistryClient
from safeguard.oci.errors import DigestMismatch, InsecureRegistry, SizeMismatch
from safeguard.oci.referrers import referrers_tag
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port
from tests.unit.oci.artifacts import image, push, referrer

GOOD = image()
SUBJECT = Digest.of(b"subject")
BLOB = b"the real blob content"
BLOB_DIGEST = Digest.of(BLOB)
SIG_TYPE = mt.SIGSTORE_BUNDLE_V03


def _index(entries: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    ).encode()


def _entry(data: bytes, artifact_type: str) -> dict[str, object]:
    return {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(Digest.of(data)),
        "size": len(data),
        "artifactType": artifact_type,
    }


def _app(port_holder: list[int]) -> Starlette:
    async def root(request: Request) -> Response:
        return JSONResponse({})

    async def manifest(request: Request) -> Response:
        repo, ref = request.path_params["repo"], request.path_params["ref"]
        if repo == "notjson" and ref == referrers_tag(SUBJECT):
            return Response(b"this is not json {", media_type=mt.OCI_INDEX)
        if repo == "wrongtype" and ref == referrers_tag(SUBJECT):
            return Response(GOOD.raw, media_type=mt.OCI_MANIFEST)
        if repo == "tampered" and ref == str(GOOD.digest):
            return Response(GOOD.raw.replace(b"tar+gzip", b"tar+gzIp"), media_type=mt.OCI_MANIFEST)
        if repo == "tampered" and ref == "v1":
            return Response(
                GOOD.raw,
                media_type=mt.OCI_MANIFEST,
                headers={"Docker-Content-Digest": str(Digest.of(b"something else"))},
            )
        if repo == "redirected":  # a manifest must come from the registry itself
            return Response(status_code=307, headers={"Location": f"/v2/good/manifests/{ref}"})
        if repo == "huge":
            body = b'{"schemaVersion":2,' + b" " * (5 * 1024 * 1024) + b"}"
            return Response(body, media_type=mt.OCI_MANIFEST)
        return JSONResponse(
            {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
            status_code=404,
        )

    async def blob(request: Request) -> Response:
        repo = request.path_params["repo"]
        if repo == "endless":

            async def far_too_much() -> AsyncIterator[bytes]:
                for _ in range(64):  # 4 MiB for a blob declared as 21 bytes
                    yield b"x" * 65536
                    await asyncio.sleep(0)

            return StreamingResponse(far_too_much())
        if repo == "redirectblob":  # as a storage backend or the gateway's --blob-redirect
            digest = request.path_params["digest"]
            return Response(status_code=307, headers={"Location": f"/v2/store/blobs/{digest}"})
        if repo == "store":
            return Response(BLOB, media_type="application/octet-stream")
        return Response(b"not the content you asked for", media_type="application/octet-stream")

    async def referrers(request: Request) -> Response:
        repo = request.path_params["repo"]
        a, b = b"a-sig", b"b-sbom"
        if repo == "junkapi":
            return Response(b"<html>oops</html>", media_type="text/html")
        if repo == "unfiltered":
            return Response(
                _index([_entry(a, SIG_TYPE), _entry(b, "application/spdx+json")]),
                media_type=mt.OCI_INDEX,
            )
        if repo == "paged":
            if request.query_params.get("page") == "2":
                return Response(
                    _index([_entry(b, "application/spdx+json")]), media_type=mt.OCI_INDEX
                )
            return Response(
                _index([_entry(a, SIG_TYPE)]),
                media_type=mt.OCI_INDEX,
                headers={"Link": f'</v2/{repo}/referrers/{SUBJECT}?page=2>; rel="next"'},
            )
        return PlainTextResponse("404 page not found", status_code=404)

    async def tags(request: Request) -> Response:
        repo = request.path_params["repo"]
        if repo == "elsewhere":
            link = '<http://evil.example/v2/x/tags/list?last=a>; rel="next"'
        else:  # "loop": the next page is this page again
            link = f'</v2/{repo}/tags/list>; rel="next"'
        return JSONResponse({"name": repo, "tags": ["a"]}, headers={"Link": link})

    return Starlette(
        routes=[
            Route("/v2/", root),
            Route("/v2/{repo}/manifests/{ref}", manifest),
            Route("/v2/{repo}/blobs/{digest}", blob),
            Route("/v2/{repo}/referrers/{digest}", referrers),
            Route("/v2/{repo}/tags/list", tags),
        ]
    )


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_app([port]), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "hostile registry did not start"
        time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_tag_schema_index_that_is_not_json(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(
            InvalidManifest, match=r"referrers tag .* is not a valid image index"
        ) as info:
            await client.referrers.list("notjson", SUBJECT)
    assert info.value.exit_code == 2


async def test_tag_schema_tag_holding_an_image_manifest(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(InvalidManifest, match="not an OCI image index"):
            await client.referrers.list("wrongtype", SUBJECT)


async def test_referrers_api_answering_junk(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(InvalidManifest, match="referrers response"):
            await client.referrers.from_api("junkapi", SUBJECT)


async def test_referrers_filtered_client_side_without_filters_applied(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        found = await client.referrers.from_api("unfiltered", SUBJECT, artifact_type=SIG_TYPE)
    assert [d.artifact_type for d in found or ()] == [SIG_TYPE]


async def test_referrers_api_pagination(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        found = await client.referrers.from_api("paged", SUBJECT)
    assert [d.digest for d in found or ()] == [Digest.of(b"a-sig"), Digest.of(b"b-sbom")]


def _names(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()]


async def test_blob_with_wrong_content(hostile: str, tmp_path: Path) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(DigestMismatch) as info:
            await client.blobs.get("evil", BLOB_DIGEST)
        assert info.value.expected == str(BLOB_DIGEST)
        assert info.value.exit_code == 1
        target = tmp_path / "blob"
        with pytest.raises(DigestMismatch):
            await client.blobs.download("evil", BLOB_DIGEST, target)
    assert _names(tmp_path) == []  # nothing half-written is left behind


async def test_redirects_are_followed_for_blobs_only(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        assert await client.blobs.get("redirectblob", BLOB_DIGEST) == BLOB
        with pytest.raises(RegistryError) as info:
            await client.manifests.get("redirected", "v1")
    assert info.value.status == 307


async def test_endless_blob_is_cut_at_its_declared_size(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(SizeMismatch):
            await client.blobs.get("endless", BLOB_DIGEST, size=len(BLOB))


async def test_manifest_with_wrong_content(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(DigestMismatch):
            await client.manifests.get("tampered", GOOD.digest)
        with pytest.raises(DigestMismatch):
            await client.manifests.get("tampered", "v1")  # Docker-Content-Digest disagrees


async def test_oversized_manifest(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(InvalidManifest, match="larger than"):
            await client.manifests.get("huge", "v1")


async def test_pagination_to_another_origin_or_in_a_loop(hostile: str) -> None:
    async with RegistryClient(hostile) as client:
        with pytest.raises(RegistryError, match="another origin"):
            await client.manifests.tags("elsewhere")
        with pytest.raises(RegistryError, match="does not end"):
            await client.manifests.tags("loop")


async def test_unreachable_registry() -> None:
    port = free_port()  # nothing listens there
    async with RegistryClient(f"127.0.0.1:{port}") as client:
        with pytest.raises(Unreachable) as info:
            await client.ping()
    assert info.value.exit_code == 3
    assert "running" in (info.value.hint or "")


async def test_http_to_a_remote_host_needs_the_flag() -> None:
    with pytest.raises(InsecureRegistry) as info:
        RegistryClient("registry.example.com", scheme="http")
    assert "--allow-insecure-registry" in (info.value.hint or "")
    RegistryClient("registry.example.com", scheme="http", allow_insecure=True)


def _non_loopback_name_for_loopback() -> str | None:
    """A host name that resolves to 127.0.0.1 but is not spelled as loopback (e.g. ``vm``)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None
    if is_loopback_host(name) or not address.startswith("127."):
        return None
    return name


async def test_insecure_flag_falls_back_to_plain_http(
    distribution_registry: RegistryServer,
) -> None:
    name = _non_loopback_name_for_loopback()
    if name is None:
        pytest.skip("this machine's host name does not resolve to loopback")
    port = distribution_registry.host.rsplit(":", 1)[1]
    host = f"{name}:{port}"
    # Without the flag the host is treated as remote: HTTPS, which this registry does not speak.
    async with RegistryClient(host) as client:
        with pytest.raises(Unreachable) as info:
            await client.ping()
    assert "--allow-insecure-registry" in (info.value.hint or "")
    # With the flag: HTTPS first, then plain HTTP, as Docker does for insecure registries.
    async with RegistryClient(host, allow_insecure=True) as client:
        await client.ping()
        await push(client, "insecure/app", GOOD, "v1")
        assert client.session.endpoint.scheme == "http"
        sig = referrer(GOOD, SIG_TYPE)
        await push(client, "insecure/app", sig)
        listed = await client.referrers.list("insecure/app", GOOD.digest)
        assert [d.digest for d in listed.descriptors] == [sig.digest]
