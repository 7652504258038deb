"""HTTP surface of the signing service: ``POST /api/v1/signatures``, mounted by ``safeguard serve``.

Request: ``Authorization: Bearer <the CI job's OIDC ID token>`` (RFC 6750 §2.1) and a JSON body
``{"digest", "repository", "kind", "statement"?, "annotations"?, "legacy"?}``
(``safeguard.signing.service.SignRequest``). Answer: ``201`` with the signed material
(``SignResult.to_dict``: identity, audit id, bundle, legacy layer material, log indexes).

Errors are JSON ``{"code", "message", "hint"?, "detail"?}`` with the status
``service.http_status`` gives: 400 malformed request, 401 no or unusable token (with
``WWW-Authenticate: Bearer error="invalid_token"``, RFC 6750 §3), 403 an identity that may not do
this, 413 a body over the limit, 429 with ``Retry-After`` when the identity's rate limit is
exhausted, 503 when no policy is applied or the HSM or log is unavailable. Plain ASGI (no router
in between), like the log's and the registry's surfaces, since this is a hot path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final, Protocol

from safeguard.core.errors import SafeguardError
from safeguard.signing.audit import AuditEvent
from safeguard.signing.errors import RateLimited, SigningRequestInvalid
from safeguard.signing.service import MAX_BODY, SigningService, http_status
from safeguard.store.engine import Database

log = logging.getLogger("safeguard.signing")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH: Final = "/api/v1/signatures"
_JSON: Final = (b"content-type", b"application/json")


def is_signing_path(path: str) -> bool:
    return path == PATH or path == PATH + "/"


class _TooLarge(Exception):
    pass


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


async def _body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class SigningApp:
    """ASGI app over one ``SigningService`` (module doc)."""

    def __init__(self, service: SigningService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers: list[tuple[bytes, bytes]] = [_JSON]
        if scope["method"] != "POST":
            status, doc = 405, {"code": "METHOD_NOT_ALLOWED", "message": "use POST"}
            headers.append((b"allow", b"POST"))
        else:
            try:
                body = await _body(receive, MAX_BODY)
                result = await self.service.sign(_bearer(scope), body, client=_client(scope))
                status, doc = 201, result.to_dict()
            except _TooLarge:
                status = 413
                refusal = SigningRequestInvalid(f"the request body is over {MAX_BODY} bytes")
                doc = refusal.to_dict()
                await self.service.audit.record(
                    AuditEvent(
                        action="sign",
                        client=_client(scope),
                        status=413,
                        code=refusal.code,
                        reason=refusal.message,
                    )
                )
            except SafeguardError as exc:
                status, doc = http_status(exc), exc.to_dict()
                if status == 401:
                    reason = exc.message.replace('"', "'")[:300]
                    challenge = f'Bearer realm="safeguard", error="invalid_token", ' \
                        f'error_description="{reason}"'  # fmt: skip
                    if exc.code == "SIGNING_TOKEN_MISSING":
                        challenge = 'Bearer realm="safeguard"'
                    headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
                if isinstance(exc, RateLimited):
                    headers.append((b"retry-after", str(exc.retry_after).encode()))
            except Exception:
                log.exception("signing request failed")
                status, doc = 500, {"code": "INTERNAL", "message": "internal error"}
        payload = json.dumps(doc, separators=(",", ":")).encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class MountTarget(Protocol):
    """What ``mount_signing`` needs of ``safeguard.server.SafeguardApp``."""

    data_dir: Path
    db: Database
    mounts: list[tuple[Callable[[str], bool], Callable[[Scope, Receive, Send], Awaitable[None]]]]
    closers: list[Callable[[], None]]


def mount_signing(app: MountTarget, *, policy_file: Path | None = None) -> SigningApp:
    """Put the signing service on ``/api/v1/signatures`` of ``app``.

    It signs by ``policy_file`` when given (``safeguard serve --policy``), else by the store's
    active policy; it logs into the node's own transparency log (which must be mounted first),
    calling the service object directly rather than over HTTP, and keeps its audit trail and key
    custody in the node's store.
    """
    from safeguard.policy import PolicyStore
    from safeguard.signing.audit import AuditLog
    from safeguard.signing.custody import KeyCustody
    from safeguard.signing.material import InProcessLog
    from safeguard.signing.policyview import PolicySource
    from safeguard.tlog.api import TlogApp

    tlog = next((h.tlog for _, h in app.mounts if isinstance(h, TlogApp)), None)
    if tlog is None:
        raise SigningRequestInvalid(
            "the signing service needs the node's transparency log, which is not mounted"
        )
    source = (
        PolicySource.from_file(policy_file)
        if policy_file is not None
        else PolicySource(store=PolicyStore(app.db))
    )
    service = SigningService(
        source, InProcessLog(tlog), AuditLog(app.db), custody=KeyCustody(app.db)
    )
    handler = SigningApp(service)
    app.mounts.append((is_signing_path, handler))
    # The log's sequencer must outlive the service's last request: close the service first.
    app.closers.insert(0, service.close)
    return handler
