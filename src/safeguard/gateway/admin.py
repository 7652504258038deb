"""The gateway's admin API (``/_safeguard/gateway/...``, admin role required; see ``site``).

* ``POST retag`` ``{"repository", "tag", "digest", "reason"}``: point a tag at a digest of the
  repository, whatever immutability says; ``POST untag`` ``{"repository", "tag", "reason"}``:
  remove a tag. Both answer ``{"repository", "tag", "oldDigest", "newDigest", "actor"}`` and are
  audit events with the actor, both digests and the reason. A pending grace tag of the same name
  is superseded.
* ``POST quarantine/move`` ``{"repository", "reference", "until", "reason", "namespace"?}``:
  journal and run a quarantine move (``quarantine``); ``POST quarantine/resume``: run every
  unfinished move again; ``POST quarantine/purge``: remove what is past its deadline;
  ``GET quarantine``: the journal.
* ``GET audit?repository=&action=&limit=`` and ``GET pending?repository=``: what was decided.

A reason is required for every change (1 to 1000 characters).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, NotFound
from safeguard.core.reference import validate_repository, validate_tag
from safeguard.gateway.audit import AuditEvent
from safeguard.gateway.auth import Principal
from safeguard.gateway.site import admin_route, json_body
from safeguard.gateway.tags import fetch, put_tag, remove_tag, tag_digest

if TYPE_CHECKING:
    from safeguard.gateway.core import Gateway

_run = anyio.to_thread.run_sync


def _text(doc: dict[str, Any], key: str, limit: int = 1000) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{key!r} is required (text of 1 to {limit} characters)")
    return value.strip()


def _repository(doc: dict[str, Any]) -> str:
    return validate_repository(_text(doc, "repository", 255))


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def parse_until(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"invalid date {text!r}", hint="write YYYY-MM-DD or an RFC 3339 time"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def admin_routes(gateway: Gateway) -> list[Route]:
    auth = gateway.auth

    async def retag(request: Request, principal: Principal) -> Response:
        doc = await json_body(request)
        repository, reason = _repository(doc), _text(doc, "reason")
        tag = validate_tag(_text(doc, "tag", 128))
        digest = Digest.parse(_text(doc, "digest", 200))
        client = gateway.upstream.client()
        manifest = await fetch(client, repository, digest)
        old = await tag_digest(client, repository, tag)
        await put_tag(client, repository, tag, manifest)
        await _run(gateway.pending.supersede, repository, tag)
        gateway.signatures.forget(repository, str(digest))
        return await _done(request, principal, "retag", repository, tag, old, digest, reason)

    async def untag(request: Request, principal: Principal) -> Response:
        doc = await json_body(request)
        repository, reason = _repository(doc), _text(doc, "reason")
        tag = validate_tag(_text(doc, "tag", 128))
        old = await remove_tag(gateway.upstream.client(), repository, tag)
        superseded = await _run(gateway.pending.supersede, repository, tag)
        if old is None and not superseded:
            raise NotFound(f"{repository}:{tag} does not exist")
        return await _done(request, principal, "untag", repository, tag, old, None, reason)

    async def _done(
        request: Request,
        principal: Principal,
        action: str,
        repository: str,
        tag: str,
        old: Digest | None,
        new: Digest | None,
        reason: str,
    ) -> Response:
        await gateway.audit.record(
            AuditEvent(
                action,
                "done",
                repository,
                reason,
                tag=tag,
                digest=str(new) if new else None,
                old_digest=str(old) if old else None,
                client=_client(request),
                identity=principal.name,
                mode="admin",
            )
        )
        return JSONResponse(
            {
                "repository": repository,
                "tag": tag,
                "oldDigest": str(old) if old else None,
                "newDigest": str(new) if new else None,
                "actor": principal.name,
                "reason": reason,
            }
        )

    async def move(request: Request, principal: Principal) -> Response:
        doc = await json_body(request)
        repository, reason = _repository(doc), _text(doc, "reason")
        reference = _text(doc, "reference", 200)
        until = parse_until(_text(doc, "until", 64))
        namespace = doc.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise InvalidInput("'namespace' must be text")
        entry = await gateway.quarantine_move(
            repository, reference, until, reason, principal.name, namespace
        )
        await gateway.audit.record(
            AuditEvent(
                "quarantine",
                "done",
                repository,
                reason,
                tag=entry.source_tag,
                digest=entry.digest,
                client=_client(request),
                identity=principal.name,
                mode="admin",
            )
        )
        return JSONResponse(entry.as_dict())

    async def resume(request: Request, principal: Principal) -> Response:
        done = await gateway.quarantine_resume()
        return JSONResponse({"resumed": [e.as_dict() for e in done]})

    async def purge(request: Request, principal: Principal) -> Response:
        purged = await gateway.quarantine_purge()
        for entry in purged:
            await gateway.audit.record(
                AuditEvent(
                    "purge",
                    "done",
                    entry.source_repository,
                    f"deadline {entry.until.isoformat()} passed",
                    digest=entry.digest,
                    client=_client(request),
                    identity=principal.name,
                    mode="admin",
                )
            )
        return JSONResponse({"purged": [e.as_dict() for e in purged]})

    async def journal(request: Request, principal: Principal) -> Response:
        entries = await _run(gateway.journal.entries)
        return JSONResponse({"entries": [e.as_dict() for e in entries]})

    async def audit(request: Request, principal: Principal) -> Response:
        query = request.query_params
        limit = query.get("limit", "100")
        if not limit.isdigit():
            raise InvalidInput("limit must be a number")
        events = await _run(
            lambda: gateway.audit.events(
                query.get("repository"), action=query.get("action"), limit=min(int(limit), 10_000)
            )
        )
        return JSONResponse({"events": [e.as_dict() for e in events]})

    async def pending(request: Request, principal: Principal) -> Response:
        entries = await _run(gateway.pending.entries, request.query_params.get("repository"))
        return JSONResponse({"pending": [e.as_dict() for e in entries]})

    table: list[tuple[str, Callable[[Request, Principal], Awaitable[Response]], str]] = [
        ("retag", retag, "POST"),
        ("untag", untag, "POST"),
        ("quarantine/move", move, "POST"),
        ("quarantine/resume", resume, "POST"),
        ("quarantine/purge", purge, "POST"),
        ("quarantine", journal, "GET"),
        ("audit", audit, "GET"),
        ("pending", pending, "GET"),
    ]
    return [admin_route(auth, path, handler, [method]) for path, handler, method in table]
