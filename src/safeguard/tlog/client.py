"""A client of a Rekor v1 log's entry API: record a signature, get back its offline proof.

The signing flows (``safeguard.signing.sign``) hand a ``TlogHook`` the *proposed entry* for what
they just signed; ``RekorClient`` is that hook for a log reached over HTTP (Safeguard's own, which
``safeguard serve`` mounts, or any Rekor v1 instance). It follows sigstore/rekor ``openapi.yaml``
and what sigstore-go ``pkg/sign/transparency.go`` and cosign do with the answers:

* ``POST /api/v1/log/entries`` with the proposed entry (``hashedrekord`` 0.0.1, or ``dsse`` 0.0.1
  ``spec.proposedContent{envelope, verifiers}``). ``201`` answers ``LogEntry``, a one-key object
  ``{"<entry UUID>": LogEntryAnon{body, integratedTime, logID, logIndex, verification{
  signedEntryTimestamp, inclusionProof{logIndex, rootHash, treeSize, hashes, checkpoint}}}}``;
  ``409`` means the entry is already logged: the existing one is read from the answer's
  ``Location`` (``GET /api/v1/log/entries/{uuid}``), as Rekor's Go client callers do;
* the answer becomes a protobuf-specs ``TransparencyLogEntry`` exactly as rekor ``pkg/tle``
  ``GenerateTransparencyLogEntry`` builds it: ``logId.keyId`` from the hex log ID, ``kindVersion``
  from the body, hex proof hashes to bytes, the checkpoint text as ``checkpoint.envelope``, the
  body kept byte for byte as ``canonicalizedBody``.

Before an entry goes into a bundle it is checked, fail closed, so that no bundle is written that
a verifier would refuse: the body records *this* signature by *this* key over *this* content
(compared field by field with the locally canonicalised proposal, not byte for byte, so a log
that canonicalises differently still passes), its UUID is its RFC 6962 leaf hash, the SET
verifies with the log key, the inclusion proof leads to the root of a checkpoint signed by that
key, and the log ID is the key's. The log key is the one pinned by the caller (cosign's
``SIGSTORE_REKOR_PUBLIC_KEY`` names a PEM file), else the one the log serves at
``GET /api/v1/log/publicKey`` (which only proves self-consistency; pin it for more).

Errors are typed: the log down, timing out or answering 5xx/429 is ``LogUnreachable`` (exit 3,
after ``retries`` further attempts); a 4xx is ``EntryRejected`` (exit 2) carrying the log's own
message; an answer that is malformed is ``LogResponseInvalid`` (exit 2) and one that does not
prove the submitted entry is ``LogResponseUntrusted`` (exit 1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from safeguard.core.errors import (
    InvalidInput,
    SafeguardError,
    Unreachable,
    VerificationFailed,
)
from safeguard.formats._json import loads
from safeguard.formats.bundle import InclusionProof, TransparencyLogEntry
from safeguard.formats.errors import FormatError
from safeguard.formats.rekor import RekorEntry, parse_entry
from safeguard.httpbounded import read_bounded, with_body
from safeguard.keys.base import PublicKey, load_public_key, public_key_der
from safeguard.keys.errors import KeyInvalid, KeyUnsupported
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import open_checkpoint
from safeguard.tlog.entries import prepare_entry
from safeguard.tlog.logkey import key_details, note_verifier, verify_set
from safeguard.tlog.note import parse_note, rekor_key_id
from safeguard.tlog.service import set_payload

ENTRIES_PATH: Final = "/api/v1/log/entries"
PUBLIC_KEY_PATH: Final = "/api/v1/log/publicKey"
PUBLIC_KEY_ENV: Final = "SIGSTORE_REKOR_PUBLIC_KEY"
"""cosign's variable: a PEM file holding the log's public key, to pin it."""
DEFAULT_TIMEOUT: Final = 30.0
MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
USER_AGENT: Final = "safeguard-tlog-client/1"
_UUID: Final = re.compile(r"(?:[0-9a-f]{16})?([0-9a-f]{64})")
_HEX32: Final = re.compile(r"[0-9a-f]{64}")
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def _too_large(limit: int) -> LogResponseInvalid:
    return LogResponseInvalid(f"the log's answer exceeds {limit} bytes")


class LogUnreachable(Unreachable):
    """The log did not answer (refused, timed out) or answered 5xx/429; retrying may help."""


class EntryRejected(InvalidInput):
    """The log refused the proposed entry (4xx); ``message`` carries the log's own words."""

    code = "TLOG_ENTRY_REJECTED"


class LogResponseInvalid(SafeguardError):
    """The log answered something that is not a Rekor ``LogEntry``."""

    code = "TLOG_RESPONSE_INVALID"
    http_status = 502


