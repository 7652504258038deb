"""What a Distribution API request is about, read from its path (distribution-spec v1.1,
"Endpoints" table: end-1 to end-13).

Repository names have any number of ``/`` components, so the route is matched from the right,
with the built-in registry's own route patterns. The gateway applies policy to the repository it
reads here and sends on exactly the path it read (never the client's raw bytes), so a
percent-encoded ``%2F`` cannot make the gateway and the registry disagree about which repository
a request names. Names, tags and digests are checked with the registry's own validators before
anything is forwarded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.app import _BLOB, _MANIFEST, _REFERRERS, _TAGS, _UPLOAD
from safeguard.registry.context import check_digest, check_name, check_tag

Kind = Literal["base", "catalog", "manifest", "blob", "upload", "tags", "referrers"]

_UPLOAD_ID: Final = re.compile(r"^[A-Za-z0-9_=.-]{1,128}$")


@dataclass(frozen=True, slots=True)
class Route:
    kind: Kind
    name: str = ""  # repository
    reference: str = ""  # tag or digest (manifests), digest (blobs, referrers), upload id

    @property
    def by_digest(self) -> bool:
        return ":" in self.reference


def not_found(path: str) -> OCIError:
    return OCIError(OCIErrorCode.UNSUPPORTED, f"no endpoint at {path[:200]}", status=404)


def classify(path: str) -> Route:
    """The route of ``path``; raises the registry's typed errors for invalid names."""
    if path in ("/v2/", "/v2"):
        return Route("base")
    if path == "/v2/_catalog":
        return Route("catalog")
    match = _MANIFEST.match(path)
    if match:
        reference = match.group(2)
        if ":" in reference:
            check_digest(reference)
        else:
            check_tag(reference)
        return Route("manifest", check_name(match.group(1)), reference)
    match = _UPLOAD.match(path)
    if match:
        upload_id = match.group(2) or ""
        if upload_id and not _UPLOAD_ID.match(upload_id):
            raise OCIError(
                OCIErrorCode.BLOB_UPLOAD_UNKNOWN, f"upload {upload_id[:64]} is unknown", status=404
            )
        return Route("upload", check_name(match.group(1)), upload_id)
    match = _BLOB.match(path)
    if match:
        return Route("blob", check_name(match.group(1)), str(check_digest(match.group(2))))
    match = _TAGS.match(path)
    if match:
        return Route("tags", check_name(match.group(1)))
    match = _REFERRERS.match(path)
    if match:
        return Route("referrers", check_name(match.group(1)), str(check_digest(match.group(2))))
    raise not_found(path)


def required_action(route: Route, method: str) -> str:
    """The token action a request needs: ``pull``, ``push`` or ``delete``."""
    if method in ("GET", "HEAD"):
        return "pull"
    if method == "DELETE" and route.kind in ("manifest", "blob"):
        return "delete"
    return "push"
