"""From the policy's signers to what the verifier checks: ``SignerTrust`` (``TrustPolicy``
passes, and the keys' lifecycle times).

A rule's ``signers`` (``safeguard.policy.schema.SignerRef``) name policy identities or public-key
files; an empty list means every identity of the policy (docs/policy.md). Each becomes trust the
verification engine understands:

* ``{key: PATH}``: the PEM public key in that file;
* ``{identity: NAME}`` with a key (``ci`` identities signing through the signing service, and
  release engineers): the trust root's key the identity names (``identities[].key`` in
  ``trustRoots[identity.trustRoot].keys``) — its ``publicKey`` file, or the public half of its
  ``ref``: read from the token for a ``pkcs11:`` URI (``token_key``), the ``.pub`` written next
  to a cosign key file (``cosign.key`` -> ``cosign.pub``, read through ``read`` like every other
  file); a release engineer without a key uses the public key of its ``token``;
* ``{identity: NAME}`` with ``keyless``: the certificate identity (subject and issuer, exact or
  regular expression, Fulcio extensions; ``keyless_identity``) under the trust root's
  ``keyless.trustedRoot``.

Key-signed identities are merged into one ``TrustPolicy`` per transparency log (one
verification pass checks them all); each keyless identity is its own. When an identity's trust
root names a log (``tlog: {url, publicKey}``), its keys' pass carries a trusted root naming that
log (``log_trust``: built by ``safeguard.tlog.trustroot`` and parsed by
``safeguard.verify.trustroot``, as an exported one would be), so the engine requires a log entry
that verifies against it (``TrustPolicy.require_tlog``) and knows its integrated time. The log's
``url`` is its ``baseUrl``: its host and path must be the name the log signs checkpoints with
(``SAFEGUARD_TLOG_HOSTNAME``; ``https://safeguard`` by default), as for ``safeguard tlog
export-trusted-root``, or the checkpoints of its entries do not verify. Keys of trust roots
without a log, and ``{key: PATH}`` signers, share one pass with no log.

Keys are no longer left out for ``retiredAt``/``revokedAt``: those are judged per signature at
the log time (``SignerTrust.judge``, ``safeguard.verify.custody_check``; rules in
``safeguard.keys.lifecycle``): retired at T, signatures logged before T count and later ones are
``KEY_RETIRED``; revoked at T, earlier ones count flagged ``KEY_REVOKED_REVIEW`` and the rest are
``KEY_REVOKED``. A signature without a time the log vouches for (no log in its trust root, or no
verified signed entry timestamp) is judged as of now, so without a log a retired key is refused
outright. When several policy entries name the same key material, all their times apply (the
stricter answer wins); callers add the store's custody records to ``judge``.

An identity whose ``mayPublish`` (release engineers:
``acceptedIn``) globs do not cover the repository is left out, so its signatures do not count
there (``covers``). Globs name ``registry/path``. A full repository name (``registry.internal/
team-a/app``, as admission and audit see it) is matched against them as written. A gateway sees
only the path inside the registry it fronts (``team-a/app``) and passes ``registry_hosts``, the
names that registry goes by (its public URL's host, the upstream's host, its own address): a
glob whose first segment is a registry host counts only when that host is one of them, and then
its path part is matched; ``ghcr.io/org/**`` never covers ``org/app`` on another registry. A glob
without a host (``team-a/**``) is matched as written.

Every file is read through ``read(path)`` (paths as the policy writes them) — a stored policy
version's own files, or the directory of the policy file — never from the file system by this
module, so that a stored version means what it meant when it was applied. A file ``read`` cannot
give, or that holds no public key, is ``SignerUnavailable``. Only ``pkcs11:`` references are
opened here, through ``token_key`` (by default ``safeguard.keys.verification``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Final

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.core.glob import glob_matches
from safeguard.keys.base import PublicKey, key_id_for, load_public_key, public_key_der
from safeguard.keys.lifecycle import KeyTimes
from safeguard.keys.verification import is_pkcs11, token_public_key
from safeguard.tlog.logkey import key_details
from safeguard.tlog.trustroot import trusted_root
from safeguard.verify.custody_check import (
    KeyStatusSource,
    KeyTimesSource,
    apply_custody,
    combined,
)
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import TrustMaterial, parse_trusted_root
from safeguard.verify.verdict import Verdict

if TYPE_CHECKING:
    from safeguard.policy.schema import (
        Identity,
        KeylessMatch,
        Policy,
        SignerRef,
        TlogTrust,
        TrustKey,
    )

FileReader = Callable[[str], bytes]
TokenKey = Callable[[str], PublicKey]
LOG_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SignerUnavailable(InvalidInput):
    """A signer of the policy cannot be turned into something to verify against."""

    code = "POLICY_SIGNER_UNAVAILABLE"


def _is_host(segment: str) -> bool:
    """A reference's first component names a registry when it has a ``.`` or ``:`` or is
    ``localhost`` (distribution/reference ``normalize.go``, ``splitDockerDomain``)."""
    return "." in segment or ":" in segment or segment == "localhost"


def covers(
    globs: Sequence[str], repository: str, registry_hosts: Collection[str] | None = None
) -> bool:
    """Whether ``globs`` (``registry/path`` globs) cover ``repository`` (module doc).

    Without ``registry_hosts``, ``repository`` is a full name and every glob is matched as
    written. With them, ``repository`` is a path inside the registry those names denote: a glob
    that starts with a registry host covers it only when that host is one of ``registry_hosts``
    (compared case-insensitively, exactly: no wildcards in hosts) and its remaining path
    matches; a glob without a host is matched as written.
    """
    if registry_hosts is None:
        return any(glob_matches(glob, repository) for glob in globs)
    ours = {host.lower() for host in registry_hosts}
    for glob in globs:
        first, slash, rest = glob.partition("/")
        if slash and _is_host(first):
            if first.lower() in ours and glob_matches(rest, repository):
                return True
        elif glob_matches(glob, repository):
            return True
    return False


def _read(read: FileReader, path: str, what: str) -> bytes:
    try:
        return read(path)
    except SignerUnavailable:
        raise
    except Exception as exc:  # the reader's own error type: the file cannot be had
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise SignerUnavailable(
            f"{what}: {path} cannot be read ({message})",
            hint="apply the policy from its file so that the file is stored with the version",
        ) from None


def _read_key(read: FileReader, path: str, what: str) -> PublicKey:
    data = _read(read, path, what)
    try:
        return load_public_key(data)
    except SafeguardError as exc:
        raise SignerUnavailable(f"{what}: {path} holds no public key ({exc.message})") from None


def public_half(key_file: str) -> str:
    """The path of the ``.pub`` written next to a cosign key file, as the policy would write it."""
    return str(PurePath(key_file).with_suffix(".pub"))


def _public_key(key: TrustKey, read: FileReader, token_key: TokenKey) -> PublicKey:
    """The public half of a trust root's key (module doc)."""
    if key.public_key is not None:
        return _read_key(read, key.public_key, f"key {key.name!r}")
    assert key.ref is not None
    if is_pkcs11(key.ref):
        return token_key(key.ref)
    public = public_half(key.ref)
    try:
        return _read_key(read, public, f"key {key.name!r}")
    except SignerUnavailable as exc:
        raise SignerUnavailable(
            f"key {key.name!r} is the private key file {key.ref}; its public half: {exc.message}",
            hint="give the key a publicKey, so that the policy version stores the public half",
        ) from None


