"""From the policy's signers to what the verifier checks: ``TrustPolicy`` values.

A rule's ``signers`` (``safeguard.policy.schema.SignerRef``) name policy identities or public-key
files; an empty list means every identity of the policy (docs/policy.md). Each becomes trust the
verification engine understands:

* ``{key: PATH}``: the PEM public key in that file;
* ``{identity: NAME}`` with a key (``ci`` identities signing through the signing service, and
  release engineers): the trust root's key the identity names (``identities[].key`` in
  ``trustRoots[identity.trustRoot].keys``) — its ``publicKey`` file, or the public half of its
  ``ref``: read from the token for a ``pkcs11:`` URI (``token_key``), the ``.pub`` written next
  to a cosign key file (``cosign.key`` -> ``cosign.pub``, read through ``read`` like every other
  file); a release engineer without a key uses the public key of its ``token``. Revoked keys
  (``revokedAt``) are left out;
* ``{identity: NAME}`` with ``keyless``: the certificate identity (subject and issuer, exact or
  regular expression, Fulcio extensions; ``keyless_identity``) under the trust root's
  ``keyless.trustedRoot``.

Key-signed identities are merged into one ``TrustPolicy`` (one verification pass checks them
all); each keyless identity is its own. An identity whose ``mayPublish`` (release engineers:
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

from collections.abc import Callable, Collection, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.core.glob import glob_matches
from safeguard.keys.base import PublicKey, key_id_for, load_public_key
from safeguard.keys.verification import is_pkcs11, token_public_key
from safeguard.verify.identity import IdentityPolicy, Match
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import TrustMaterial, parse_trusted_root

if TYPE_CHECKING:
    from safeguard.policy.schema import Identity, KeylessMatch, Policy, SignerRef, TrustKey

FileReader = Callable[[str], bytes]
TokenKey = Callable[[str], PublicKey]


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


def _key_of(key: TrustKey, read: FileReader, token_key: TokenKey) -> PublicKey | None:
    if key.revoked_at is not None:
        return None
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


def _identity_keys(
    policy: Policy, identity: Identity, read: FileReader, token_key: TokenKey
) -> list[PublicKey]:
    root = policy.trust_root(identity.trust_root)
    if root is None:
        raise SignerUnavailable(f"identity {identity.name!r} names no known trust root")
    if identity.key is not None:
        key = root.key(identity.key)
        if key is None:
            raise SignerUnavailable(
                f"identity {identity.name!r} names key {identity.key!r}, which trust root "
                f"{identity.trust_root!r} does not have"
            )
        found = _key_of(key, read, token_key)
        return [found] if found is not None else []
    if identity.token is not None:
        return [token_key(identity.token)]
    return []


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


def trust_for_signers(
    policy: Policy,
    signers: Sequence[SignerRef],
    read: FileReader,
    repository: str | None = None,
    *,
    registry_hosts: Collection[str] | None = None,
    token_key: TokenKey = token_public_key,
) -> tuple[TrustPolicy, ...]:
    """The trust ``signers`` stand for (every identity when empty), for ``repository`` (a full
    name, or with ``registry_hosts`` a path in the registry they name: ``covers``). Files come
    from ``read``, public keys of ``pkcs11:`` references from ``token_key`` (module doc)."""
    identities: list[Identity] = []
    keys: list[PublicKey] = []
    if not signers:
        identities = list(policy.identities)
    for signer in signers:
        if signer.key is not None:
            keys.append(_read_key(read, signer.key, "signer"))
            continue
        assert signer.identity is not None
        identity = policy.identity(signer.identity)
        if identity is None:
            raise SignerUnavailable(f"signer {signer.identity!r} is not an identity of the policy")
        identities.append(identity)
    out: list[TrustPolicy] = []
    for identity in identities:
        globs = identity.accepted_in_globs
        if repository is not None and not covers(globs, repository, registry_hosts):
            continue
        if identity.keyless is not None:
            out.append(_keyless(policy, identity, read))
        else:
            keys.extend(_identity_keys(policy, identity, read, token_key))
    unique = list({key_id_for(k): k for k in keys}.values())
    if unique:
        out.insert(0, TrustPolicy(keys=tuple(unique)))
    return tuple(out)