class LogResponseUntrusted(VerificationFailed):
    """The log's answer does not prove that the submitted entry was logged."""

    code = "TLOG_RESPONSE_UNTRUSTED"


@dataclass(frozen=True, slots=True)
class Submission:
    """A logged entry: its UUID, the bundle entry, and whether this call created it."""

    uuid: str
    entry: TransparencyLogEntry
    created: bool
    checkpoint_names: tuple[str, ...] = field(default=())


def normalise_url(url: str) -> str:
    """``http(s)://host[:port][/path]`` without a trailing slash, or ``InvalidInput``."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"the transparency log URL {url!r} is not an http(s) URL",
            hint="write --tlog-url https://HOST[:PORT] (where `safeguard serve` runs)",
        )
    if parts.query or parts.fragment:
        raise InvalidInput(f"the transparency log URL {url!r} must not have a query or fragment")
    return text


def note_name_for(url: str) -> str:
    """The key name verifiers expect on checkpoints of a log at ``url`` (Rekor's convention:
    the host, as in ``rekor.sigstore.dev``): the URL without its scheme."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/")


def load_pinned_key(path: str | Path) -> PublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the log public key {path}: {exc.strerror}") from None
    try:
        return load_public_key(data)
    except (KeyInvalid, KeyUnsupported) as exc:
        raise InvalidInput(f"the log public key {path} is unusable: {exc.message}") from None


# --- parsing a LogEntry -------------------------------------------------------------------


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LogResponseInvalid(f"the log's answer has no valid {where}.{key}")
    return value


def _count(obj: dict[str, Any], key: str, where: str) -> int:
    value = _field(obj, key, int, where)
    if value < 0 or value >= 2**63:
        raise LogResponseInvalid(f"the log's answer has an out-of-range {where}.{key}")
    return int(value)