def _times(root_name: str, key: TrustKey, public: PublicKey) -> KeyTimes:
    return KeyTimes(
        key_id_for(public),
        f"{root_name}/{key.name}",
        key.retired_at,
        key.revoked_at,
        key.revocation_reason,
        source="policy",
    )


def log_trust(root_name: str, tlog: TlogTrust, read: FileReader) -> TrustMaterial:
    """A trusted root naming the trust root's transparency log: ``tlog.url`` as ``baseUrl``
    (whose host and path must be the name the log signs its checkpoints with), ``tlog.publicKey``
    as its key, valid from the epoch (the policy does not say when the log began). Built with
    ``safeguard.tlog.trustroot`` and read back with ``parse_trusted_root``, as any other."""
    where = f"trust root {root_name!r} tlog"
    public = _read_key(read, tlog.public_key, where)
    try:
        details = key_details(public)
    except SafeguardError as exc:
        raise SignerUnavailable(f"{where}: {exc.message}", hint=exc.hint) from None
    doc = trusted_root(tlog.url, public_key_der(public), details, LOG_EPOCH)
    return parse_trusted_root(
        json.dumps(doc, sort_keys=True).encode(), f"trustRoots.{root_name}.tlog"
    )


def keyless_identity(match: KeylessMatch) -> IdentityPolicy:
    """The certificate identity a policy's ``keyless`` block asks for."""
    extensions = match.extensions.by_extension_name() if match.extensions else {}
    return IdentityPolicy(
        subject=Match(match.subject, match.subject_reg_exp),
        issuer=Match(match.issuer, match.issuer_reg_exp),
        extensions=extensions,
    )


def _keyless(policy: Policy, identity: Identity, read: FileReader) -> TrustPolicy:
    root = policy.trust_root(identity.trust_root)
    if root is None or root.keyless is None or identity.keyless is None:
        raise SignerUnavailable(
            f"keyless identity {identity.name!r} needs a trust root with keyless.trustedRoot"
        )
    path = root.keyless.trusted_root
    data = _read(read, path, f"trust root {identity.trust_root!r}")
    trust: TrustMaterial = parse_trusted_root(data, path)
    return TrustPolicy(identity=keyless_identity(identity.keyless), trust=trust)


