"""Manifest and referrers endpoints (distribution-spec v1.1: "Pulling manifests", "Pushing
Manifests", "Pushing Manifests with Subject", "Deleting tags", "Deleting Manifests",
"Listing Referrers").

Manifests are stored byte for byte; a push is validated with ``safeguard.core.manifest``, every
blob it references must already be in the same repository (``MANIFEST_BLOB_UNKNOWN``), and an
index's child manifests too. The ``subject`` of a manifest is recorded, never required to exist.
"""

from __future__ import annotations

import anyio.to_thread

from safeguard.core import mediatypes as mt
from safeguard.core.digest import DEFAULT_ALGORITHM, Digest
from safeguard.core.errors import InvalidManifest, OCIError, OCIErrorCode
from safeguard.core.manifest import build_referrers_index, parse_manifest
from safeguard.registry.context import (
    MANIFEST_LIMIT,
    RegistryContext,
    check_digest,
    check_tag,
)
from safeguard.registry.http import Headers, Request, Responder
from safeguard.registry.metadata import ManifestRecord, NewManifest

_run = anyio.to_thread.run_sync


def _is_digest(reference: str) -> bool:
    return ":" in reference


def accepts(values: list[str], media_type: str) -> bool:
    """Whether ``Accept`` header values admit ``media_type`` (no header admits everything)."""
    seen = False
    for value in values:
        for part in value.split(","):
            kind, _, params = part.partition(";")
            kind = kind.strip().lower()
            if not kind:
                continue
            seen = True
            quality = 1.0
            for param in params.split(";"):
                key, _, number = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        quality = float(number)
                    except ValueError:
                        quality = 1.0
            if quality <= 0:
                continue
            if kind in (media_type, "*/*") or (
                kind.endswith("/*") and media_type.startswith(kind[:-1])
            ):
                return True
    return not seen


async def lookup(ctx: RegistryContext, name: str, reference: str) -> ManifestRecord:
    if _is_digest(reference):
        digest = str(check_digest(reference))
        record = ctx.cache.get(name, digest)
        if record is None:
            record = await _run(ctx.meta.manifest_by_digest, name, digest)
            if record is not None:
                ctx.cache.put(name, record)
    else:
        check_tag(reference)
        record = await _run(ctx.meta.manifest_by_tag, name, reference)
    if record is None:
        raise OCIError(
            OCIErrorCode.MANIFEST_UNKNOWN,
            f"manifest {reference} is not in repository {name}",
            status=404,
        )
    return record


async def get_manifest(
    ctx: RegistryContext, req: Request, out: Responder, name: str, reference: str
) -> None:
    record = await lookup(ctx, name, reference)
    accept = req.header_values(b"accept")
    if accept and not accepts(accept, record.media_type):
        raise OCIError(
            OCIErrorCode.MANIFEST_UNKNOWN,
            f"manifest {reference} is a {record.media_type}, which the Accept header excludes",
            status=404,
            detail={"mediaType": record.media_type},
        )
    digest = record.digest.encode()
    await out.respond(
        200,
        [
            (b"content-type", record.media_type.encode()),
            (b"docker-content-digest", digest),
            (b"etag", b'"' + digest + b'"'),
        ],
        record.content,
    )


def _too_large() -> OCIError:
    return OCIError(
        OCIErrorCode.MANIFEST_INVALID,
        f"manifest is larger than the {MANIFEST_LIMIT} byte limit",
        status=413,
        hint="split the artifact into an index of smaller manifests",
    )


async def put_manifest(
    ctx: RegistryContext, req: Request, out: Responder, name: str, reference: str
) -> None:
    by_digest = _is_digest(reference)
    url_digest = check_digest(reference) if by_digest else None
    if not by_digest:
        check_tag(reference)
    extra_tags = [check_tag(t) for t in req.query.get("tag", [])] if by_digest else []
    declared = req.content_length()
    if declared is not None and declared > MANIFEST_LIMIT:
        raise _too_large()
    raw = await req.read(MANIFEST_LIMIT, _too_large)
    try:
        manifest = parse_manifest(raw, req.header(b"content-type"))
    except InvalidManifest as exc:
        raise OCIError(OCIErrorCode.MANIFEST_INVALID, exc.message, status=400) from exc
    algorithm = url_digest.algorithm if url_digest else DEFAULT_ALGORITHM
    digest = Digest.of(raw, algorithm)
    if url_digest is not None and digest != url_digest:
        raise OCIError(
            OCIErrorCode.DIGEST_INVALID,
            f"manifest digest is {digest}, not {url_digest} as the URL says",
            status=400,
            detail={"expected": str(url_digest), "actual": str(digest)},
        )
    record = NewManifest(
        digest=str(digest),
        media_type=manifest.media_type,
        artifact_type=manifest.effective_artifact_type,
        subject_digest=str(manifest.subject.digest) if manifest.subject else None,
        annotations=dict(manifest.annotations),
        content=raw,
    )
    tags = extra_tags if by_digest else [reference]
    missing_blobs, missing_children = await _run(
        ctx.meta.put_manifest, name, record, tags, manifest.blobs(), manifest.manifests
    )
    if missing_blobs or missing_children:
        errors = [
            OCIError(
                OCIErrorCode.MANIFEST_BLOB_UNKNOWN,
                f"blob {d.digest} ({d.size} bytes) is not in repository {name}",
                status=400,
                detail={"digest": str(d.digest), "size": d.size},
            )
            for d in missing_blobs
        ] + [
            OCIError(
                OCIErrorCode.MANIFEST_BLOB_UNKNOWN,
                f"manifest {d.digest} ({d.size} bytes) is not in repository {name}",
                status=400,
                detail={"digest": str(d.digest), "size": d.size},
            )
            for d in missing_children
        ]
        await out.error(*errors)
        return
    ctx.cache.drop(name, record.digest)
    headers: Headers = [
        (b"location", f"/v2/{name}/manifests/{digest}".encode()),
        (b"docker-content-digest", str(digest).encode()),
    ]
    if manifest.subject is not None:
        headers.append((b"oci-subject", str(manifest.subject.digest).encode()))
    if extra_tags:
        headers.append((b"oci-tag", ", ".join(extra_tags).encode()))
    await out.respond(201, headers)


async def delete_manifest(
    ctx: RegistryContext, req: Request, out: Responder, name: str, reference: str
) -> None:
    if _is_digest(reference):
        digest = str(check_digest(reference))
        deleted = await _run(ctx.meta.delete_manifest, name, digest)
        ctx.cache.drop(name, digest)
    else:
        check_tag(reference)
        deleted = await _run(ctx.meta.delete_tag, name, reference)
    if not deleted:
        raise OCIError(
            OCIErrorCode.MANIFEST_UNKNOWN,
            f"manifest {reference} is not in repository {name}",
            status=404,
        )
    await out.respond(202, [])


async def get_referrers(
    ctx: RegistryContext, req: Request, out: Responder, name: str, digest_text: str
) -> None:
    subject = check_digest(digest_text)
    artifact_type = req.query_one("artifactType")
    descriptors = await _run(ctx.meta.referrers, name, str(subject), artifact_type or None)
    headers: Headers = [(b"content-type", mt.OCI_INDEX.encode())]
    if artifact_type:
        headers.append((b"oci-filters-applied", b"artifactType"))
    await out.respond(200, headers, build_referrers_index(descriptors))
