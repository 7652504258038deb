"""The gateway's view of the policy: the ``registries`` rule for a repository, ready to enforce.

The rule comes from ``safeguard serve --policy FILE`` (read once at start-up) or else from the
store's active policy version (``safeguard.policy.PolicyStore.active``, re-read every few
seconds, so ``safeguard policy apply`` takes effect without a restart). The first rule whose
``match`` glob covers the repository path applies (``safeguard.policy.rule_for``); none means
the gateway only relays.

A ``GatewayRule`` carries the rule's settings and, built on first use and kept per policy
version, what its signers stand for (``safeguard.verify.from_policy.SignerTrust``: the
``TrustPolicy`` passes, with the trust roots' logs, and the keys' lifecycle times),
with ``mayPublish`` globs judged against the names of the registry the gateway fronts
(``safeguard.gateway.config.registry_hosts``).
Quarantine namespaces (the rules' ``quarantine.namespace`` values and the default
``quarantine``) are read-only through the gateway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from safeguard.core.errors import SafeguardError
from safeguard.policy import Policy, PolicyStore, RegistryRule, load_policy, rule_for
from safeguard.policy.files import DirectoryFiles, FileProblem
from safeguard.policy.match import glob_matches
from safeguard.verify.from_policy import SignerTrust, SignerUnavailable, trust_for_signers

log = logging.getLogger("safeguard.gateway.rules")

DEFAULT_NAMESPACE: Final = "quarantine"
DEFAULT_DEPRECATION_DAYS: Final = 90


@dataclass
class GatewayRule:
    """One ``registries[]`` entry as the gateway enforces it."""

    match: str
    mode: str  # reject | grace | warn | off
    grace_seconds: int
    immutable_tags: tuple[str, ...]
    namespace: str
    deprecation_days: int
    _trust: Callable[[str], SignerTrust] = field(repr=False)
    _cache: dict[str, SignerTrust] = field(default_factory=dict, repr=False)

    def trust(self, repository: str) -> SignerTrust:
        """What a signature must verify against in ``repository`` (raises when the policy's
        signers cannot be loaded: the gateway then refuses rather than guesses)."""
        found = self._cache.get(repository)
        if found is None:
            found = self._trust(repository)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[repository] = found
        return found

    def tag_is_immutable(self, tag: str) -> bool:
        return any(glob_matches(glob, tag) for glob in self.immutable_tags)


@dataclass
class RuleBook:
    """The rules of one policy version."""

    version: str
    rules: list[GatewayRule]
    namespaces: frozenset[str]

    def rule_for(self, repository: str) -> GatewayRule | None:
        return rule_for(self.rules, repository)

    def in_quarantine(self, repository: str) -> bool:
        first = repository.partition("/")[0]
        return first in self.namespaces or any(
            repository.startswith(ns + "/") for ns in self.namespaces if "/" in ns
        )


EMPTY: Final = RuleBook("none", [], frozenset({DEFAULT_NAMESPACE}))


def build_rulebook(
    policy: Policy,
    files: Mapping[str, bytes],
    version: str,
    base_dir: Path | None = None,
    *,
    hosts: Collection[str] = (),
) -> RuleBook:
    """The rules of ``policy``; ``hosts`` are the fronted registry's names (module doc).

    Signers' files come from ``files`` (a stored version's files); for a policy file
    (``base_dir``: its directory) also from that directory, e.g. the ``.pub`` beside a key-file
    ``ref``, which loading the policy does not read."""
    fronted = frozenset(hosts)
    directory = DirectoryFiles(base_dir) if base_dir is not None else None

    def reader(path: str) -> bytes:
        found = files.get(path)
        if found is not None:
            return found
        if directory is None:
            raise SignerUnavailable(f"the policy refers to {path}, which was not stored with it")
        try:
            return directory.read(path)
        except FileProblem as exc:
            raise SignerUnavailable(exc.message, hint=exc.hint) from None

    def rule(entry: RegistryRule) -> GatewayRule:
        quarantine = entry.quarantine
        return GatewayRule(
            match=entry.match,
            mode=entry.unsigned_push.value,
            grace_seconds=entry.grace_seconds,
            immutable_tags=tuple(entry.immutable_tags),
            namespace=quarantine.namespace if quarantine else DEFAULT_NAMESPACE,
            deprecation_days=(
                quarantine.deprecation_days if quarantine else DEFAULT_DEPRECATION_DAYS
            ),
            _trust=lambda repository: trust_for_signers(
                policy, entry.signers, reader, repository, registry_hosts=fronted
            ),
        )

    rules = [rule(entry) for entry in policy.registries]
    namespaces = frozenset({DEFAULT_NAMESPACE, *(r.namespace for r in rules)})
    return RuleBook(version, rules, namespaces)


class PolicySource:
    """Where the gateway's rules come from (see module docstring)."""

    def __init__(
        self,
        *,
        policy_file: Path | None = None,
        store: PolicyStore | None = None,
        refresh_seconds: float = 5.0,
        hosts: Collection[str] = (),
    ) -> None:
        self._store = store
        self._hosts = frozenset(hosts)
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._book = EMPTY
        self._checked = 0.0
        self._fixed = policy_file is not None
        if policy_file is not None:
            loaded = load_policy(policy_file)
            self._book = build_rulebook(
                loaded.policy,
                loaded.files,
                f"file:{loaded.sha256}",
                policy_file.resolve().parent,
                hosts=self._hosts,
            )

    def current(self) -> RuleBook:
        """The rules now (blocking: may read the store; call from a worker thread)."""
        if self._fixed or self._store is None:
            return self._book
        now = time.monotonic()
        if now - self._checked < self._refresh:
            return self._book
        try:
            active = self._store.active()
        except SafeguardError as exc:
            log.warning("gateway: cannot read the active policy (%s); keeping the last one", exc)
            return self._book
        with self._lock:
            self._checked = now
            version = f"store:{active.number}" if active is not None else "none"
            if version != self._book.version:
                if active is None:
                    self._book = EMPTY
                else:
                    self._book = build_rulebook(
                        active.policy, active.files, version, hosts=self._hosts
                    )
            return self._book

    def cached(self) -> RuleBook:
        """The rules as last read, without touching the store (for the request path)."""
        return self._book
