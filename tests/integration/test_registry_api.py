"""The built-in registry speaks distribution-spec v1.1: push, pull, chunked uploads, mounts,
tags, catalog, referrers and deletes, over plain httpx against ``safeguard serve``.

Tests that use ``any_registry`` run the same flow against Debian's distribution 2.8 too, so our
behaviour is checked against the reference implementation, not only against our reading of it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.builtin import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
    sha256,
)
from tests.fixtures.distribution import RegistryServer


def _repo(prefix: str = "t") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(any_registry: RegistryServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=any_registry.url, timeout=30) as c:
        yield c


@pytest.fixture
def builtin(builtin_registry: RegistryServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=builtin_registry.url, timeout=30) as c:
        yield c


def test_base_endpoint(client: httpx.Client) -> None:
    response = client.get("/v2/")
    assert response.status_code == 200
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_single_post_push_then_get_and_head(builtin: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(100_000)
    digest = sha256(data)
    response = builtin.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/blobs/{digest}"
    assert response.headers["docker-content-digest"] == digest
    head = builtin.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["docker-content-digest"] == digest
    assert head.content == b""
    got = builtin.get(f"/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200 and got.content == data


def test_post_then_put_and_pull(client: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(3000)
    desc = push_blob(client, repo, data)
    got = client.get(f"/v2/{repo}/blobs/{desc['digest']}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["docker-content-digest"] == desc["digest"]


def test_chunked_upload_with_status_and_final_chunk_in_put(client: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(2 * 1024 * 1024 + 123)
    digest = sha256(data)
    started = client.post(f"/v2/{repo}/blobs/uploads/", headers={"content-length": "0"})
    assert started.status_code == 202
    location = started.headers["location"]
    first, second = 1024 * 1024, 2 * 1024 * 1024
    patched = client.patch(
        location,
        content=data[:first],
        headers={"content-range": f"0-{first - 1}", "content-type": "application/octet-stream"},
    )
    assert patched.status_code == 202
    assert patched.headers["range"] == f"0-{first - 1}"
    location = patched.headers["location"]
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == f"0-{first - 1}"
    patched = client.patch(
        status.headers["location"],
        content=data[first:second],
        headers={"content-range": f"{first}-{second - 1}"},
    )
    assert patched.status_code == 202
    assert patched.headers["range"] == f"0-{second - 1}"
    location = patched.headers["location"]
    sep = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{sep}digest={digest}",
        content=data[second:],
        headers={"content-range": f"{second}-{len(data) - 1}"},
    )
    assert done.status_code == 201, done.text
    assert done.headers["docker-content-digest"] == digest
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_streamed_patch_without_content_range(client: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(1_500_000)
    digest = sha256(data)
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]

    def body() -> Iterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    patched = client.patch(location, content=body())
    assert patched.status_code == 202
    assert patched.headers["range"] == f"0-{len(data) - 1}"
    location = patched.headers["location"]
    sep = "&" if "?" in location else "?"
    assert client.put(f"{location}{sep}digest={digest}").status_code == 201
    assert client.head(f"/v2/{repo}/blobs/{digest}").headers["content-length"] == str(len(data))


def test_cancel_upload(client: httpx.Client) -> None:
    repo = _repo()
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    patched = client.patch(location, content=b"abc", headers={"content-range": "0-2"})
    location = patched.headers["location"]
    assert client.delete(location).status_code == 204
    status = client.get(location)
    assert status.status_code == 404
    assert error_codes(status) == ["BLOB_UPLOAD_UNKNOWN"]


def test_cross_repository_mount(client: httpx.Client) -> None:
    source, target = _repo("src"), _repo("dst")
    desc = push_blob(client, source, os.urandom(5000))
    mounted = client.post(f"/v2/{target}/blobs/uploads/?mount={desc['digest']}&from={source}")
    assert mounted.status_code == 201
    assert mounted.headers["location"].endswith(f"/v2/{target}/blobs/{desc['digest']}")
    assert client.head(f"/v2/{target}/blobs/{desc['digest']}").status_code == 200
    # a blob that is not in the source repository: a fresh upload session instead
    missing = sha256(b"never pushed")
    fallback = client.post(f"/v2/{target}/blobs/uploads/?mount={missing}&from={source}")
    assert fallback.status_code == 202
    assert "/blobs/uploads/" in fallback.headers["location"]


def test_blobs_are_scoped_per_repository(client: httpx.Client) -> None:
    one, other = _repo(), _repo()
    desc = push_blob(client, one, os.urandom(100))
    response = client.get(f"/v2/{other}/blobs/{desc['digest']}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_manifest_push_and_pull_by_tag_and_digest(client: httpx.Client) -> None:
    repo = _repo("a/b/c")
    pushed = push_image(client, repo, "v1")
    for reference in ("v1", pushed["digest"]):
        got = client.get(f"/v2/{repo}/manifests/{reference}", headers={"accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.content == pushed["raw"]
        assert got.headers["content-type"] == OCI_MANIFEST
        assert got.headers["docker-content-digest"] == pushed["digest"]
        head = client.head(f"/v2/{repo}/manifests/{reference}", headers={"accept": OCI_MANIFEST})
        assert head.status_code == 200
        assert head.headers["content-length"] == str(pushed["size"])
        assert head.headers["docker-content-digest"] == pushed["digest"]


def test_manifest_put_response_headers(builtin: httpx.Client) -> None:
    repo = _repo()
    pushed = push_image(builtin, repo)
    response = builtin.put(
        f"/v2/{repo}/manifests/again", content=pushed["raw"], headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/manifests/{pushed['digest']}"
    assert response.headers["docker-content-digest"] == pushed["digest"]
    assert "oci-subject" not in response.headers


def test_push_by_digest_with_tag_parameters(builtin: httpx.Client) -> None:
    repo = _repo()
    pushed = push_image(builtin, repo)
    response = builtin.put(
        f"/v2/{repo}/manifests/{pushed['digest']}?tag=1.0&tag=latest",
        content=pushed["raw"],
        headers={"content-type": OCI_MANIFEST},
    )
    assert response.status_code == 201
    assert response.headers["oci-tag"] == "1.0, latest"
    assert builtin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["1.0", "latest"]


def test_index_push_when_children_exist(client: httpx.Client) -> None:
    repo = _repo()
    children = [push_image(client, repo, seed=s) for s in (b"amd64", b"arm64")]
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": c["digest"], "size": c["size"]}
                for c in children
            ],
        }
    ).encode()
    response = client.put(
        f"/v2/{repo}/manifests/multi", content=index, headers={"content-type": OCI_INDEX}
    )
    assert response.status_code == 201, response.text
    got = client.get(f"/v2/{repo}/manifests/multi", headers={"accept": OCI_INDEX})
    assert got.content == index
    assert got.headers["content-type"] == OCI_INDEX


def test_tag_overwrite_moves_the_tag(client: httpx.Client) -> None:
    repo = _repo()
    first = push_image(client, repo, "moving", seed=b"1")
    second = push_image(client, repo, "moving", seed=b"2")
    assert first["digest"] != second["digest"]
    got = client.get(f"/v2/{repo}/manifests/moving", headers={"accept": OCI_MANIFEST})
    assert got.headers["docker-content-digest"] == second["digest"]
    # the first manifest is still there by digest
    old = client.get(f"/v2/{repo}/manifests/{first['digest']}", headers={"accept": OCI_MANIFEST})
    assert old.status_code == 200


def test_tag_list_pagination(builtin: httpx.Client) -> None:
    # builtin only: distribution 2.8 neither sorts nor paginates tag lists (3.0 does)
    client = builtin
    repo = _repo()
    pushed = push_image(client, repo, "v0")
    tags = ["B", "a", "a-1", "a.1", "a_1", "v0", "z"]
    for tag in tags:
        response = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=pushed["raw"],
            headers={"content-type": OCI_MANIFEST},
        )
        assert response.status_code == 201
    assert client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": sorted(tags)}
    seen: list[str] = []
    url = f"/v2/{repo}/tags/list?n=3"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        body = page.json()
        assert len(body["tags"]) <= 3
        seen += body["tags"]
        link = page.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else ""
    assert seen == sorted(tags)
    after = client.get(f"/v2/{repo}/tags/list?n=2&last=a-1").json()["tags"]
    assert after == ["a.1", "a_1"]
    assert client.get(f"/v2/{repo}/tags/list?n=0").json()["tags"] in ([], None)


def test_catalog_pagination(builtin: httpx.Client) -> None:
    prefix = f"cat{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}/r{i}" for i in range(5)]
    for name in names:
        push_blob(builtin, name, b"catalog")
    everything: list[str] = []
    url = "/v2/_catalog?n=2"
    while url:
        page = builtin.get(url)
        assert page.status_code == 200
        assert len(page.json()["repositories"]) <= 2
        everything += page.json()["repositories"]
        link = page.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")] if link else ""
    assert [n for n in everything if n.startswith(prefix)] == names
    assert everything == sorted(everything)


def test_referrers(builtin: httpx.Client) -> None:
    repo = _repo()
    image = push_image(builtin, repo, "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": image["digest"], "size": image["size"]}
    empty = push_blob(builtin, repo, b"{}")
    empty["mediaType"] = "application/vnd.oci.empty.v1+json"
    payload = push_blob(builtin, repo, b"signature bytes")
    pushed = {}
    for kind, note in (
        ("application/vnd.dev.sigstore.bundle.v0.3+json", "sig"),
        ("application/vnd.example.sbom.v1", "sbom"),
    ):
        raw = image_manifest(
            empty, [payload], subject=subject, artifact_type=kind, annotations={"note": note}
        )
        response = builtin.put(
            f"/v2/{repo}/manifests/{sha256(raw)}",
            content=raw,
            headers={"content-type": OCI_MANIFEST},
        )
        assert response.status_code == 201, response.text
        assert response.headers["oci-subject"] == image["digest"]
        pushed[kind] = {"digest": sha256(raw), "size": len(raw)}
    # a referrer whose artifact type comes from its config media type
    config = push_blob(builtin, repo, b'{"kind":"custom"}')
    config["mediaType"] = "application/vnd.example.config.v1+json"
    raw = image_manifest(config, [], subject=subject)
    assert (
        builtin.put(
            f"/v2/{repo}/manifests/{sha256(raw)}",
            content=raw,
            headers={"content-type": OCI_MANIFEST},
        ).status_code
        == 201
    )

    listed = builtin.get(f"/v2/{repo}/referrers/{image['digest']}")
    assert listed.status_code == 200
    assert listed.headers["content-type"] == OCI_INDEX
    index = listed.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_type = {d["artifactType"]: d for d in index["manifests"]}
    assert set(by_type) == {*pushed, "application/vnd.example.config.v1+json"}
    sig = by_type["application/vnd.dev.sigstore.bundle.v0.3+json"]
    assert sig["digest"] == pushed["application/vnd.dev.sigstore.bundle.v0.3+json"]["digest"]
    assert sig["annotations"] == {"note": "sig"}
    assert sig["mediaType"] == OCI_MANIFEST
    assert "oci-filters-applied" not in listed.headers

    filtered = builtin.get(
        f"/v2/{repo}/referrers/{image['digest']}",
        params={"artifactType": "application/vnd.example.sbom.v1"},
    )
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [d["annotations"]["note"] for d in filtered.json()["manifests"]] == ["sbom"]

    unknown = builtin.get(f"/v2/{repo}/referrers/{sha256(b'nothing refers to me')}")
    assert unknown.status_code == 200
    assert unknown.json()["manifests"] == []
    nowhere = builtin.get(f"/v2/{_repo()}/referrers/{image['digest']}")
    assert nowhere.status_code == 200 and nowhere.json()["manifests"] == []


def test_referrer_may_be_pushed_before_its_subject(builtin: httpx.Client) -> None:
    repo = _repo()
    ghost = sha256(b"a subject pushed later")
    empty = push_blob(builtin, repo, b"{}")
    empty["mediaType"] = "application/vnd.oci.empty.v1+json"
    raw = image_manifest(
        empty,
        [],
        subject={"mediaType": OCI_MANIFEST, "digest": ghost, "size": 10},
        artifact_type="application/vnd.example.early",
    )
    response = builtin.put(
        f"/v2/{repo}/manifests/{sha256(raw)}", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 201
    assert builtin.get(f"/v2/{repo}/referrers/{ghost}").json()["manifests"][0]["digest"] == sha256(
        raw
    )


def test_delete_tag_keeps_the_manifest(client: httpx.Client) -> None:
    repo = _repo()
    pushed = push_image(client, repo, "gone")
    if client.delete(f"/v2/{repo}/manifests/gone").status_code == 400:
        pytest.skip("distribution 2.8 does not delete tags")
    assert client.get(f"/v2/{repo}/manifests/gone").status_code == 404
    kept = client.get(f"/v2/{repo}/manifests/{pushed['digest']}", headers={"accept": OCI_MANIFEST})
    assert kept.status_code == 200


def test_delete_manifest_by_digest_removes_its_tags(client: httpx.Client) -> None:
    repo = _repo()
    pushed = push_image(client, repo, "doomed")
    assert client.delete(f"/v2/{repo}/manifests/{pushed['digest']}").status_code == 202
    for reference in ("doomed", pushed["digest"]):
        response = client.get(f"/v2/{repo}/manifests/{reference}", headers={"accept": OCI_MANIFEST})
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]
    again = client.delete(f"/v2/{repo}/manifests/{pushed['digest']}")
    assert again.status_code == 404


def test_delete_blob(client: httpx.Client) -> None:
    repo = _repo()
    desc = push_blob(client, repo, os.urandom(64))
    assert client.delete(f"/v2/{repo}/blobs/{desc['digest']}").status_code == 202
    response = client.head(f"/v2/{repo}/blobs/{desc['digest']}")
    assert response.status_code == 404
    missing = client.delete(f"/v2/{repo}/blobs/{desc['digest']}")
    assert missing.status_code == 404
    assert error_codes(missing) == ["BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=500-1499", 500, 1499),
        ("bytes=500-", 500, 2047),
        ("bytes=-500", 1548, 2047),
        ("bytes=2000-5000", 2000, 2047),
    ],
)
def test_range_requests(client: httpx.Client, header: str, start: int, end: int) -> None:
    repo = _repo()
    data = os.urandom(2048)
    desc = push_blob(client, repo, data)
    response = client.get(f"/v2/{repo}/blobs/{desc['digest']}", headers={"range": header})
    assert response.status_code == 206
    assert response.content == data[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/2048"
    assert response.headers["content-length"] == str(end - start + 1)


def test_accept_header_negotiation(builtin: httpx.Client) -> None:
    repo = _repo()
    push_image(builtin, repo, "v1")
    url = f"/v2/{repo}/manifests/v1"
    assert builtin.get(url, headers={"accept": "*/*"}).status_code == 200
    assert builtin.get(url, headers={"accept": "application/*"}).status_code == 200
    several = f"application/vnd.docker.distribution.manifest.v2+json, {OCI_MANIFEST};q=0.5"
    assert builtin.get(url, headers={"accept": several}).status_code == 200
    refused = builtin.get(
        url, headers={"accept": "application/vnd.docker.distribution.manifest.v2+json"}
    )
    assert refused.status_code == 404
    assert error_codes(refused) == ["MANIFEST_UNKNOWN"]
    assert builtin.get(url, headers={"accept": f"{OCI_MANIFEST};q=0"}).status_code == 404


def test_sha512_blob_upload(builtin: httpx.Client) -> None:
    import hashlib

    repo = _repo()
    data = os.urandom(10_000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    started = builtin.post(f"/v2/{repo}/blobs/uploads/?digest-algorithm=sha512")
    assert started.status_code == 202
    location = started.headers["location"]
    patched = builtin.patch(location, content=data, headers={"content-range": "0-9999"})
    assert patched.status_code == 202
    done = builtin.put(f"{patched.headers['location']}?digest={digest}")
    assert done.status_code == 201, done.text
    assert builtin.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_large_blob_round_trip(builtin: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(9 * 1024 * 1024 + 7)
    digest = sha256(data)
    response = builtin.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201
    with builtin.stream("GET", f"/v2/{repo}/blobs/{digest}") as streamed:
        assert streamed.headers["content-length"] == str(len(data))
        assert b"".join(streamed.iter_bytes()) == data


def test_config_mediatype_and_docker_manifest(builtin: httpx.Client) -> None:
    repo = _repo()
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    config = push_blob(builtin, repo, b'{"os":"linux"}')
    config["mediaType"] = "application/vnd.docker.container.image.v1+json"
    layer = push_blob(builtin, repo, b"docker layer")
    layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": docker, "config": config, "layers": [layer]}
    ).encode()
    assert (
        builtin.put(
            f"/v2/{repo}/manifests/d", content=raw, headers={"content-type": docker}
        ).status_code
        == 201
    )
    got = builtin.get(f"/v2/{repo}/manifests/d", headers={"accept": docker})
    assert got.headers["content-type"] == docker
    assert got.content == raw
    assert OCI_CONFIG  # the constant is shared with the helpers
