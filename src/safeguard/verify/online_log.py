"""Checking online that the log still holds what an accepted signature's bundle says it logged.

Offline verification (``safeguard.verify.logentry``) proves that an entry was in the log's tree
when the bundle was made: the SET, and an inclusion proof to a checkpoint the log key signed. It
cannot see a log that was rewritten, truncated or forked afterwards. Like cosign's online Rekor
lookup, this module asks the log itself, over the Rekor v1 API (sigstore/rekor ``openapi.yaml``),
for every log entry an accepted signature relied on:

1. ``GET /api/v1/log``: the log's current signed checkpoint (C2SP tlog-checkpoint) must verify
   with the log key the trusted root lists for the entry's log ID, else ``TLOG_CHECKPOINT_INVALID``;
2. the bundle's checkpoint ``(size, root)`` must be a prefix of the current tree: a smaller
   current size is ``TLOG_ROLLED_BACK``; the same size with another root, another origin, or a
   consistency proof (``GET /api/v1/log/proof?firstSize=&lastSize=``, RFC 9162 section 2.1.4.2)
   that does not verify is ``TLOG_FORKED``. The same holds against a checkpoint remembered
   between runs in a state file (``--log-state``, the format ``safeguard tlog monitor`` keeps),
   which moves forward after a clean check;
3. ``GET /api/v1/log/entries?logIndex=``: the log must serve the same body, integrated time and
   log ID, under the UUID that is its RFC 6962 leaf hash, with an inclusion proof (RFC 9162
   section 2.1.3.2) to a checkpoint signed by the log key and consistent with the current one,
   else ``TLOG_ENTRY_REWRITTEN``.

The comparisons of checkpoints are the monitor's (``safeguard.tlog.monitor.verify_checkpoint``
and ``extension_problem``). A refusal turns the accepted signature into a refused one with that
code; a log that cannot be reached (connection refused, timeout, 5xx after retries) raises
``OnlineLogUnreachable`` (``TLOG_UNREACHABLE``, exit code 3): never a silent pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives import serialization

from safeguard.core.errors import InvalidInput, SafeguardError, Unreachable
from safeguard.formats._json import loads
from safeguard.formats.bundle import Bundle, TransparencyLogEntry
from safeguard.formats.errors import FormatError
from safeguard.httpbounded import read_bounded, with_body
from safeguard.keys.base import load_public_key, public_key_pem
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import Checkpoint, parse_signed_checkpoint
from safeguard.tlog.client import MAX_RESPONSE_BYTES, USER_AGENT, normalise_url, parse_log_entry
from safeguard.tlog.monitor import (
    FindingCode,
    MonitorState,
    extension_problem,
    verify_checkpoint,
)
from safeguard.verify.checks import Candidate
from safeguard.verify.errors import CheckFailed
from safeguard.verify.logentry import entry_from_rekor_bundle
from safeguard.verify.trustroot import LogKey, LogPublicKey, TrustMaterial
from safeguard.verify.verdict import SignatureCheck

DEFAULT_TIMEOUT: Final = 10.0
LOG_INFO_PATH: Final = "/api/v1/log"
ENTRIES_PATH: Final = "/api/v1/log/entries"
PROOF_PATH: Final = "/api/v1/log/proof"
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def _too_large(limit: int) -> LogAnswerInvalid:
    return LogAnswerInvalid(f"the log's answer exceeds {limit} bytes")


class OnlineReason(StrEnum):
    """The named reasons an online check refuses an otherwise accepted signature."""

    ENTRY_REWRITTEN = "TLOG_ENTRY_REWRITTEN"
    ROLLED_BACK = "TLOG_ROLLED_BACK"
    FORKED = "TLOG_FORKED"
    CHECKPOINT_INVALID = "TLOG_CHECKPOINT_INVALID"
    MISSING = "TLOG_MISSING"
    UNREACHABLE = "TLOG_UNREACHABLE"


_HISTORY: Final = {
    FindingCode.CHECKPOINT_ROLLBACK: OnlineReason.ROLLED_BACK,
    FindingCode.FORKED_HISTORY: OnlineReason.FORKED,
}


class OnlineLogUnreachable(Unreachable):
    """The log did not answer (refused, timed out, 5xx/429 after retries): exit code 3."""

    code = "TLOG_UNREACHABLE"


class LogAnswerInvalid(ValueError):
    """The log answered, but not with what was asked (a 4xx, or a malformed body).

    A ``ValueError`` so that ``extension_problem`` counts a bad consistency answer as a fork."""


def _fail(reason: OnlineReason, message: str) -> CheckFailed:
    return CheckFailed(reason.value, message)


def _der(key: LogPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- reading the log ----------------------------------------------------------------------


class LogReader:
    """The three reads an online check makes, with retries on transient failures."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 2,
        backoff: float = 0.2,
    ) -> None:
        self.url = normalise_url(url)
        self.retries = max(0, retries)
        self.backoff = backoff
        self._own = client is None
        self._http = client or httpx.Client(
            timeout=timeout,
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        if self._own:
            self._http.close()

    def _read(self, path: str, params: dict[str, int] | None) -> httpx.Response:
        """One GET, its body streamed and refused past ``MAX_RESPONSE_BYTES``."""
        request = self._http.build_request("GET", self.url + path, params=params)
        response = self._http.send(request, stream=True)
        try:
            if response.status_code in _RETRY_STATUSES:
                return with_body(response, b"")  # retried; its body is not used
            body = read_bounded(response, MAX_RESPONSE_BYTES, _too_large)
        finally:
            response.close()
        return with_body(response, body)

    def _get(self, path: str, params: dict[str, int] | None = None) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._read(path, params)
            except httpx.TimeoutException:
                failure = f"the transparency log at {self.url} timed out"
            except httpx.HTTPError as exc:
                failure = f"cannot reach the transparency log at {self.url}: {exc}"
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return response
                failure = f"the transparency log at {self.url} answered {response.status_code}"
            if attempt >= self.retries:
                raise OnlineLogUnreachable(
                    failure,
                    hint="the log could not be checked online: retry when it is up, or verify "
                    "offline (without --tlog-url)",
                )
            time.sleep(self.backoff * (2**attempt))
            attempt += 1

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        if response.status_code != 200:
            text = response.text[:200].strip()
            raise LogAnswerInvalid(f"the log answered {response.status_code} for {what}: {text}")
        try:
            return loads(response.content, f"the log's {what}", FormatError)
        except FormatError as exc:
            raise LogAnswerInvalid(exc.message) from None

    def signed_tree_head(self) -> bytes:
        """``GET /api/v1/log``: the signed checkpoint (``signedTreeHead``), unverified."""
        response = self._get(LOG_INFO_PATH)
        if response.status_code in (404, 405):
            raise OnlineLogUnreachable(
                f"{self.url} answered {response.status_code} for {LOG_INFO_PATH}: no Rekor v1 "
                "log there",
                hint="give the URL the log was reached at when signing (--tlog-url)",
            )
        doc = self._json(response, "log info")
        note = doc.get("signedTreeHead") if isinstance(doc, dict) else None
        if not isinstance(note, str):
            raise LogAnswerInvalid("the log info has no signedTreeHead")
        return note.encode("utf-8")

    def entry(self, index: int) -> tuple[str, TransparencyLogEntry]:
        """``GET /api/v1/log/entries?logIndex=``: (UUID, entry with its proof and checkpoint)."""
        doc = self._json(self._get(ENTRIES_PATH, {"logIndex": index}), f"entry {index}")
        try:
            return parse_log_entry(doc)
        except SafeguardError as exc:
            raise LogAnswerInvalid(exc.message) from None

    def consistency(self, first: int, last: int) -> tuple[list[bytes], bytes]:
        """``GET /api/v1/log/proof``: (proof hashes, root of the tree of size ``last``)."""
        params = {"firstSize": first, "lastSize": last}
        doc = self._json(self._get(PROOF_PATH, params), "consistency proof")
        hashes = doc.get("hashes") if isinstance(doc, dict) else None
        root = doc.get("rootHash") if isinstance(doc, dict) else None
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise LogAnswerInvalid("the consistency proof has no list of hex hashes")
        if not isinstance(root, str):
            raise LogAnswerInvalid("the consistency proof has no rootHash")
        return [bytes.fromhex(h) for h in hashes], bytes.fromhex(root)


# --- what a verdict relied on ---------------------------------------------------------------


def entries_of(candidate: Candidate) -> list[TransparencyLogEntry]:
    """The log entries a signature's material carries (bundle entries, cosign's annotation)."""
    if candidate.bundle_json is not None:
        try:
            return list(Bundle.from_json(candidate.bundle_json).verification_material.tlog_entries)
        except SafeguardError:
            return []
    layer = candidate.layer
    if layer is not None and layer.bundle is not None:
        try:
            return [entry_from_rekor_bundle(layer.bundle)]
        except CheckFailed:
            return []
    return []


@dataclass(frozen=True, slots=True)
class _Head:
    checkpoint: Checkpoint
    note: bytes
    log: LogKey


# --- the check ------------------------------------------------------------------------------


class OnlineLogCheck:
    """Online checks of log entries against the log at ``url``; see the module docstring.

    One instance serves one verification run: the current checkpoint is fetched once (and read
    again once, ``lag_grace`` seconds later, before a rollback is declared). ``apply`` refuses
    accepted signatures whose entries fail; ``check_entry`` checks one entry."""

    def __init__(
        self,
        url: str,
        trust: TrustMaterial,
        *,
        state_path: Path | None = None,
        client: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 2,
        lag_grace: float = 1.0,
    ) -> None:
        if not trust.has_logs:
            raise InvalidInput(
                "an online log check needs a trusted root that lists the log's key",
                hint="pass --trusted-root (safeguard tlog export-trusted-root writes one)",
            )
        self.trust = trust
        self.state_path = state_path
        self.state = MonitorState.load(state_path) if state_path is not None else None
        self._state_log = self._log_of_state() if self.state is not None else None
        self.reader = LogReader(url, client=client, timeout=timeout, retries=retries)
        self.url = self.reader.url
        self._note: bytes | None = None
        self._heads: dict[bytes, _Head | CheckFailed] = {}
        self.lag_grace = lag_grace
        self._reread_done = False
        self.failures = 0

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> OnlineLogCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log_of_state(self) -> LogKey:
        assert self.state is not None
        try:
            der = _der(load_public_key(self.state.public_key.encode()))
        except SafeguardError as exc:
            raise InvalidInput(f"the log state {self.state_path}: {exc.message}") from None
        for log in self.trust.tlogs:
            if _der(log.public_key) == der:
                return log
        raise InvalidInput(
            f"the log state {self.state_path} is for a log key the trusted root does not list",
            hint="give the state file of this log, or a new path to start one",
        )

    # --- the current checkpoint ---------------------------------------------------------

    def _consistency(self, first: int, last: int) -> tuple[list[bytes], bytes]:
        return self.reader.consistency(first, last)

    def _head(self, log: LogKey) -> _Head:
        cached = self._heads.get(log.log_id)
        if isinstance(cached, CheckFailed):
            raise cached
        if cached is not None:
            return cached
        try:
            head = self._verified_head(log)
        except CheckFailed as exc:
            self._heads[log.log_id] = exc
            raise
        self._heads[log.log_id] = head
        return head

    def _verified_head(self, log: LogKey) -> _Head:
        if self._note is None:
            try:
                self._note = self.reader.signed_tree_head()
            except LogAnswerInvalid as exc:
                raise _fail(
                    OnlineReason.CHECKPOINT_INVALID,
                    f"the log at {self.url} serves no readable checkpoint: {exc}",
                ) from None
        try:
            checkpoint = verify_checkpoint(self._note, log.public_key)
        except SafeguardError as exc:
            raise _fail(
                OnlineReason.CHECKPOINT_INVALID,
                f"the current checkpoint of the log at {self.url} is not signed by the key the "
                f"trusted root lists for {log.base_url}: {exc.message}",
            ) from None
        state = self.state
        if state is not None and log is self._state_log:
            where = f"the log at {self.url} against the checkpoint remembered in {self.state_path}"
            if checkpoint.origin != state.origin:
                raise _fail(
                    OnlineReason.FORKED,
                    f"{where}: it now signs for {checkpoint.origin!r}, not {state.origin!r}",
                )
            problem = extension_problem(
                self._consistency, state.tree_size, bytes.fromhex(state.root_hash), checkpoint
            )
            if problem is not None:
                raise _fail(_HISTORY[problem[0]], f"{where}: {problem[1]}")
        return _Head(checkpoint, self._note, log)

    # --- one entry ----------------------------------------------------------------------

    def check_entry(self, entry: TransparencyLogEntry) -> dict[str, Any]:
        """Check one (offline-verified) entry online; the evidence, or ``CheckFailed``."""
        log = self.trust.log_for(entry.log_id)
        if log is None:
            raise CheckFailed(
                "TLOG_UNKNOWN_LOG",
                f"log entry {entry.log_index} is from log {entry.log_id.hex()}, which the "
                "trusted root does not list",
            )
        where = f"log entry {entry.log_index}"
        try:
            head = self._head(log).checkpoint
        except CheckFailed as exc:  # behind the remembered checkpoint: maybe a lagging replica
            if exc.reason_code != OnlineReason.ROLLED_BACK.value or self._reread_done:
                raise
            head = self._reread(log)
        problem = self._history(entry, head, where)
        if problem is not None and problem.reason_code == OnlineReason.ROLLED_BACK.value:
            # A replica behind a load balancer may still answer a tree older than one its log
            # already signed (Safeguard's processes catch up within half a second): ask again.
            head = self._reread(log)
            problem = self._history(entry, head, where)
        if problem is not None:
            raise problem
        evidence: dict[str, Any] = {
            "url": self.url,
            "treeSize": head.size,
            "rootHash": head.root_hash.hex(),
            "origin": head.origin,
        }
        if entry.inclusion_proof is not None:
            evidence["bundleTreeSize"] = entry.inclusion_proof.tree_size
        evidence["inclusionTreeSize"] = self._same_entry(entry, log, head, where)
        evidence["entry"] = "unchanged"
        return evidence

    def _reread(self, log: LogKey) -> Checkpoint:
        """The log's checkpoint read again, once per run, ``lag_grace`` seconds later."""
        if not self._reread_done:
            self._reread_done = True
            time.sleep(self.lag_grace)
            self._note = None
            self._heads.clear()
        return self._head(log).checkpoint

    def _history(
        self, entry: TransparencyLogEntry, head: Checkpoint, where: str
    ) -> CheckFailed | None:
        """Why ``head`` is not a history that holds the entry as the bundle saw it, or None."""
        proof = entry.inclusion_proof
        if proof is None:
            if head.size <= entry.log_index:
                return _fail(
                    OnlineReason.ROLLED_BACK,
                    f"{where}: the log at {self.url} has a tree of size {head.size}, which no "
                    "longer holds it",
                )
            return None
        if proof.checkpoint is not None:
            try:
                origin = parse_signed_checkpoint(proof.checkpoint.encode("utf-8"))[0].origin
            except SafeguardError as exc:
                return CheckFailed("TLOG_CHECKPOINT_INVALID", f"{where}: {exc.message}")
            if origin != head.origin:
                return _fail(
                    OnlineReason.FORKED,
                    f"{where}: the bundle's checkpoint is for {origin!r}, the log at "
                    f"{self.url} now signs for {head.origin!r}",
                )
        problem = extension_problem(self._consistency, proof.tree_size, proof.root_hash, head)
        if problem is None:
            return None
        return _fail(
            _HISTORY[problem[0]],
            f"{where}: the log at {self.url} does not extend the bundle's checkpoint of size "
            f"{proof.tree_size}: {problem[1]}",
        )

    def _same_entry(
        self, entry: TransparencyLogEntry, log: LogKey, head: Checkpoint, where: str
    ) -> int:
        """The log serves this very entry, in a tree consistent with ``head``; that tree's size."""
        try:
            uuid, got = self.reader.entry(entry.log_index)
        except LogAnswerInvalid as exc:
            raise _fail(
                OnlineReason.ENTRY_REWRITTEN,
                f"{where}: the log at {self.url} no longer serves it: {exc}",
            ) from None
        leaf = merkle.leaf_hash(got.canonicalized_body)
        problems = []
        if got.log_index != entry.log_index:
            problems.append(f"it answered entry {got.log_index}")
        if got.log_id != entry.log_id:
            problems.append(f"it answered an entry of log {got.log_id.hex()}")
        if got.canonicalized_body != entry.canonicalized_body:
            problems.append("its body differs from the bundle's")
        if entry.integrated_time is not None and got.integrated_time != entry.integrated_time:
            problems.append(
                f"its integrated time is {got.integrated_time}, not the bundle's "
                f"{entry.integrated_time}"
            )
        if uuid != leaf.hex():
            problems.append("its UUID is not the leaf hash of its body")
        if problems:
            raise _fail(
                OnlineReason.ENTRY_REWRITTEN,
                f"{where} was rewritten in the log at {self.url}: {'; '.join(problems)}",
            )
        proof = got.inclusion_proof
        assert proof is not None and proof.checkpoint is not None  # parse_log_entry requires them
        try:
            merkle.verify_inclusion(
                leaf, proof.log_index, proof.tree_size, proof.hashes, proof.root_hash
            )
        except SafeguardError as exc:
            raise _fail(
                OnlineReason.ENTRY_REWRITTEN,
                f"{where}: its body does not hash to the leaf the log's tree holds: {exc.message}",
            ) from None
        try:
            signed = verify_checkpoint(proof.checkpoint.encode("utf-8"), log.public_key)
        except SafeguardError as exc:
            raise _fail(
                OnlineReason.CHECKPOINT_INVALID,
                f"{where}: the checkpoint the log proves it in is not signed by the log key: "
                f"{exc.message}",
            ) from None
        if (signed.size, signed.root_hash) != (proof.tree_size, proof.root_hash):
            raise _fail(
                OnlineReason.CHECKPOINT_INVALID,
                f"{where}: the log's checkpoint does not state the tree of its inclusion proof",
            )
        if signed.size <= head.size:
            problem = extension_problem(self._consistency, signed.size, signed.root_hash, head)
        else:
            problem = extension_problem(self._consistency, head.size, head.root_hash, signed)
        if problem is not None:
            raise _fail(
                OnlineReason.FORKED,
                f"{where}: the tree the log proves it in (size {signed.size}) is not consistent "
                f"with the log's current checkpoint (size {head.size}): {problem[1]}",
            )
        return signed.size

    # --- signatures ---------------------------------------------------------------------

    def apply(self, checked: Sequence[tuple[Candidate, SignatureCheck]]) -> None:
        """Check every accepted signature's verified log entries; refuse those that fail.

        Saves the state file (when given) after a run in which every check passed."""
        failures = 0
        for candidate, result in checked:
            if not result.ok:
                continue
            try:
                self._check_signature(candidate, result)
            except CheckFailed as exc:
                failures += 1
                result.refuse(exc.reason_code, exc.message)
        self.failures += failures
        if not failures:
            self._save_state()

    def _check_signature(self, candidate: Candidate, result: SignatureCheck) -> None:
        verified = {
            (item.get("logIndex"), item.get("logId")) for item in result.log if item.get("verified")
        }
        entries = [e for e in entries_of(candidate) if (e.log_index, e.log_id.hex()) in verified]
        if not entries:
            raise _fail(
                OnlineReason.MISSING,
                f"the signature carries no verified log entry to check online at {self.url}",
            )
        checked: list[str] = []
        for entry in entries:
            evidence = self.check_entry(entry)
            for item in result.log:
                if (item.get("logIndex"), item.get("logId")) == (
                    entry.log_index,
                    entry.log_id.hex(),
                ):
                    item["online"] = evidence
            result.detail["onlineLog"] = {
                k: evidence[k] for k in ("url", "treeSize", "rootHash", "origin")
            }
            checked.append(str(entry.log_index))
        result.reason += (
            f"; log entry {', '.join(checked)} checked online at {self.url} "
            f"(tree size {result.detail['onlineLog']['treeSize']})"
        )

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        heads = [h for h in self._heads.values() if isinstance(h, _Head)]
        head = next((h for h in heads if h.log is self._state_log), None)
        if head is None:
            if self._state_log is not None or not heads:
                return
            head = heads[0]
        checkpoint = head.checkpoint
        MonitorState(
            self.url,
            checkpoint.origin,
            public_key_pem(head.log.public_key).decode(),
            checkpoint.size,
            checkpoint.root_hash.hex(),
            head.note.decode("utf-8"),
            datetime.now(UTC).isoformat(),
        ).save(self.state_path)