def _hex(text: Any, where: str) -> bytes:
    if not isinstance(text, str) or not _HEX32.fullmatch(text.lower()):
        raise LogResponseInvalid(f"the log's answer has no 32-byte hex {where}")
    return bytes.fromhex(text)


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise LogResponseInvalid(f"the log's answer has no base64 {where}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LogResponseInvalid(f"the log's answer has invalid base64 in {where}") from None


def parse_log_entry(doc: Any) -> tuple[str, TransparencyLogEntry]:
    """A Rekor ``LogEntry`` answer (one UUID → ``LogEntryAnon``) as ``(uuid, bundle entry)``.

    The UUID is returned without a tree-ID prefix (the 64-hex leaf hash)."""
    if not isinstance(doc, dict) or len(doc) != 1:
        raise LogResponseInvalid("the log's answer is not a LogEntry (one UUID to one entry)")
    ((raw_uuid, anon),) = doc.items()
    match = _UUID.fullmatch(raw_uuid.lower()) if isinstance(raw_uuid, str) else None
    if match is None:
        raise LogResponseInvalid("the log's answer is keyed by something that is not an entry UUID")
    if not isinstance(anon, dict):
        raise LogResponseInvalid("the log's LogEntry value is not an object")
    body = _b64(_field(anon, "body", str, "entry"), "entry.body")
    integrated = _count(anon, "integratedTime", "entry")
    log_id = _hex(anon.get("logID"), "entry.logID")
    index = _count(anon, "logIndex", "entry")
    verification = _field(anon, "verification", dict, "entry")
    set_ = _b64(
        _field(verification, "signedEntryTimestamp", str, "verification"),
        "verification.signedEntryTimestamp",
    )
    raw_proof = _field(verification, "inclusionProof", dict, "verification")
    where = "verification.inclusionProof"
    hashes = _field(raw_proof, "hashes", list, where)
    proof = InclusionProof(
        _count(raw_proof, "logIndex", where),
        _hex(raw_proof.get("rootHash"), f"{where}.rootHash"),
        _count(raw_proof, "treeSize", where),
        tuple(_hex(h, f"{where}.hashes[{i}]") for i, h in enumerate(hashes)),
        _field(raw_proof, "checkpoint", str, where),
    )
    if proof.log_index >= proof.tree_size:
        raise LogResponseInvalid("the log's inclusion proof has its index outside its tree")
    try:
        parsed = parse_entry(body)
    except FormatError as exc:
        raise LogResponseInvalid(f"the log's entry body is unreadable: {exc.message}") from None
    entry = TransparencyLogEntry(
        index,
        log_id,
        parsed.kind,
        parsed.api_version,
        body,
        integrated,
        set_,
        proof,
    )
    return match.group(1), entry


# --- checking a logged entry --------------------------------------------------------------


def _signatures(entry: RekorEntry) -> set[tuple[bytes, bytes]]:
    out: set[tuple[bytes, bytes]] = set()
    for item in entry.signatures:
        pem = item.verifier.pem
        if pem is None:
            continue
        try:
            key = load_public_key(pem)
        except (KeyInvalid, KeyUnsupported):
            continue
        out.add((item.signature, public_key_der(key)))
    return out


def check_binding(expected: RekorEntry, got: RekorEntry) -> None:
    """``got`` (the log's body) records what ``expected`` (our canonical proposal) does."""
    if (got.kind, got.api_version) != (expected.kind, expected.api_version):
        raise LogResponseUntrusted(
            f"the log recorded a {got.kind} {got.api_version} entry for a "
            f"{expected.kind} {expected.api_version} proposal"
        )
    if got.artifact_digest != expected.artifact_digest or got.payload_hash != (
        expected.payload_hash
    ):
        raise LogResponseUntrusted("the log recorded another artifact or payload")
    if _signatures(got) != _signatures(expected):
        raise LogResponseUntrusted("the log recorded other signatures or keys")


def check_entry(entry: TransparencyLogEntry, public_key: PublicKey) -> tuple[str, ...]:
    """Verify the SET, the inclusion proof and the checkpoint with the log key.

    Returns the key names that signed the checkpoint (for the note-name check)."""
    der = public_key_der(public_key)
    if entry.log_id != hashlib.sha256(der).digest():
        raise LogResponseUntrusted(
            f"the entry's log ID {entry.log_id.hex()} is not the log key's",
            hint=f"is {PUBLIC_KEY_ENV} the key of this log?",
        )
    assert entry.signed_entry_timestamp is not None and entry.integrated_time is not None
    payload = set_payload(
        entry.canonicalized_body, entry.integrated_time, entry.log_id.hex(), entry.log_index
    )
    if not verify_set(public_key, entry.signed_entry_timestamp, payload):
        raise LogResponseUntrusted("the log's signed entry timestamp does not verify")
    proof = entry.inclusion_proof
    assert proof is not None and proof.checkpoint is not None
    if proof.log_index != entry.log_index:
        raise LogResponseUntrusted("the inclusion proof is for another log index")
    try:
        merkle.verify_inclusion(
            merkle.leaf_hash(entry.canonicalized_body),
            proof.log_index,
            proof.tree_size,
            proof.hashes,
            proof.root_hash,
        )
    except SafeguardError as exc:
        raise LogResponseUntrusted(f"the log's inclusion proof fails: {exc.message}") from None
    text = proof.checkpoint.encode("utf-8")
    try:
        if not isinstance(public_key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise LogResponseUntrusted("a log key is ECDSA P-256 or Ed25519")
        key_id = rekor_key_id(public_key)
        names = sorted({s.name for s in parse_note(text).signatures if s.key_id == key_id})
        if not names:
            raise LogResponseUntrusted("the checkpoint is not signed by the log key")
        opened = open_checkpoint(text, [note_verifier(n, public_key) for n in names])
    except LogResponseUntrusted:
        raise
    except SafeguardError as exc:
        raise LogResponseUntrusted(f"the log's checkpoint fails: {exc.message}") from None
    if opened.checkpoint.size != proof.tree_size or opened.checkpoint.root_hash != proof.root_hash:
        raise LogResponseUntrusted("the checkpoint does not state the inclusion proof's tree")
    return tuple(names)


# --- the client ---------------------------------------------------------------------------


class RekorClient:
    """Synchronous client of a Rekor v1 log; calling it is a ``TlogHook``.

    ``public_key`` pins the log key (else ``SIGSTORE_REKOR_PUBLIC_KEY``, else the log's own
    ``/api/v1/log/publicKey``). ``retries`` further attempts follow a connection failure, a
    timeout or a 5xx/429, with a short backoff; a repeated ``POST`` whose first attempt was in
    fact logged answers 409 and is resolved to the existing entry.
    """

    def __init__(
        self,
        url: str,
        *,
        public_key: PublicKey | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 2,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self.retries = max(0, retries)
        self.backoff = backoff
        if public_key is None and os.environ.get(PUBLIC_KEY_ENV):
            public_key = load_pinned_key(os.environ[PUBLIC_KEY_ENV])
        if public_key is not None:
            key_details(public_key)
        self._public_key = public_key
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
            follow_redirects=False,
        )
        self.submissions: list[Submission] = []

    def __enter__(self) -> RekorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def note_name(self) -> str:
        return note_name_for(self.url)

    # --- HTTP ----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._read(method, path, **kwargs)
            except httpx.TimeoutException:
                failure = f"the transparency log at {self.url} timed out"
            except httpx.HTTPError as exc:
                failure = f"cannot reach the transparency log at {self.url}: {exc}"
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return response
                failure = (
                    f"the transparency log at {self.url} answered {response.status_code}: "
                    f"{self._message(response)}"
                )
            if attempt >= self.retries:
                raise LogUnreachable(failure, hint="check that the log is running, then retry")
            time.sleep(self.backoff * (2**attempt))
            attempt += 1

    def _read(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, its body streamed and refused past ``MAX_RESPONSE_BYTES``."""
        request = self._http.build_request(method, path, **kwargs)
        response = self._http.send(request, stream=True)
        try:
            # A retryable error's body is only quoted in a message: keep its start.
            body = read_bounded(
                response,
                MAX_RESPONSE_BYTES,
                _too_large,
                truncate=response.status_code in _RETRY_STATUSES,
            )
        finally:
            response.close()
        return with_body(response, body)

    @staticmethod
    def _message(response: httpx.Response) -> str:
        """The log's error text: Rekor's ``Error{code, message}``, else the first of the body."""
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            reason = doc.get("reason")
            suffix = f" [{reason}]" if isinstance(reason, str) and reason else ""
            message: str = doc["message"]
            return message[:1000] + suffix
        return response.text[:300].strip() or response.reason_phrase

    def _json(self, response: httpx.Response) -> Any:
        try:
            return loads(response.content, "the log's answer", FormatError)
        except FormatError as exc:
            raise LogResponseInvalid(exc.message) from None

    def public_key(self) -> PublicKey:
        """The pinned log key, else the one the log serves (fetched once)."""
        if self._public_key is None:
            response = self._request("GET", PUBLIC_KEY_PATH)
            if response.status_code != 200:
                raise LogResponseInvalid(
                    f"the log at {self.url} answered {response.status_code} for its public key: "
                    f"{self._message(response)}"
                )
            try:
                key = load_public_key(response.content)
                key_details(key)
            except (KeyInvalid, KeyUnsupported) as exc:
                raise LogResponseInvalid(
                    f"the log's public key is unusable: {exc.message}"
                ) from None
            self._public_key = key
        return self._public_key

    # --- entries -------------------------------------------------------------------------

    def get_entry(self, uuid: str) -> tuple[str, TransparencyLogEntry]:
        """``GET /api/v1/log/entries/{uuid}``."""
        if not _UUID.fullmatch(uuid.lower()):
            raise InvalidInput(f"{uuid[:100]!r} is not a Rekor entry UUID")
        response = self._request("GET", f"{ENTRIES_PATH}/{uuid}")
        if response.status_code != 200:
            self._raise_for(response, f"reading entry {uuid}")
        return parse_log_entry(self._json(response))

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        message = (
            f"the transparency log at {self.url} refused {what} ({response.status_code}): "
            f"{self._message(response)}"
        )
        if 400 <= response.status_code < 500:
            raise EntryRejected(message, detail={"status": response.status_code})
        raise LogResponseInvalid(message)

    def submit(self, proposed: bytes) -> Submission:
        """Log ``proposed`` (a Rekor v1 proposed entry) and return its checked proof."""
        prepared = prepare_entry(proposed)  # what the log must record (also checks our signature)
        expected = parse_entry(prepared.body)
        response = self._request(
            "POST", ENTRIES_PATH, content=proposed, headers={"content-type": "application/json"}
        )
        created = response.status_code == 201
        if response.status_code == 409:
            location = response.headers.get("location", "")
            uuid = location.rstrip("/").rsplit("/", 1)[-1] if location else prepared.uuid
            uuid, entry = self.get_entry(uuid)
        elif created:
            uuid, entry = parse_log_entry(self._json(response))
        else:
            self._raise_for(response, f"the {prepared.kind} entry")
            raise AssertionError("unreachable")  # pragma: no cover
        if merkle.leaf_hash(entry.canonicalized_body).hex() != uuid:
            raise LogResponseUntrusted("the log's entry UUID is not the leaf hash of its body")
        check_binding(expected, entry.entry())
        names = check_entry(entry, self.public_key())
        submission = Submission(uuid, entry, created, names)
        self.submissions.append(submission)
        return submission

    def __call__(self, proposed: bytes) -> TransparencyLogEntry:
        """The ``TlogHook``: log the proposed entry, return the bundle entry."""
        return self.submit(proposed).entry

    def note_name_warning(self) -> str | None:
        """A warning when the log signs checkpoints under a name that a trusted root naming this
        URL will not accept (Safeguard and sigstore-js match the name against the log's URL)."""
        names = {n for s in self.submissions for n in s.checkpoint_names}
        if not names or self.note_name in names:
            return None
        shown = ", ".join(sorted(names))
        return (
            f"the log signs its checkpoints as {shown!r}, not as {self.note_name!r}: a trusted "
            f"root for it needs baseUrl https://{shown} (`safeguard tlog export-trusted-root "
            f"--url {self.url}` writes that). To name the log after its address, create it with "
            f"SAFEGUARD_TLOG_HOSTNAME={self.note_name}"
        )