@dataclass(frozen=True)
class SignerTrust:
    """What a rule's signers stand for: the ``TrustPolicy`` passes to verify with (a signature
    counts when one allows it), and the lifecycle times the policy gives their keys.

    A verdict of a pass is only final after ``judge``: it applies ``retiredAt``/``revokedAt``
    (and any other ``KeyStatusSource``, such as the store's custody records) at the log time of
    each accepted signature (``safeguard.verify.custody_check``)."""

    policies: tuple[TrustPolicy, ...]
    key_times: KeyTimesSource = field(default_factory=KeyTimesSource)

    def __bool__(self) -> bool:
        return bool(self.policies)

    def judge(
        self, verdict: Verdict, *custody: KeyStatusSource, now: datetime | None = None
    ) -> Verdict:
        """``verdict`` with the keys' lifecycle applied (the class doc)."""
        if not verdict.allowed:
            return verdict
        return apply_custody(verdict, combined(self.key_times, *custody), now=now)


class _Collector:
    """Keys by the log they must be recorded in, and their lifecycle times by key id."""

    def __init__(self, policy: Policy, read: FileReader, token_key: TokenKey) -> None:
        self.policy = policy
        self.read = read
        self.token_key = token_key
        self.passes: dict[str, tuple[TrustMaterial | None, dict[str, PublicKey]]] = {}
        self.times: dict[str, list[KeyTimes]] = {}
        self._logs: dict[str, TrustMaterial | None] = {}

    def log_of(self, root_name: str) -> TrustMaterial | None:
        if root_name not in self._logs:
            root = self.policy.trust_root(root_name)
            tlog = root.tlog if root is not None else None
            self._logs[root_name] = log_trust(root_name, tlog, self.read) if tlog else None
        return self._logs[root_name]

    def add(self, public: PublicKey, log: TrustMaterial | None) -> None:
        group = log.digest if log is not None else ""
        self.passes.setdefault(group, (log, {}))[1][key_id_for(public)] = public

    def add_times(self, times: KeyTimes) -> None:
        if times.retired_at is None and times.revoked_at is None:
            return
        known = self.times.setdefault(times.key_id, [])
        if times not in known:
            known.append(times)

    def identity(self, identity: Identity) -> None:
        root = self.policy.trust_root(identity.trust_root)
        if root is None:
            raise SignerUnavailable(f"identity {identity.name!r} names no known trust root")
        if identity.key is not None:
            key = root.key(identity.key)
            if key is None:
                raise SignerUnavailable(
                    f"identity {identity.name!r} names key {identity.key!r}, which trust root "
                    f"{identity.trust_root!r} does not have"
                )
            public = _public_key(key, self.read, self.token_key)
            self.add_times(_times(identity.trust_root, key, public))
            self.add(public, self.log_of(identity.trust_root))
        elif identity.token is not None:
            self.add(self.token_key(identity.token), self.log_of(identity.trust_root))

    def other_key_times(self) -> None:
        """Times the policy gives the same key material under other names: the stricter
        answer wins. Keys known only by a ``pkcs11:`` ref are not opened for this."""
        for root_name, root in self.policy.trust_roots.items():
            for key in root.keys:
                if key.retired_at is None and key.revoked_at is None:
                    continue
                if key.public_key is None and key.ref is not None and is_pkcs11(key.ref):
                    continue
                try:
                    public = _public_key(key, self.read, self.token_key)
                except SafeguardError:
                    continue  # unreadable: it cannot be matched to a signature either
                if key_id_for(public) in self.times or any(
                    key_id_for(public) in keys for _, keys in self.passes.values()
                ):
                    self.add_times(_times(root_name, key, public))

    def policies(self) -> list[TrustPolicy]:
        ordered = sorted(self.passes.items(), key=lambda item: item[0] != "")
        return [
            TrustPolicy(keys=tuple(keys.values()), trust=log) for _, (log, keys) in ordered if keys
        ]


def trust_for_signers(
    policy: Policy,
    signers: Sequence[SignerRef],
    read: FileReader,
    repository: str | None = None,
    *,
    registry_hosts: Collection[str] | None = None,
    token_key: TokenKey = token_public_key,
) -> SignerTrust:
    """The trust ``signers`` stand for (every identity when empty), for ``repository`` (a full
    name, or with ``registry_hosts`` a path in the registry they name: ``covers``). Files come
    from ``read``, public keys of ``pkcs11:`` references from ``token_key`` (module doc)."""
    identities: list[Identity] = []
    collector = _Collector(policy, read, token_key)
    if not signers:
        identities = list(policy.identities)
    for signer in signers:
        if signer.key is not None:
            collector.add(_read_key(read, signer.key, "signer"), None)
            continue
        assert signer.identity is not None
        identity = policy.identity(signer.identity)
        if identity is None:
            raise SignerUnavailable(f"signer {signer.identity!r} is not an identity of the policy")
        identities.append(identity)
    keyless: list[TrustPolicy] = []
    for identity in identities:
        globs = identity.accepted_in_globs
        if repository is not None and not covers(globs, repository, registry_hosts):
            continue
        if identity.keyless is not None:
            keyless.append(_keyless(policy, identity, read))
        else:
            collector.identity(identity)
    collector.other_key_times()
    return SignerTrust((*collector.policies(), *keyless), KeyTimesSource(collector.times))
