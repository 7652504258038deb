"""Hostile and broken input against the built-in registry: every case gets the spec's error code
and status, and leaves no partial blob, upload, tag or manifest behind."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.builtin import (
    OCI_INDEX,
    OCI_MANIFEST,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
    sha256,
)
from tests.fixtures.distribution import RegistryServer


def _repo() -> str:
    return f"h/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server(builtin_registry: RegistryServer) -> RegistryServer:
    return builtin_registry


@pytest.fixture
def client(server: RegistryServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _blob_file(server: RegistryServer, digest: str) -> Path:
    assert server.root is not None
    algorithm, hex_ = digest.split(":")
    return server.root / "blobs" / algorithm / hex_[:2] / hex_


def _upload_file(server: RegistryServer, location: str) -> Path:
    assert server.root is not None
    return server.root / "uploads" / location.rsplit("/", 1)[1].split("?")[0]


def _assert_no_blob(client: httpx.Client, server: RegistryServer, repo: str, digest: str) -> None:
    response = client.head(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 404
    assert not _blob_file(server, digest).exists()


def _assert_no_tag(client: httpx.Client, repo: str, tag: str) -> None:
    response = client.get(f"/v2/{repo}/manifests/{tag}")
    assert response.status_code == 404
    listing = client.get(f"/v2/{repo}/tags/list")
    if listing.status_code == 200:
        assert tag not in (listing.json()["tags"] or [])
    else:
        assert error_codes(listing) == ["NAME_UNKNOWN"]


# -- names, tags and digests in URLs -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["%2E%2E/x", "A/b", "a" * 256, "a//b", "a/-b", "a_/b", "UPPER", "a/b%20c", "%2Fabs"],
)
def test_invalid_repository_names(client: httpx.Client, name: str) -> None:
    for method, path in (
        ("GET", f"/v2/{name}/manifests/latest"),
        ("PUT", f"/v2/{name}/manifests/latest"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/blobs/{sha256(b'x')}"),
        ("GET", f"/v2/{name}/referrers/{sha256(b'x')}"),
    ):
        response = client.request(method, path, content=b"{}" if method == "PUT" else None)
        assert response.status_code == 400, (method, path, response.text)
        assert error_codes(response) == ["NAME_INVALID"]
    catalog = client.get("/v2/_catalog").json()["repositories"]
    assert not [r for r in catalog if r.lower() != r or ".." in r]


def test_name_at_the_length_limit_is_accepted(client: httpx.Client) -> None:
    name = "n/" + "a" * 253
    push_blob(client, name, b"long name")
    assert client.get(f"/v2/{name}/tags/list").json() == {"name": name, "tags": []}


@pytest.mark.parametrize("tag", ["-bad", ".bad", "a" * 129, "bad%20tag", "b@d"])
def test_invalid_tags(client: httpx.Client, tag: str) -> None:
    repo = _repo()
    pushed = push_image(client, repo)
    response = client.put(
        f"/v2/{repo}/manifests/{tag}", content=pushed["raw"], headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["TAG_INVALID"]
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []  # no tag was created


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "sha256:" + "A" * 64]
)
def test_invalid_digests(client: httpx.Client, digest: str) -> None:
    repo = _repo()
    for method, path in (
        ("GET", f"/v2/{repo}/blobs/{digest}"),
        ("DELETE", f"/v2/{repo}/blobs/{digest}"),
        ("GET", f"/v2/{repo}/manifests/{digest}"),
        ("GET", f"/v2/{repo}/referrers/{digest}"),
        ("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}"),
        ("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from=x"),
    ):
        response = client.request(method, path)
        assert response.status_code == 400, (method, path)
        assert error_codes(response) == ["DIGEST_INVALID"]


def test_unknown_things_are_404_with_codes(client: httpx.Client) -> None:
    repo = _repo()
    missing = sha256(b"missing")
    cases = [
        ("GET", f"/v2/{repo}/manifests/latest", "MANIFEST_UNKNOWN"),
        ("HEAD", f"/v2/{repo}/manifests/{missing}", None),
        ("DELETE", f"/v2/{repo}/manifests/latest", "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/{missing}", "BLOB_UNKNOWN"),
        ("GET", f"/v2/{repo}/tags/list", "NAME_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/uploads/{uuid.uuid4()}", "BLOB_UPLOAD_UNKNOWN"),
        ("PATCH", f"/v2/{repo}/blobs/uploads/../../../etc/passwd", None),
        ("GET", f"/v2/{repo}/blobs/uploads/not-a-uuid", "BLOB_UPLOAD_UNKNOWN"),
        ("GET", "/v2/nothing/here", "UNSUPPORTED"),
    ]
    for method, path, code in cases:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.status_code)
        if code:
            assert error_codes(response) == [code]


def test_method_not_allowed(client: httpx.Client) -> None:
    response = client.post(f"/v2/{_repo()}/manifests/latest")
    assert response.status_code == 405
    assert error_codes(response) == ["UNSUPPORTED"]


# -- blob uploads ----------------------------------------------------------------------------


def test_monolithic_digest_mismatch_leaves_nothing(
    client: httpx.Client, server: RegistryServer
) -> None:
    repo = _repo()
    data = os.urandom(5000)
    claimed = sha256(b"something else")
    assert server.root is not None
    uploads = server.root / "uploads"
    uploads_before = set(uploads.iterdir())
    response = client.post(f"/v2/{repo}/blobs/uploads/?digest={claimed}", content=data)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    _assert_no_blob(client, server, repo, claimed)
    _assert_no_blob(client, server, repo, sha256(data))
    assert set(uploads.iterdir()) <= uploads_before


def test_final_put_digest_mismatch_ends_the_session(
    client: httpx.Client, server: RegistryServer
) -> None:
    repo = _repo()
    data = os.urandom(4000)
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    client.patch(location, content=data, headers={"content-range": "0-3999"})
    wrong = sha256(b"not the data")
    response = client.put(f"{location}?digest={wrong}")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.get(location).status_code == 404
    assert not _upload_file(server, location).exists()
    _assert_no_blob(client, server, repo, wrong)
    _assert_no_blob(client, server, repo, sha256(data))


def test_put_without_digest(client: httpx.Client) -> None:
    location = client.post(f"/v2/{_repo()}/blobs/uploads/").headers["location"]
    response = client.put(location, content=b"abc")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_out_of_order_chunks_get_416_and_the_upload_survives(
    client: httpx.Client, server: RegistryServer
) -> None:
    repo = _repo()
    data = os.urandom(3000)
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    first = client.patch(location, content=data[:1000], headers={"content-range": "0-999"})
    assert first.status_code == 202
    for bad in ("2000-2999", "0-999", "500-1499", "1001-2000"):
        start, end = (int(x) for x in bad.split("-"))
        response = client.patch(
            location, content=data[start : end + 1], headers={"content-range": bad}
        )
        assert response.status_code == 416, bad
        assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
        assert response.headers["range"] == "0-999"
        assert response.headers["location"].endswith(location.rsplit("/", 1)[1])
    status = client.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-999"
    assert _upload_file(server, location).stat().st_size == 1000
    bad_put = client.put(
        f"{location}?digest={sha256(data)}",
        content=data[2000:],
        headers={"content-range": "2000-2999"},
    )
    assert bad_put.status_code == 416
    _assert_no_blob(client, server, repo, sha256(data))
    assert (
        client.patch(
            location, content=data[1000:2000], headers={"content-range": "1000-1999"}
        ).status_code
        == 202
    )
    done = client.put(
        f"{location}?digest={sha256(data)}",
        content=data[2000:],
        headers={"content-range": "2000-2999"},
    )
    assert done.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


@pytest.mark.parametrize("header", ["bytes", "0-", "-5", "a-b", "5-2", "0-1-2", "0 - 4"])
def test_malformed_content_range(client: httpx.Client, header: str) -> None:
    location = client.post(f"/v2/{_repo()}/blobs/uploads/").headers["location"]
    response = client.patch(location, content=b"abcde", headers={"content-range": header})
    assert response.status_code == 416
    assert error_codes(response) == ["BLOB_UPLOAD_INVALID"]
    assert client.get(location).headers["range"] == "0-0"


def test_content_range_and_length_disagree(client: httpx.Client, server: RegistryServer) -> None:
    location = client.post(f"/v2/{_repo()}/blobs/uploads/").headers["location"]
    response = client.patch(location, content=b"abcde", headers={"content-range": "0-9"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
    assert _upload_file(server, location).stat().st_size == 0


def test_short_chunk_without_length_is_rolled_back(
    client: httpx.Client, server: RegistryServer
) -> None:
    location = client.post(f"/v2/{_repo()}/blobs/uploads/").headers["location"]

    def body() -> Iterator[bytes]:  # chunked transfer encoding: no Content-Length
        yield b"x" * 100

    response = client.patch(location, content=body(), headers={"content-range": "0-199"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
    assert client.get(location).headers["range"] == "0-0"
    assert _upload_file(server, location).stat().st_size == 0


def test_truncated_chunk_from_a_dropped_connection_is_rolled_back(
    client: httpx.Client, server: RegistryServer
) -> None:
    repo = _repo()
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    assert (
        client.patch(location, content=b"a" * 10, headers={"content-range": "0-9"}).status_code
        == 202
    )
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: {server.host}\r\n"
            "Content-Range: 10-1000009\r\nContent-Length: 1000000\r\n\r\n".encode()
            + b"b" * 300_000
        )
    # the server notices the disconnect and cuts the partial chunk off again
    for _ in range(50):
        status = client.get(location)
        if status.headers["range"] == "0-9" and _upload_file(server, location).stat().st_size == 10:
            break
        import time

        time.sleep(0.1)
    assert status.headers["range"] == "0-9"
    assert _upload_file(server, location).stat().st_size == 10
    rest = b"c" * 5
    done = client.put(
        f"{location}?digest={sha256(b'a' * 10 + rest)}",
        content=rest,
        headers={"content-range": "10-14"},
    )
    assert done.status_code == 201


def test_upload_belongs_to_its_repository(client: httpx.Client) -> None:
    location = client.post(f"/v2/{_repo()}/blobs/uploads/").headers["location"]
    upload_id = location.rsplit("/", 1)[1]
    other = client.get(f"/v2/{_repo()}/blobs/uploads/{upload_id}")
    assert other.status_code == 404
    assert error_codes(other) == ["BLOB_UPLOAD_UNKNOWN"]


def test_bad_upload_parameters(client: httpx.Client) -> None:
    repo = _repo()
    algorithm = client.post(f"/v2/{repo}/blobs/uploads/?digest-algorithm=md5")
    assert algorithm.status_code == 400
    assert error_codes(algorithm) == ["DIGEST_INVALID"]
    source = client.post(f"/v2/{repo}/blobs/uploads/?mount={sha256(b'x')}&from=..%2Fetc")
    assert source.status_code == 400
    assert error_codes(source) == ["NAME_INVALID"]


# -- manifests -------------------------------------------------------------------------------


def test_manifest_referencing_missing_blobs(client: httpx.Client) -> None:
    repo = _repo()
    config = push_blob(client, repo, b"{}")
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    ghost1 = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": sha256(b"1"),
        "size": 1,
    }
    ghost2 = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": sha256(b"2"),
        "size": 1,
    }
    raw = image_manifest(config, [ghost1, ghost2])
    response = client.put(
        f"/v2/{repo}/manifests/broken", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    details = {e["detail"]["digest"] for e in response.json()["errors"]}
    assert details == {ghost1["digest"], ghost2["digest"]}
    _assert_no_tag(client, repo, "broken")
    assert client.get(f"/v2/{repo}/manifests/{sha256(raw)}").status_code == 404


def test_manifest_with_wrong_blob_size(client: httpx.Client) -> None:
    repo = _repo()
    config = push_blob(client, repo, b"{}")
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    layer = push_blob(client, repo, b"twelve bytes")
    layer["size"] = 5
    response = client.put(
        f"/v2/{repo}/manifests/lies",
        content=image_manifest(config, [layer]),
        headers={"content-type": OCI_MANIFEST},
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_no_tag(client, repo, "lies")


def test_blob_from_another_repository_does_not_count(client: httpx.Client) -> None:
    elsewhere, repo = _repo(), _repo()
    config = push_blob(client, elsewhere, b'{"other":"repo"}')
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    response = client.put(
        f"/v2/{repo}/manifests/v1",
        content=image_manifest(config, []),
        headers={"content-type": OCI_MANIFEST},
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_index_with_missing_children(client: httpx.Client) -> None:
    repo = _repo()
    present = push_image(client, repo)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": present["digest"], "size": present["size"]},
                {"mediaType": OCI_MANIFEST, "digest": sha256(b"absent"), "size": 99},
            ],
        }
    ).encode()
    response = client.put(
        f"/v2/{repo}/manifests/idx", content=index, headers={"content-type": OCI_INDEX}
    )
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    _assert_no_tag(client, repo, "idx")


def test_oversized_manifest(client: httpx.Client) -> None:
    repo = _repo()
    config = push_blob(client, repo, b"{}")
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    raw = image_manifest(config, [], annotations={"padding": "x" * (4 * 1024 * 1024)})
    assert len(raw) > 4 * 1024 * 1024
    response = client.put(
        f"/v2/{repo}/manifests/huge", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 413
    assert error_codes(response) == ["MANIFEST_INVALID"]
    _assert_no_tag(client, repo, "huge")

    def streamed() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for i in range(0, len(raw), 1 << 20):
            yield raw[i : i + (1 << 20)]

    response = client.put(
        f"/v2/{repo}/manifests/huge", content=streamed(), headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 413
    _assert_no_tag(client, repo, "huge")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b"\xff\xfe", OCI_MANIFEST),
        (b'{"schemaVersion": 1, "name": "x"}', OCI_MANIFEST),
        (
            b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'", "manifests": []}',
            OCI_MANIFEST,
        ),
        (
            b'{"schemaVersion": 2, "config": {"mediaType": "x", "size": -1, "digest": "sha256:0"}}',
            OCI_MANIFEST,
        ),
        (b'{"schemaVersion": 2, "layers": []}', "application/octet-stream"),
    ],
)
def test_malformed_manifests(client: httpx.Client, body: bytes, content_type: str) -> None:
    repo = _repo()
    response = client.put(
        f"/v2/{repo}/manifests/bad", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert error_codes(response) == ["MANIFEST_INVALID"]
    _assert_no_tag(client, repo, "bad")


def test_wrong_digest_in_url(client: httpx.Client) -> None:
    repo = _repo()
    pushed = push_image(client, repo)
    wrong = sha256(b"another manifest")
    response = client.put(
        f"/v2/{repo}/manifests/{wrong}",
        content=pushed["raw"] + b" ",
        headers={"content-type": OCI_MANIFEST},
    )
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.get(f"/v2/{repo}/manifests/{wrong}").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{sha256(pushed['raw'] + b' ')}").status_code == 404


# -- reads -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["bytes=500-0", "bytes=5000-10000", "bytes=abc", "bytes=0-1,3-4", "bytes=-0", "bytes=-"],
)
def test_bad_range_headers(client: httpx.Client, header: str) -> None:
    repo = _repo()
    desc = push_blob(client, repo, os.urandom(2048))
    response = client.get(f"/v2/{repo}/blobs/{desc['digest']}", headers={"range": header})
    assert response.status_code == 416
    assert error_codes(response) == ["RANGE_INVALID"]
    assert response.headers["content-range"] == "bytes */2048"


def test_unknown_range_unit_is_ignored(client: httpx.Client) -> None:
    repo = _repo()
    data = os.urandom(100)
    desc = push_blob(client, repo, data)
    response = client.get(f"/v2/{repo}/blobs/{desc['digest']}", headers={"range": "items=0-5"})
    assert response.status_code == 200 and response.content == data


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "99999999999"])
def test_bad_page_sizes(client: httpx.Client, n: str) -> None:
    repo = _repo()
    push_image(client, repo, "v1")
    for url in (f"/v2/{repo}/tags/list?n={n}", f"/v2/_catalog?n={n}"):
        response = client.get(url)
        assert response.status_code == 400
        assert error_codes(response) == ["UNSUPPORTED"]


def test_errors_on_head_have_no_body(client: httpx.Client) -> None:
    response = client.head(f"/v2/{_repo()}/manifests/latest")
    assert response.status_code == 404
    assert response.content == b""
