"""The registry's ASGI application: routing of ``/v2/`` (distribution-spec v1.1, "Endpoints"),
error bodies, and start-up housekeeping.

Repository names have any number of ``/``-separated components, so routes are matched from the
right: ``<name>`` is everything before the last ``/manifests/``, ``/blobs/``, ``/tags/list`` or
``/referrers/``. Every error leaves as the spec's ``{"errors": [{"code", "message", "detail"}]}``
body with the matching status; an unexpected failure is logged and answered 500, never a
traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Final

from safeguard.core.errors import OCIError, OCIErrorCode, SafeguardError
from safeguard.registry import blobs, listing, manifests, uploads
from safeguard.registry.blobstore import BlobStore
from safeguard.registry.context import ManifestCache, RegistryContext, check_name
from safeguard.registry.http import ClientDisconnected, Receive, Request, Responder, Scope, Send
from safeguard.registry.metadata import RegistryMetadata
from safeguard.store.engine import Database

log = logging.getLogger("safeguard.registry")

Handler = Callable[[RegistryContext, Request, Responder, str, str], Awaitable[None]]

_MANIFEST: Final = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_UPLOAD: Final = re.compile(r"^/v2/(.+)/blobs/uploads(?:/([^/]*))?$")
_BLOB: Final = re.compile(r"^/v2/(.+)/blobs/([^/]+)$")
_TAGS: Final = re.compile(r"^/v2/(.+)/tags/list$")
_REFERRERS: Final = re.compile(r"^/v2/(.+)/referrers/([^/]+)$")

_MANIFEST_METHODS: Final[dict[str, Handler]] = {
    "GET": manifests.get_manifest,
    "HEAD": manifests.get_manifest,
    "PUT": manifests.put_manifest,
    "DELETE": manifests.delete_manifest,
}
_BLOB_METHODS: Final[dict[str, Handler]] = {
    "GET": blobs.get_blob,
    "HEAD": blobs.get_blob,
    "DELETE": blobs.delete_blob,
}
_UPLOAD_METHODS: Final[dict[str, Handler]] = {
    "PATCH": uploads.patch_upload,
    "PUT": uploads.put_upload,
    "GET": uploads.upload_status,
    "DELETE": uploads.cancel_upload,
}
STALE_UPLOAD_AGE: Final = timedelta(days=1)


def _not_found(path: str) -> OCIError:
    return OCIError(OCIErrorCode.UNSUPPORTED, f"no endpoint at {path[:200]}", status=404)


def _not_allowed(method: str) -> OCIError:
    return OCIError(OCIErrorCode.UNSUPPORTED, f"method {method} is not allowed here", status=405)


def _as_oci(exc: SafeguardError) -> OCIError:
    if isinstance(exc, OCIError):
        return exc
    try:
        code = OCIErrorCode(exc.code)
    except ValueError:
        code = OCIErrorCode.UNSUPPORTED
    return OCIError(code, exc.message, status=exc.http_status, hint=exc.hint)


class RegistryApp:
    """ASGI app serving the OCI distribution API under ``/v2/``."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        req = Request(scope, receive)
        out = Responder(send, req.method == "HEAD")
        try:
            await self._dispatch(req, out)
        except ClientDisconnected:
            return
        except SafeguardError as exc:
            error = _as_oci(exc)
            if not out.started:
                await out.error(error, headers=list(getattr(error, "response_headers", [])))
        except Exception:
            log.exception("registry request failed: %s %s", req.method, req.path[:200])
            if not out.started:
                await out.json(
                    500, {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
                )

    async def _dispatch(self, req: Request, out: Responder) -> None:
        path, method = req.path, req.method
        if path in ("/v2/", "/v2"):
            if method not in ("GET", "HEAD"):
                raise _not_allowed(method)
            await out.json(200, {})
            return
        if path == "/v2/_catalog":
            if method != "GET":
                raise _not_allowed(method)
            await listing.catalog(self.ctx, req, out)
            return
        match = _MANIFEST.match(path)
        if match:
            await self._route(_MANIFEST_METHODS, req, out, match)
            return
        match = _UPLOAD.match(path)
        if match:
            name, upload_id = match.group(1), match.group(2) or ""
            check_name(name)
            if not upload_id:
                if method != "POST":
                    raise _not_allowed(method)
                await uploads.start_upload(self.ctx, req, out, name)
                return
            await self._route(_UPLOAD_METHODS, req, out, match)
            return
        match = _BLOB.match(path)
        if match:
            await self._route(_BLOB_METHODS, req, out, match)
            return
        match = _TAGS.match(path)
        if match:
            if method != "GET":
                raise _not_allowed(method)
            await listing.list_tags(self.ctx, req, out, check_name(match.group(1)))
            return
        match = _REFERRERS.match(path)
        if match:
            if method != "GET":
                raise _not_allowed(method)
            name = check_name(match.group(1))
            await manifests.get_referrers(self.ctx, req, out, name, match.group(2))
            return
        raise _not_found(path)

    async def _route(
        self, table: dict[str, Handler], req: Request, out: Responder, match: re.Match[str]
    ) -> None:
        handler = table.get(req.method)
        if handler is None:
            raise _not_allowed(req.method)
        name = check_name(match.group(1))
        await handler(self.ctx, req, out, name, match.group(2) or "")

    def purge_stale_uploads(self, older_than: timedelta = STALE_UPLOAD_AGE) -> int:
        """End upload sessions untouched for ``older_than``; blocking, run at start-up."""
        stale = self.ctx.meta.stale_uploads(older_than)
        for upload_id in stale:
            self.ctx.meta.delete_upload(upload_id)
            self.ctx.blobs.discard_upload(upload_id)
        orphans = self.ctx.blobs.purge_uploads(older_than.total_seconds())
        return len(stale) + len(orphans)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_registry_app(
    db: Database, data_dir: Path, *, manifest_cache: ManifestCache | None = None
) -> RegistryApp:
    """The registry over ``db`` (already migrated) with blobs under ``data_dir``."""
    ctx = RegistryContext(
        meta=RegistryMetadata(db),
        blobs=BlobStore(Path(data_dir)),
        cache=manifest_cache or ManifestCache(),
    )
    app = RegistryApp(ctx)
    app.purge_stale_uploads()
    return app
