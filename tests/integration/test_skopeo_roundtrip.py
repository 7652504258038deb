"""skopeo (containers/image, a third-party client) pushes an OCI image layout into the built-in
registry and pulls it back out byte for byte; the same layout also goes to distribution, so both
registries are seen to store the very same manifest and blobs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.distribution import RegistryServer

pytestmark = [
    pytest.mark.skopeo,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]


def _write_blob(layout: Path, data: bytes) -> str:
    hex_ = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / hex_
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{hex_}"


def _layer(seed: int) -> tuple[bytes, str]:
    """A gzipped tar with one random file; returns it and its uncompressed diff ID."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = os.urandom(20_000 + seed)
        info = tarfile.TarInfo(f"file-{seed}.bin")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def build_layout(layout: Path, tag: str) -> dict[str, Any]:
    """An OCI image layout with two random layers; returns the manifest's bytes and digests."""
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layers = [_layer(i) for i in range(2)]
    layer_descs = [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": _write_blob(layout, blob),
            "size": len(blob),
        }
        for blob, _ in layers
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _write_blob(layout, config),
                "size": len(config),
            },
            "layers": layer_descs,
        }
    ).encode()
    manifest_digest = _write_blob(layout, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    blobs = {d["digest"] for d in layer_descs} | {json.loads(manifest)["config"]["digest"]}
    return {"manifest": manifest, "digest": manifest_digest, "blobs": blobs}


def skopeo(*args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def _layout_contents(layout: Path, tag: str) -> tuple[str, set[str]]:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    blobs = {f"sha256:{p.name}" for p in (layout / "blobs" / "sha256").iterdir()}
    return entry["digest"], blobs


def _round_trip(
    server: RegistryServer, tmp_path: Path, repo: str, source: Path, built: dict[str, Any]
) -> None:
    tag = "v1"
    target = f"docker://{server.host}/{repo}:{tag}"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{source}:{tag}", target)

    raw = skopeo("inspect", "--raw", "--tls-verify=false", target).stdout
    assert raw == built["manifest"]
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", target).stdout)
    assert inspected["Digest"] == built["digest"]

    out = tmp_path / f"{server.kind}-out"
    skopeo("copy", "--src-tls-verify=false", target, f"oci:{out}:{tag}")
    digest, blobs = _layout_contents(out, tag)
    assert digest == built["digest"]
    assert blobs == built["blobs"] | {built["digest"]}
    for name in blobs:
        hex_ = name.split(":")[1]
        assert (out / "blobs" / "sha256" / hex_).read_bytes() == (
            source / "blobs" / "sha256" / hex_
        ).read_bytes()


def test_skopeo_round_trip_through_builtin(
    builtin_registry: RegistryServer, tmp_path: Path
) -> None:
    source = tmp_path / "layout"
    built = build_layout(source, "v1")
    _round_trip(builtin_registry, tmp_path, "skopeo/round-trip", source, built)


def test_same_layout_through_builtin_and_distribution(
    builtin_registry: RegistryServer, distribution_registry: RegistryServer, tmp_path: Path
) -> None:
    source = tmp_path / "layout"
    built = build_layout(source, "v1")
    for server in (builtin_registry, distribution_registry):
        _round_trip(server, tmp_path, "skopeo/symmetry", source, built)
    # and registry to registry: ours to distribution, as a mirror would copy
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{builtin_registry.host}/skopeo/symmetry:v1",
        f"docker://{distribution_registry.host}/skopeo/copied:v1",
    )
    copied = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://{distribution_registry.host}/skopeo/copied:v1",
    ).stdout
    assert copied == built["manifest"]
