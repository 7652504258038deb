"""The referrers API for registries that lack it (distribution-spec v1.1, "Listing Referrers"
and "Pushing Manifests with Subject").

Debian's docker-registry 2.8 answers ``GET /v2/<name>/referrers/<digest>`` with a plain-text 404
and never sets ``OCI-Subject``. In front of such a registry the gateway makes it look like an
OCI 1.1 registry:

* a manifest with a ``subject`` pushed through the gateway is recorded in ``gateway_referrers``
  (its descriptor: media type, size, ``artifactType`` — the manifest's, else its config's media
  type — and annotations) once the registry accepted it, the referrers tag schema index
  ``<alg>-<hex>`` is updated in the registry so that clients that bypass the gateway still find
  it, and the push answer carries ``OCI-Subject``, which tells the client not to write that
  index itself;
* ``GET /v2/<name>/referrers/<digest>[?artifactType=]`` is answered from that table merged with
  the registry's tag-schema index (referrers pushed before the gateway, or around it), as an OCI
  image index; a filter that was applied is named in ``OCI-Filters-Applied: artifactType``;
* deleting a referrer by digest drops it from both.

A registry that has the API (the built-in one) is left to answer for itself.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import anyio.to_thread
import sqlalchemy as sa

from safeguard.core.digest import Digest
from safeguard.core.errors import SafeguardError
from safeguard.core.manifest import Descriptor, Manifest
from safeguard.gateway.upstream import Upstream
from safeguard.store.engine import Database
from safeguard.store.gateway_models import GatewayReferrer

log = logging.getLogger("safeguard.gateway.referrers")
_run = anyio.to_thread.run_sync
_T = cast(sa.Table, GatewayReferrer.__table__)


class ReferrerIndex:
    def __init__(self, db: Database, upstream: Upstream) -> None:
        self.db = db
        self.upstream = upstream

    async def emulating(self, repository: str, subject: str) -> bool:
        """Whether the gateway answers the referrers API here (the registry has none)."""
        if self.upstream.has_referrers_api is None:
            client = self.upstream.client()
            found = await client.referrers.from_api(repository, Digest.parse(subject))
            self.upstream.has_referrers_api = found is not None
        return not self.upstream.has_referrers_api

    # -- writes, after the registry accepted them ---------------------------------------------

    async def record(self, repository: str, manifest: Manifest, digest: Digest) -> None:
        assert manifest.subject is not None
        descriptor = Descriptor(
            manifest.media_type,
            digest,
            len(manifest.raw),
            dict(manifest.annotations),
            manifest.effective_artifact_type,
        )
        await _run(self._insert, repository, str(manifest.subject.digest), descriptor)
        try:
            await self.upstream.client().referrers.record_in_tag(
                repository, manifest.subject.digest, descriptor
            )
        except SafeguardError as exc:
            # The gateway's own index already answers; old clients see it once the tag is
            # written again (the next referrer of the same subject rewrites the whole index).
            log.warning(
                "referrers tag index of %s in %s not updated: %s",
                manifest.subject.digest,
                repository,
                exc,
            )

    def _insert(self, repository: str, subject: str, d: Descriptor) -> None:
        values: dict[str, Any] = {
            "repository": repository,
            "digest": str(d.digest),
            "subject": subject,
            "media_type": d.media_type,
            "artifact_type": d.artifact_type,
            "size": d.size,
            "annotations": d.annotations or None,
        }
        with self.db.write() as conn:
            exists = conn.execute(
                sa.select(_T.c.digest).where(
                    _T.c.repository == repository, _T.c.digest == str(d.digest)
                )
            ).first()
            if exists is None:
                conn.execute(sa.insert(_T).values(values))

    async def subject_of(self, repository: str, digest: str) -> str | None:
        return await _run(self._subject_of, repository, digest)

    def _subject_of(self, repository: str, digest: str) -> str | None:
        with self.db.read() as conn:
            value = conn.execute(
                sa.select(_T.c.subject).where(_T.c.repository == repository, _T.c.digest == digest)
            ).scalar()
            return str(value) if value is not None else None

    async def forget(self, repository: str, digest: str, subject: str) -> None:
        await _run(self._delete, repository, digest)
        try:
            await self.upstream.client().referrers.forget_in_tag(
                repository, Digest.parse(subject), Digest.parse(digest)
            )
        except SafeguardError as exc:
            log.warning("referrers tag index of %s in %s not updated: %s", subject, repository, exc)

    async def forget_subject(self, repository: str, subject: str) -> None:
        """Drop every referrer of ``subject`` from the index (the subject left the repository
        with its referrers, into quarantine)."""
        await _run(self._delete_subject, repository, subject)

    def _delete_subject(self, repository: str, subject: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.delete(_T).where(_T.c.repository == repository, _T.c.subject == subject)
            )

    def _delete(self, repository: str, digest: str) -> None:
        with self.db.write() as conn:
            conn.execute(sa.delete(_T).where(_T.c.repository == repository, _T.c.digest == digest))

    # -- reads ------------------------------------------------------------------------------

    def _rows(self, repository: str, subject: str) -> list[Descriptor]:
        query = (
            sa.select(_T)
            .where(_T.c.repository == repository, _T.c.subject == subject)
            .order_by(_T.c.created_at, _T.c.digest)
        )
        with self.db.read() as conn:
            return [
                Descriptor(
                    row.media_type,
                    Digest.parse(row.digest),
                    int(row.size),
                    dict(row.annotations or {}),
                    row.artifact_type,
                )
                for row in conn.execute(query)
            ]

    async def list(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[Descriptor]:
        """Referrers of ``subject``: the gateway's index, then the registry's tag schema."""
        merged: dict[Digest, Descriptor] = {
            d.digest: d for d in await _run(self._rows, repository, subject)
        }
        try:
            tagged = await self.upstream.client().referrers.from_tag(
                repository, Digest.parse(subject)
            )
        except SafeguardError as exc:
            if exc.exit_code == 3:
                raise
            log.warning("referrers tag index of %s in %s unreadable: %s", subject, repository, exc)
            tagged = None
        for d in tagged or ():
            merged.setdefault(d.digest, d)
        out = list(merged.values())
        if artifact_type is not None:
            out = [d for d in out if d.artifact_type == artifact_type]
        return out
