"""Checks that need the whole policy or the file system: names, references, files, dead rules.

They run on the plain data read from YAML, not on the validated models, so that they still
report when some other part of the file is malformed: every problem is listed at once. Anything
of the wrong shape is skipped here, because the schema already reports it.

* names are unique: identities, and keys within a trust root (trust roots are mapping keys, so
  YAML's duplicate-key check covers them);
* ``identities[].trustRoot`` names a trust root, ``identities[].key`` a key of that root; an
  oidc identity's key has a private ``ref`` to sign with; a keyless identity's trust root has a
  keyless root or a CA;
* ``signers[].identity`` (in registries, verification and attestations) names an identity;
  ``signers[].key`` and every other referenced file is readable and holds what it must
  (``safeguard.policy.files``);
* a rule that can never apply (same ``match`` as an earlier rule, or behind a ``**`` rule) is an
  error, since first match wins (``safeguard.policy.match``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from safeguard.policy.errors import Loc, PolicyIssue
from safeguard.policy.files import (
    MAX_TOTAL_BYTES,
    FileKind,
    FileProblem,
    FileSource,
    check_content,
)
from safeguard.policy.yamlsafe import SourceMap


@dataclass
class CheckResult:
    issues: list[PolicyIssue] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    """Every referenced file that was read and is valid, by the path as written."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, item in enumerate(_list(value)):
        if isinstance(item, dict):
            yield i, item


def _names(names: list[str]) -> str:
    return ", ".join(sorted(names)) if names else "none"


