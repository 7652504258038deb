"""Key lifecycle applied to verdicts at the log time (``verify.custody_check``), with sources
that are not the store: the policy's own times (``KeyTimesSource``), several sources at once
(``combined``: the stricter answer wins) and any object speaking the ``KeyStatusSource`` protocol
with plain state strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from safeguard.keys.lifecycle import KeyState, KeyTimes, state_at, stricter
from safeguard.verify.custody_check import (
    FLAG_REVIEW,
    KeyTimesSource,
    apply_custody,
    combined,
    log_time,
)
from safeguard.verify.verdict import Verdict

T = datetime(2026, 6, 30, tzinfo=UTC)
KEY = "key-id-1"


def item(logged_at: datetime | None, *, set_verified: bool = True) -> dict[str, Any]:
    entries = []
    if logged_at is not None:
        entries.append(
            {
                "verified": True,
                "signedEntryTimestamp": set_verified,
                "integratedTime": logged_at.isoformat(),
            }
        )
    return {
        "verified": True,
        "signer": {"keyId": KEY},
        "tlog": entries,
        "source": "referrer",
        "location": "sha256:x",
        "kind": "bundle/dsse",
    }


def verdict(*items: dict[str, Any]) -> Verdict:
    return Verdict(True, ["accepted"], list(items))


def test_the_rules() -> None:
    before = T - timedelta(seconds=1)
    assert state_at(before, T, None) is KeyState.VALID
    assert state_at(T, T, None) is KeyState.RETIRED
    assert state_at(before, None, T) is KeyState.FLAG_FOR_REVIEW
    assert state_at(T, None, T) is KeyState.REVOKED
    assert state_at(datetime(2026, 6, 29), T, None) is KeyState.VALID  # naive is UTC
    assert stricter(KeyState.RETIRED, KeyState.FLAG_FOR_REVIEW) is KeyState.RETIRED
    assert stricter(KeyState.UNKNOWN, KeyState.VALID) is KeyState.VALID


def test_policy_times_judged_at_the_log_time() -> None:
    retired = KeyTimesSource({KEY: [KeyTimes(KEY, "internal/a", retired_at=T)]})
    kept = apply_custody(verdict(item(T - timedelta(seconds=1))), retired)
    assert kept.allowed and kept.evidence[0]["custody"]["timeSource"] == "log"
    refused = apply_custody(verdict(item(T)), retired)
    assert not refused.allowed and refused.evidence[0]["code"] == "KEY_RETIRED"
    assert (
        "internal/a retired at 2026-06-30T00:00:00+00:00 [policy]" in refused.evidence[0]["reason"]
    )


def test_revocation_flags_before_and_refuses_at_or_after() -> None:
    source = KeyTimesSource({KEY: [KeyTimes(KEY, "internal/a", revoked_at=T, reason="leaked")]})
    flagged = apply_custody(verdict(item(T - timedelta(seconds=1))), source)
    assert flagged.allowed and flagged.evidence[0]["flags"] == [FLAG_REVIEW]
    refused = apply_custody(verdict(item(T)), source)
    assert not refused.allowed and refused.evidence[0]["code"] == "KEY_REVOKED"
    assert "leaked" in refused.evidence[0]["reason"]


def test_no_log_time_means_now() -> None:
    source = KeyTimesSource({KEY: [KeyTimes(KEY, "internal/a", retired_at=T)]})
    unlogged = apply_custody(verdict(item(None)), source, now=T + timedelta(days=1))
    assert not unlogged.allowed
    assert unlogged.evidence[0]["custody"]["timeSource"] == "now"
    # an entry without a verified SET gives no time the log vouches for
    no_set = item(T - timedelta(days=1), set_verified=False)
    assert log_time(no_set) is None
    assert not apply_custody(verdict(no_set), source, now=T + timedelta(days=1)).allowed
    assert apply_custody(verdict(item(None)), source, now=T - timedelta(days=1)).allowed


class PlainStrings:
    """A ``KeyStatusSource`` that answers plain strings (the protocol asks no more)."""

    def key_status_at(self, key_id: str, log_time: datetime) -> str:
        return "revoked" if key_id == KEY and log_time >= T else "unknown"

    def times_for(self, key_id: str) -> list[KeyTimes]:
        return [KeyTimes(KEY, "custody/a", revoked_at=T, source="custody")]


def test_sources_combine_and_the_stricter_wins() -> None:
    policy = KeyTimesSource({KEY: [KeyTimes(KEY, "internal/a", retired_at=T - timedelta(days=9))]})
    assert not policy.times_for("other") and bool(policy) and not KeyTimesSource()
    both = combined(policy, PlainStrings())
    assert both.key_status_at(KEY, T) == KeyState.REVOKED
    assert both.key_status_at(KEY, T - timedelta(days=1)) == KeyState.RETIRED
    assert both.key_status_at("other", T) == KeyState.UNKNOWN
    assert [t.source for t in both.times_for(KEY)] == ["policy", "custody"]
    refused = apply_custody(verdict(item(T)), both)
    assert refused.evidence[0]["code"] == "KEY_REVOKED"
    assert combined(policy) is policy


def test_keyless_and_refused_items_are_left_alone() -> None:
    source = KeyTimesSource({KEY: [KeyTimes(KEY, "internal/a", retired_at=T)]})
    keyless = {**item(T), "signer": {"certificate": {"subject": "x"}}}
    refused = {**item(T), "verified": False}
    out = apply_custody(Verdict(True, [], [keyless, refused]), source)
    assert out.evidence == [keyless, refused]
