"""Pulls that bypass the gateway, from a registry's notification events.

CNCF distribution sends "notifications" (distribution ``docs/notifications.md``, "Envelope"):
HTTP ``POST``s of ``{"events": [...]}`` with media type
``application/vnd.docker.distribution.events.v1+json``, each event::

    {"id": "...", "timestamp": "2016-03-09T14:44:26.402973972-08:00", "action": "pull",
     "target": {"mediaType": "...manifest...", "digest": "sha256:...", "repository": "team/app",
                "tag": "v1", "url": "...", "size": 708},
     "request": {"addr": "10.0.0.7:42961", "method": "GET", "useragent": "containerd/1.7"},
     "actor": {"name": "alice"}, "source": {"addr": "registry:5000"}}

Only ``pull`` events of manifests count (the registry also reports each blob pulled, and pushes);
they become ``PullRecord``s with ``source = "event"``. Malformed input is an ``EventsInvalid``
error naming what is wrong; an envelope with a few bad events keeps the good ones and counts the
rest as skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from safeguard.core import mediatypes as mt
from safeguard.core.digest import is_digest
from safeguard.core.errors import InvalidInput, InvalidName
from safeguard.core.reference import validate_repository
from safeguard.gateway.pulllog import PullRecord

MAX_ENVELOPE: Final = 16 * 1024 * 1024
MAX_EVENTS: Final = 100_000
_FRACTION: Final = re.compile(r"\.(\d+)")


class EventsInvalid(InvalidInput):
    code = "EVENTS_INVALID"


@dataclass
class Imported:
    pulls: list[PullRecord] = field(default_factory=list)
    skipped: int = 0  # events that are not manifest pulls, or that are malformed
    excluded: int = 0  # pulls from excluded clients (the gateway itself)


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Go's ``time.RFC3339Nano``) and a zone."""
    text = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return when.astimezone(UTC)


def _client(request: dict[str, Any]) -> str:
    addr = str(request.get("addr") or "")
    host, sep, port = addr.rpartition(":")
    if sep and port.isdigit():
        addr = host
    return addr.strip("[]")[:64]


def _pull(event: Any) -> PullRecord | None:
    if not isinstance(event, dict) or event.get("action") != "pull":
        return None
    target = event.get("target")
    if not isinstance(target, dict) or target.get("mediaType") not in mt.MANIFESTS:
        return None
    repository = target.get("repository")
    digest = target.get("digest")
    if not isinstance(repository, str) or not isinstance(digest, str) or not is_digest(digest):
        raise ValueError("pull event without a valid repository and digest")
    try:
        validate_repository(repository)
    except InvalidName as exc:
        raise ValueError(exc.message) from None
    tag = target.get("tag")
    reference = tag if isinstance(tag, str) and tag else digest
    request = event.get("request") if isinstance(event.get("request"), dict) else {}
    actor = event.get("actor") if isinstance(event.get("actor"), dict) else {}
    assert isinstance(request, dict) and isinstance(actor, dict)
    timestamp = event.get("timestamp")
    at = parse_timestamp(timestamp) if isinstance(timestamp, str) else datetime.now(UTC)
    return PullRecord(
        repository,
        reference,
        digest,
        _client(request),
        str(actor.get("name") or "anonymous"),
        str(request.get("useragent") or ""),
        at=at,
        source="event",
    )


def parse_envelope(raw: bytes, *, exclude_clients: frozenset[str] = frozenset()) -> Imported:
    """The manifest pulls in one notification envelope (or a JSON list of envelopes, or JSON
    lines of envelopes, as an events file may be saved)."""
    if len(raw) > MAX_ENVELOPE:
        raise EventsInvalid(f"events document is larger than {MAX_ENVELOPE} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventsInvalid("events document is not UTF-8 text") from None
    documents: list[Any] = []
    try:
        documents.append(json.loads(text))
    except json.JSONDecodeError:
        try:
            documents = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise EventsInvalid(f"events document is not JSON: {exc}") from None
    envelopes = (
        documents[0] if len(documents) == 1 and isinstance(documents[0], list) else documents
    )
    out = Imported()
    count = 0
    for envelope in envelopes:
        if not isinstance(envelope, dict) or not isinstance(envelope.get("events"), list):
            raise EventsInvalid(
                'not a notification envelope: expected {"events": [...]}',
                hint="pass the JSON the registry POSTs to its notification endpoints",
            )
        for event in envelope["events"]:
            count += 1
            if count > MAX_EVENTS:
                raise EventsInvalid(f"more than {MAX_EVENTS} events in one document")
            try:
                record = _pull(event)
            except (ValueError, TypeError):
                out.skipped += 1
                continue
            if record is None:
                out.skipped += 1
            elif record.client in exclude_clients:
                out.excluded += 1
            else:
                out.pulls.append(record)
    return out