class _Checker:
    def __init__(self, data: dict[str, Any], source_map: SourceMap, files: FileSource) -> None:
        self.data = data
        self.source_map = source_map
        self.source = files
        self.result = CheckResult()
        self.total = 0
        self.kinds: dict[str, FileKind] = {}

    def report(self, loc: Loc, message: str, hint: str | None = None) -> None:
        position = self.source_map.value(loc)
        self.result.issues.append(
            PolicyIssue(
                loc,
                message,
                hint,
                position.line if position else None,
                position.column if position else None,
            )
        )

    def file(self, loc: Loc, path: Any, kind: FileKind) -> None:
        path = _str(path)
        if path is None or "://" in path:
            return
        if path in self.result.files:
            if self.kinds[path] is not kind:
                self.report(
                    loc,
                    f"{path} is used as a {kind.value} here and as a {self.kinds[path].value} "
                    "elsewhere",
                    "point each field at the right file",
                )
            return
        try:
            data = self.source.read(path)
        except FileProblem as problem:
            self.report(loc, problem.message, problem.hint)
            return
        invalid = check_content(kind, path, data)
        if invalid is not None:
            self.report(loc, invalid.message, invalid.hint)
            return
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            self.report(
                loc,
                f"the files this policy refers to exceed {MAX_TOTAL_BYTES // (1024 * 1024)} MiB",
                "refer only to public keys, certificates, trusted roots and JWKS files",
            )
            return
        self.result.files[path] = data
        self.kinds[path] = kind

    def run(self) -> CheckResult:
        roots = self.trust_roots()
        identities = self.identities(roots)
        for section in ("registries", "verification"):
            self.rules(section, identities)
        return self.result

    def trust_roots(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per trust root name, its keys by name."""
        roots: dict[str, dict[str, dict[str, Any]]] = {}
        for name, root in _dict(self.data.get("trustRoots")).items():
            base: Loc = ("trustRoots", name)
            root = _dict(root)
            keys: dict[str, dict[str, Any]] = {}
            first: dict[str, int] = {}
            for i, key in _items(root.get("keys")):
                key_name = _str(key.get("name"))
                if key_name is not None:
                    if key_name in first:
                        self.report(
                            (*base, "keys", i, "name"),
                            f"duplicate key name {key_name!r} (also keys[{first[key_name]}])",
                            "give every key of a trust root its own name",
                        )
                    else:
                        first[key_name] = i
                        keys[key_name] = key
                self.file(
                    (*base, "keys", i, "publicKey"), key.get("publicKey"), FileKind.public_key
                )
            keyless = _dict(root.get("keyless"))
            self.file(
                (*base, "keyless", "trustedRoot"), keyless.get("trustedRoot"), FileKind.trusted_root
            )
            tlog = _dict(root.get("tlog"))
            self.file((*base, "tlog", "publicKey"), tlog.get("publicKey"), FileKind.public_key)
            ca = _dict(root.get("ca"))
            for part in ("roots", "intermediates"):
                for i, path in enumerate(_list(ca.get(part))):
                    self.file((*base, "ca", part, i), path, FileKind.certificates)
            roots[name] = keys
        return roots

    def identities(self, roots: dict[str, dict[str, dict[str, Any]]]) -> set[str]:
        raw_roots = _dict(self.data.get("trustRoots"))
        names: dict[str, int] = {}
        for i, identity in _items(self.data.get("identities")):
            base: Loc = ("identities", i)
            name = _str(identity.get("name"))
            if name is not None:
                if name in names:
                    self.report(
                        (*base, "name"),
                        f"duplicate identity name {name!r} (also identities[{names[name]}])",
                        "give every identity its own name",
                    )
                else:
                    names[name] = i
            oidc = _dict(identity.get("oidc"))
            self.file((*base, "oidc", "jwks"), oidc.get("jwks"), FileKind.jwks)
            root_name = _str(identity.get("trustRoot"))
            if root_name is None:
                continue
            if root_name not in roots:
                self.report(
                    (*base, "trustRoot"),
                    f"trust root {root_name!r} is not defined (defined: {_names(list(roots))})",
                    "name a key of trustRoots, or add the trust root",
                )
                continue
            key_name = _str(identity.get("key"))
            keys = roots[root_name]
            if key_name is not None and "keyless" not in identity:  # else the schema says so
                key = keys.get(key_name)
                if key is None:
                    self.report(
                        (*base, "key"),
                        f"trust root {root_name!r} has no key {key_name!r} "
                        f"(its keys: {_names(list(keys))})",
                        f"add the key to trustRoots.{root_name}.keys, or fix the name",
                    )
                elif "oidc" in identity and key.get("ref") is None:
                    self.report(
                        (*base, "key"),
                        f"key {key_name!r} has only a publicKey, so the signing service cannot "
                        "sign with it",
                        "point the identity at a key with a ref (pkcs11: URI or key file)",
                    )
            root = _dict(raw_roots.get(root_name))
            if "keyless" in identity and root.get("keyless") is None and root.get("ca") is None:
                self.report(
                    (*base, "trustRoot"),
                    f"trust root {root_name!r} has no keyless root or ca, so keyless "
                    "signatures cannot be checked against it",
                    "use a trust root with keyless: {trustedRoot: ...} (or ca)",
                )
        return set(names)

    def signers(self, base: Loc, signers: Any, identities: set[str]) -> None:
        for i, signer in _items(signers):
            name = _str(signer.get("identity"))
            if name is not None and name not in identities:
                self.report(
                    (*base, i, "identity"),
                    f"identity {name!r} is not defined (defined: {_names(list(identities))})",
                    "name an identity from identities[], or add it",
                )
            self.file((*base, i, "key"), signer.get("key"), FileKind.public_key)

    def rules(self, section: str, identities: set[str]) -> None:
        seen: dict[str, int] = {}
        catch_all: int | None = None
        for i, rule in _items(self.data.get(section)):
            base: Loc = (section, i)
            match = _str(rule.get("match"))
            if match is not None:
                if catch_all is not None:
                    self.report(
                        (*base, "match"),
                        f"this rule never applies: {section}[{catch_all}] matches everything "
                        "first (the first matching rule wins)",
                        "move narrower rules before the ** rule",
                    )
                elif match in seen:
                    self.report(
                        (*base, "match"),
                        f"this rule never applies: {section}[{seen[match]}] has the same match "
                        "and comes first",
                        "merge the two rules",
                    )
                else:
                    seen[match] = i
                if match == "**" and catch_all is None:
                    catch_all = i
            self.signers((*base, "signers"), rule.get("signers"), identities)
            for j, attestation in _items(rule.get("attestations")):
                self.signers(
                    (*base, "attestations", j, "signers"), attestation.get("signers"), identities
                )


def check_policy_data(
    data: dict[str, Any], source_map: SourceMap, files: FileSource
) -> CheckResult:
    """Run every cross-section check over ``data``; read referenced files from ``files``."""
    return _Checker(data, source_map, files).run()
