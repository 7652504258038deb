"""Key custody as a post-check of a verdict: retired and revoked keys, judged at the LOG time.

The engine (``verify.engine``) answers whether a signature is cryptographically good and logged;
whether its key was still trusted *when the log saw it* is custody's question (the rules are
``safeguard.keys.lifecycle``; DESIGN.md "Time comes from the log"). Who knows a key's times is a
``KeyStatusSource``, a protocol defined here so that the verifier depends on no store: the
store's custody records (``safeguard.signing.custody.KeyCustody`` and ``CustodyView`` implement
it), or the policy's own ``retiredAt``/``revokedAt`` (``KeyTimesSource``, built by
``safeguard.verify.from_policy``); ``combined`` asks several, the stricter answer winning.
``apply_custody`` takes a ``Verdict`` and, for every accepted key-signed evidence item
(``signer.keyId``):

* takes its log time: the earliest ``integratedTime`` among its log entries that verified with a
  signed entry timestamp (a time the log vouches for). With none, the signature is judged as of
  ``now`` — an unlogged signature cannot prove it predates a retirement;
* asks ``custody.key_status_at(key_id, log_time)``;
* ``retired``/``revoked``: the item is refused (``verified: false``, code ``KEY_RETIRED`` or
  ``KEY_REVOKED``, the reason naming the time and why);
* ``flag_for_review`` (revoked, but logged before the revocation): the item stays accepted and
  gets ``flags: ["KEY_REVOKED_REVIEW"]`` and a reason line, so surfaces and reports can list
  signatures someone must look at;
* every checked item gets ``custody: {state, keyId, logTime, timeSource}``.

``allowed`` is recomputed (any item still verified). Items without a key id (keyless) and refused
items are left alone. The verdict cache keys on the trust policy, not on custody, so callers apply
this after the cache — it is a dictionary lookup per signature.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from safeguard.keys.lifecycle import KeyState, KeyTimes, stricter
from safeguard.verify.verdict import Verdict

FLAG_REVIEW: Final = "KEY_REVOKED_REVIEW"


class KeyTimesView(Protocol):
    """One source's times for a key (``safeguard.keys.lifecycle.KeyTimes`` and the like)."""

    @property
    def name(self) -> str: ...

    @property
    def retired_at(self) -> datetime | None: ...

    @property
    def revoked_at(self) -> datetime | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def source(self) -> str: ...


class KeyStatusSource(Protocol):
    """Who knows keys' lifecycle: ``key_status_at`` answers a ``KeyState`` value (``valid``,
    ``retired``, ``revoked``, ``flag_for_review``, ``unknown``) for a signature the log
    integrated at ``log_time``; ``times_for`` names the times behind it, for the reasons."""

    def key_status_at(self, key_id: str, log_time: datetime) -> str: ...

    def times_for(self, key_id: str) -> Sequence[KeyTimesView]: ...


CustodySource = KeyStatusSource  # the earlier name


class KeyTimesSource:
    """A ``KeyStatusSource`` over known ``KeyTimes`` by key id (the policy's own times)."""

    def __init__(self, times: Mapping[str, Iterable[KeyTimes]] | None = None) -> None:
        self._times = {key_id: tuple(found) for key_id, found in (times or {}).items()}

    def __bool__(self) -> bool:
        return any(self._times.values())

    def key_status_at(self, key_id: str, log_time: datetime) -> KeyState:
        state = KeyState.UNKNOWN
        for times in self._times.get(key_id, ()):
            state = stricter(state, times.state_at(log_time))
        return state

    def times_for(self, key_id: str) -> tuple[KeyTimes, ...]:
        return self._times.get(key_id, ())


class _Combined:
    def __init__(self, sources: Sequence[KeyStatusSource]) -> None:
        self.sources = tuple(sources)

    def key_status_at(self, key_id: str, log_time: datetime) -> KeyState:
        state = KeyState.UNKNOWN
        for source in self.sources:
            state = stricter(state, KeyState(str(source.key_status_at(key_id, log_time))))
        return state

    def times_for(self, key_id: str) -> list[KeyTimesView]:
        return [t for source in self.sources for t in source.times_for(key_id)]


def combined(*sources: KeyStatusSource) -> KeyStatusSource:
    """One source asking every one of ``sources``; the stricter answer wins."""
    return sources[0] if len(sources) == 1 else _Combined(sources)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def log_time(item: dict[str, Any]) -> datetime | None:
    """The earliest time the log vouches for (a verified entry with a verified SET)."""
    times: list[datetime] = []
    for entry in item.get("tlog") or []:
        if not isinstance(entry, dict) or not entry.get("verified"):
            continue
        if not entry.get("signedEntryTimestamp"):
            continue
        when = _parse_time(entry.get("integratedTime"))
        if when is not None:
            times.append(when)
    return min(times) if times else None


def _describe(times: Iterable[KeyTimesView], state: KeyState) -> str:
    parts = []
    for t in times:
        if state in (KeyState.REVOKED, KeyState.FLAG_FOR_REVIEW) and t.revoked_at is not None:
            why = f" ({t.reason})" if t.reason else ""
            parts.append(f"{t.name} revoked at {t.revoked_at.isoformat()}{why} [{t.source}]")
        elif state is KeyState.RETIRED and t.retired_at is not None:
            parts.append(f"{t.name} retired at {t.retired_at.isoformat()} [{t.source}]")
    return "; ".join(parts)


def apply_custody(
    verdict: Verdict, custody: KeyStatusSource, *, now: datetime | None = None
) -> Verdict:
    """The verdict with custody applied (module doc)."""
    moment = now or datetime.now(UTC)
    reasons = list(verdict.reasons)
    evidence: list[dict[str, Any]] = []
    for original in verdict.evidence:
        item = dict(original)
        signer = item.get("signer") or {}
        key_id = signer.get("keyId") if isinstance(signer, dict) else None
        if not item.get("verified") or not isinstance(key_id, str):
            evidence.append(item)
            continue
        when = log_time(item)
        judged = when or moment
        state = KeyState(str(custody.key_status_at(key_id, judged)))
        item["custody"] = {
            "state": state.value,
            "keyId": key_id,
            "logTime": judged.isoformat(),
            "timeSource": "log" if when is not None else "now",
        }
        where = f"{item.get('source')} {item.get('location')}"
        detail = _describe(custody.times_for(key_id), state)
        if state in (KeyState.RETIRED, KeyState.REVOKED):
            code = "KEY_REVOKED" if state is KeyState.REVOKED else "KEY_RETIRED"
            basis = "logged at" if when is not None else "not logged; judged as of"
            item["verified"] = False
            item["code"] = code
            item["reason"] = (
                f"key {key_id} was {state.value} when the signature was made "
                f"({basis} {judged.isoformat()}): {detail}"
            )
            reasons.append(f"refused {item.get('kind')} from {where}: [{code}] {item['reason']}")
        elif state is KeyState.FLAG_FOR_REVIEW:
            item["flags"] = [*item.get("flags", []), FLAG_REVIEW]
            reasons.append(
                f"flagged {item.get('kind')} from {where}: [{FLAG_REVIEW}] logged at "
                f"{judged.isoformat()}, before its key was revoked ({detail}); review it"
            )
        evidence.append(item)
    allowed = any(e.get("verified") for e in evidence)
    return Verdict(allowed, reasons, evidence, verdict.subject, verdict.cached)


def flagged(verdict: Verdict) -> list[dict[str, Any]]:
    """Evidence items custody flagged for review."""
    return [e for e in verdict.evidence if FLAG_REVIEW in e.get("flags", [])]
