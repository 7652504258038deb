"""From the policy's signers to what the verifier checks: ``TrustPolicy`` values.

A rule's ``signers`` (``safeguard.policy.schema.SignerRef``) name policy identities or public-key
files; an empty list means every identity of the policy (docs/policy.md). Each becomes trust the
verification engine understands:

* ``{key: PATH}``: the PEM public key in that file;
* ``{identity: NAME}`` with a key (``ci`` identities signing through the signing service, and
  release engineers): the trust root's key the identity names (``identities[].key`` in
  ``trustRoots[identity.trustRoot].keys``) — its ``publicKey`` file, or the public half of its
  ``ref``: read from the token for a ``pkcs11:`` URI, the ``.pub`` written next to a cosign key
  file (``cosign.key`` -> ``cosign.pub``); a release engineer without a key uses the public key
  of its ``token``. Revoked keys (``revokedAt``) are left out;
* ``{identity: NAME}`` with ``keyless``: the certificate identity (subject and issuer, exact or
  regular expression, Fulcio extensions) under the trust root's ``keyless.trustedRoot``.

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

Files are read through ``read(path)`` — the policy version's stored files, or the directory of
the policy file — never by the verifier itself.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from safeguard.core.errors import InvalidInput, SafeguardError
from safeguard.core.glob import glob_matches
from safeguard.keys.base import PublicKey, load_public_key
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.trustroot import parse_trusted_root

if TYPE_CHECKING:
    from safeguard.policy.schema import Identity, Policy, SignerRef, TrustKey

FileReader = Callable[[str], bytes]


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


def _key_of(key: TrustKey, read: FileReader, base_dir: Path | None) -> PublicKey | None:
    if key.revoked_at is not None:
        return None
    if key.public_key is not None:
        return load_public_key(read(key.public_key))
    assert key.ref is not None
    from safeguard.signing.keyref import load_verification_key

    if key.ref.startswith("pkcs11:"):
        return load_verification_key(key.ref)
    # a cosign key file: its public half is the .pub written next to it
    path = Path(key.ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    public = path.with_suffix(".pub")
    try:
        return load_verification_key(str(public))
    except SafeguardError as exc:
        raise SignerUnavailable(
            f"key {key.name!r} is the private key file {key.ref}; its public half {public} "
            f"cannot be read ({exc.message})",
            hint="put the .pub next to the key file, or sign with a key that has publicKey",
        ) from None


def _identity_keys(
    policy: Policy, identity: Identity, read: FileReader, base_dir: Path | None
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
        found = _key_of(key, read, base_dir)
        return [found] if found is not None else []
    if identity.token is not None:
        from safeguard.signing.keyref import load_verification_key

        return [load_verification_key(identity.token)]
    return []


def _keyless(policy: Policy, identity: Identity, read: FileReader) -> TrustPolicy:
    root = policy.trust_root(identity.trust_root)
    if root is None or root.keyless is None or identity.keyless is None:
        raise SignerUnavailable(
            f"keyless identity {identity.name!r} needs a trust root with keyless.trustedRoot"
        )
    trust = parse_trusted_root(read(root.keyless.trusted_root), root.keyless.trusted_root)
    return TrustPolicy(identity=identity.keyless.identity_policy(), trust=trust)


def trust_for_signers(
    policy: Policy,
    signers: Sequence[SignerRef],
    read: FileReader,
    repository: str | None = None,
    *,
    registry_hosts: Collection[str] | None = None,
    base_dir: Path | None = None,
) -> tuple[TrustPolicy, ...]:
    """The trust ``signers`` stand for (every identity when empty), for ``repository`` (a full
    name, or with ``registry_hosts`` a path in the registry they name: ``covers``).
    ``base_dir`` is where relative key-file ``ref`` paths are (the policy file's directory)."""
    identities: list[Identity] = []
    keys: list[PublicKey] = []
    if not signers:
        identities = list(policy.identities)
    for signer in signers:
        if signer.key is not None:
            keys.append(load_public_key(read(signer.key)))
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
            keys.extend(_identity_keys(policy, identity, read, base_dir))
    unique = list({id(k): k for k in keys}.values())
    if unique:
        out.insert(0, TrustPolicy(keys=tuple(unique)))
    return tuple(out)
