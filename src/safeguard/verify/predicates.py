"""Requirements on what an attestation's predicate says: builder, build type, source and ref.

An attestation whose signature, signer and subject all check out can still describe the wrong
build: provenance made by another builder, or built from a fork, a branch or a tag the consumer
does not release from. A ``PredicateRequirement`` says what the predicate must state. ``check``
lists every way a statement falls short; an empty list means it meets the requirement. The
engine refuses an attestation that falls short with ``PREDICATE_REQUIREMENT_UNMET``
(``verify.attestations.check_statement``). Requirements come from the policy's
``verification[].attestations[]`` (``requirement_from_policy``) or from the CLI flags
``--builder-id``, ``--source-uri``, ``--source-tag`` and ``--source-branch``
(``requirement_from_flags``). The flag names are slsa-verifier's.

Where each fact is read (slsa-verifier reads the same places, ``verifiers/internal/gha``):

* SLSA Provenance v1 (slsa.dev/spec/v1.0/provenance): the builder is ``runDetails.builder.id``
  and the build type is ``buildDefinition.buildType``.
  - GitHub Actions workflow build types: GitHub's own
    (``https://actions.github.io/buildtypes/workflow/v1``, what actions/attest-build-provenance
    writes) and the SLSA community's
    (``https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1``). The source is
    ``externalParameters.workflow.repository`` (an https URI without ``.git``) at
    ``externalParameters.workflow.ref``. The build type says ``resolvedDependencies`` should
    hold ``git+<repository>@<ref>``. A first resolved dependency that names another git source
    makes the source ambiguous, and then no source requirement is met.
  - Other build types, GitLab's runner among them: the source is the first resolved
    dependency's ``git+<uri>@<ref>``. ``externalParameters.source``, when it names a
    repository, must not contradict it.
* SLSA Provenance v0.2 (slsa.dev/provenance/v0.2): the builder is ``builder.id`` and the build
  type is ``buildType``. The source is ``invocation.configSource.uri`` (``git+<uri>@<ref>``),
  and ``materials[0].uri`` must not contradict it.

How each fact is matched:

* The build type must match exactly.
* The builder ID must match exactly when the policy gives ``builderId``. From
  ``--builder-id`` it is matched as slsa-verifier matches it: ``name`` alone matches any
  version, and ``name@version`` needs that version (or ``refs/tags/<version>``).
* Source URIs are compared after both sides are normalised: ``git+`` is dropped, ``https://``
  is added when no scheme is given, a ``.git`` suffix and a trailing ``/`` are dropped, and the
  scheme and host are lower-cased.
* The ref from the policy is a glob (``refs/tags/v*``, the policy's glob syntax,
  ``core.glob``). From ``--source-tag`` or ``--source-branch`` it must be exactly
  ``refs/tags/<tag>`` or ``refs/heads/<branch>``.

Values from the predicate are never trusted for their type or size. A field of the wrong shape
counts as missing, and what reasons quote is cut short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from safeguard.core.errors import InvalidInput
from safeguard.core.glob import check_glob, glob_matches
from safeguard.formats.intoto import Statement
from safeguard.formats.slsa import GITHUB_BUILD_TYPE, GITHUB_LEGACY_BUILD_TYPE

if TYPE_CHECKING:
    from safeguard.policy.schema import AttestationRequirement

SLSA_V1: Final = "https://slsa.dev/provenance/v1"
SLSA_V02: Final = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE: Final = frozenset({SLSA_V1, SLSA_V02})
GITHUB_WORKFLOW_BUILD_TYPES: Final = frozenset({GITHUB_BUILD_TYPE, GITHUB_LEGACY_BUILD_TYPE})
UNMET: Final = "PREDICATE_REQUIREMENT_UNMET"
MAX_VALUE: Final = 2048
"""Longest builder ID, build type, URI or ref read from a predicate or a requirement."""
_SHOWN: Final = 200


class RequirementInvalid(InvalidInput):
    """A predicate requirement that cannot be checked as given (usage error, exit code 2)."""

    code = "PREDICATE_REQUIREMENT_INVALID"


@dataclass(frozen=True, slots=True)
class GitSource:
    """A normalised repository URI (``https://host/path``) and the git ref, if one is named."""

    repository: str
    ref: str | None = None

    def __str__(self) -> str:
        return self.repository if self.ref is None else f"{self.repository}@{self.ref}"


def _clean(value: Any) -> str | None:
    """``value`` if it is a usable string: non-empty, printable, no white space, not huge."""
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
        return None
    if any(c.isspace() or not c.isprintable() for c in value):
        return None
    return value


def parse_git_uri(value: Any) -> GitSource | None:
    """``[git+][scheme://]host/path[.git][@ref]`` as a ``GitSource``; ``None`` if it is not one.

    The ref starts at the first ``@`` of the path (a ref may itself hold ``@``; user
    information before the host is not mistaken for one).
    """
    text = _clean(value)
    if text is None:
        return None
    if text.startswith("git+"):
        text = text[4:]
    if "://" not in text:
        text = "https://" + text
    scheme, _, rest = text.partition("://")
    slash = rest.find("/")
    if not scheme or slash <= 0:
        return None
    host, path = rest[:slash], rest[slash:]
    ref: str | None = None
    at = path.find("@")
    if at >= 0:
        path, ref = path[:at], path[at + 1 :]
        if not ref:
            return None
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[:-4]
    if not path.strip("/"):
        return None
    return GitSource(f"{scheme.lower()}://{host.lower()}{path}", ref)


def _show(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _at(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _first_uri(items: Any) -> str | None:
    if isinstance(items, list) and items:
        return _clean(_at(items[0], "uri"))
    return None


def _conflict(source: GitSource, other_uri: str | None, what: str) -> str | None:
    """Why ``other_uri`` (a git URI the predicate also names) contradicts ``source``."""
    if other_uri is None or not other_uri.startswith("git+"):
        return None
    other = parse_git_uri(other_uri)
    if other is None:
        return f"{what} {_show(other_uri)} is not a git URI"
    if other.repository != source.repository or (
        other.ref is not None and source.ref is not None and other.ref != source.ref
    ):
        return f"the build's source {_show(str(source))} and {what} {_show(other_uri)} disagree"
    return None


@dataclass(frozen=True, slots=True)
class ProvenanceFacts:
    """What a provenance predicate states about its build (``None``: not stated usably)."""

    builder_id: str | None = None
    build_type: str | None = None
    source: GitSource | None = None
    conflict: str | None = None


def _v1_facts(predicate: Any) -> ProvenanceFacts:
    build = _at(predicate, "buildDefinition")
    build_type = _clean(_at(build, "buildType"))
    builder_id = _clean(_at(predicate, "runDetails", "builder", "id"))
    external = _at(build, "externalParameters")
    dependency = _first_uri(_at(build, "resolvedDependencies"))
    source: GitSource | None = None
    conflict: str | None = None
    if build_type in GITHUB_WORKFLOW_BUILD_TYPES:
        repository = parse_git_uri(_at(external, "workflow", "repository"))
        ref = _clean(_at(external, "workflow", "ref"))
        if repository is not None and repository.ref is None:
            source = GitSource(repository.repository, ref)
            conflict = _conflict(source, dependency, "its first resolved dependency")
    elif dependency is not None and dependency.startswith("git+"):
        source = parse_git_uri(dependency)
        declared = _at(external, "source")
        declared_uri = _clean(_at(declared, "uri") if isinstance(declared, Mapping) else declared)
        named = parse_git_uri(declared_uri) if declared_uri is not None else None
        if source is not None and named is not None and named.repository != source.repository:
            conflict = (
                f"externalParameters.source {_show(declared_uri or '')} and the first resolved "
                f"dependency {_show(dependency)} disagree"
            )
    return ProvenanceFacts(builder_id, build_type, source, conflict)


def _v02_facts(predicate: Any) -> ProvenanceFacts:
    builder_id = _clean(_at(predicate, "builder", "id"))
    build_type = _clean(_at(predicate, "buildType"))
    source = parse_git_uri(_at(predicate, "invocation", "configSource", "uri"))
    conflict = None
    if source is not None:
        material = _first_uri(_at(predicate, "materials"))
        conflict = _conflict(source, material, "its first material")
    return ProvenanceFacts(builder_id, build_type, source, conflict)


def provenance_facts(statement: Statement) -> ProvenanceFacts:
    """The builder, build type and source an SLSA provenance statement states (module doc)."""
    if statement.predicate_type == SLSA_V02:
        return _v02_facts(statement.predicate)
    if statement.predicate_type == SLSA_V1:
        return _v1_facts(statement.predicate)
    return ProvenanceFacts()


def _builder_matches(expected: str, actual: str, exact: bool) -> bool:
    """Exactly, or slsa-verifier's ``TrustedBuilderID.MatchesLoose`` (module doc)."""
    if exact:
        return expected == actual
    name, _, version = expected.partition("@")
    actual_name, _, actual_version = actual.partition("@")
    if name != actual_name:
        return False
    return not version or version in (actual_version, actual_version.removeprefix("refs/tags/"))


@dataclass(frozen=True, slots=True)
class PredicateRequirement:
    """What an attestation's predicate must state; see the module docstring.

    ``predicate_type`` ``None`` accepts either SLSA provenance version (the CLI flags without
    ``--type``). ``builder_id_exact`` and ``source_ref_glob`` choose the policy's matching
    (``True``, the default) or the CLI flags' (module doc).
    """

    predicate_type: str | None
    builder_id: str | None = None
    source_uri: str | None = None
    build_type: str | None = None
    source_ref: str | None = None
    builder_id_exact: bool = True
    source_ref_glob: bool = True

    def __post_init__(self) -> None:
        if self.predicate_type is not None and _clean(self.predicate_type) is None:
            raise RequirementInvalid(f"invalid predicate type {self.predicate_type!r}")
        if self.asks_provenance and self.predicate_type not in (None, *SLSA_PROVENANCE):
            raise RequirementInvalid(
                f"builder, build type and source requirements apply to SLSA provenance only, "
                f"not {self.predicate_type!r}",
                hint="use --type slsaprovenance1 (or slsaprovenance02), or drop those flags",
            )
        for name in ("builder_id", "build_type"):
            value = getattr(self, name)
            if value is not None and _clean(value) is None:
                raise RequirementInvalid(f"invalid {name.replace('_', ' ')} {value!r}")
        if self.source_uri is not None:
            source = parse_git_uri(self.source_uri)
            if source is None:
                raise RequirementInvalid(
                    f"invalid source URI {self.source_uri!r}",
                    hint="e.g. github.com/acme/app or git+https://github.com/acme/app",
                )
            object.__setattr__(self, "source_uri", source.repository)
            if source.ref is not None:
                if self.source_ref is not None and self.source_ref != source.ref:
                    raise RequirementInvalid(
                        f"the source URI names ref {source.ref!r}, but the source ref is "
                        f"{self.source_ref!r}"
                    )
                object.__setattr__(self, "source_ref", source.ref)
                object.__setattr__(self, "source_ref_glob", False)
        if self.source_ref is not None:
            ref = _clean(self.source_ref)
            if ref is None or not ref.startswith("refs/"):
                raise RequirementInvalid(
                    f"invalid source ref {self.source_ref!r}",
                    hint="a full git ref: refs/heads/<branch> or refs/tags/<tag>",
                )
            if self.source_ref_glob:
                check_glob(ref)

    @property
    def asks_provenance(self) -> bool:
        """Whether anything beyond the predicate type is required."""
        return any(
            v is not None
            for v in (self.builder_id, self.source_uri, self.build_type, self.source_ref)
        )

    def as_dict(self) -> dict[str, str]:
        """The requirement as evidence shows it (camelCase, as the policy writes it)."""
        out = {"predicateType": self.predicate_type or "SLSA provenance (v1 or v0.2)"}
        for key, value in (
            ("builderId", self.builder_id),
            ("buildType", self.build_type),
            ("sourceUri", self.source_uri),
            ("sourceRef", self.source_ref),
        ):
            if value is not None:
                out[key] = value
        return out

    def check(self, statement: Statement) -> list[str]:
        """Every way ``statement`` falls short of the requirement (empty: it meets it)."""
        if self.predicate_type is not None and statement.predicate_type != self.predicate_type:
            return [
                f"the predicate type is {_show(statement.predicate_type)}, "
                f"not {self.predicate_type!r}"
            ]
        if not self.asks_provenance:
            return []
        if statement.predicate_type not in SLSA_PROVENANCE:
            return [f"the predicate type {_show(statement.predicate_type)} is not SLSA provenance"]
        facts = provenance_facts(statement)
        reasons: list[str] = []
        if self.builder_id is not None:
            if facts.builder_id is None:
                reasons.append("the provenance names no builder ID")
            elif not _builder_matches(self.builder_id, facts.builder_id, self.builder_id_exact):
                reasons.append(f"the builder is {_show(facts.builder_id)}, not {self.builder_id!r}")
        if self.build_type is not None:
            if facts.build_type is None:
                reasons.append("the provenance names no build type")
            elif facts.build_type != self.build_type:
                reasons.append(
                    f"the build type is {_show(facts.build_type)}, not {self.build_type!r}"
                )
        if self.source_uri is not None or self.source_ref is not None:
            reasons.extend(self._source_reasons(facts))
        return reasons

    def _source_reasons(self, facts: ProvenanceFacts) -> list[str]:
        source = facts.source
        if source is None:
            return ["the provenance names no source repository"]
        if facts.conflict is not None:
            return [facts.conflict]
        reasons = []
        if self.source_uri is not None and source.repository != self.source_uri:
            reasons.append(f"the source is {_show(source.repository)}, not {self.source_uri!r}")
        if self.source_ref is not None:
            if source.ref is None:
                reasons.append("the provenance names no source ref")
            elif not (
                glob_matches(self.source_ref, source.ref)
                if self.source_ref_glob
                else source.ref == self.source_ref
            ):
                reasons.append(f"the source ref is {_show(source.ref)}, not {self.source_ref!r}")
        return reasons


def requirement_from_policy(rule: AttestationRequirement) -> PredicateRequirement:
    """The requirement of one ``verification[].attestations[]`` entry of the policy: its
    ``type``, and for SLSA provenance ``builderId`` (exactly), ``buildType``, ``sourceUri`` and
    ``sourceRef`` (a glob). Who must sign it (``signers``) is the engine's trust, not this."""
    return PredicateRequirement(
        rule.type,
        builder_id=rule.builder_id,
        source_uri=rule.source_uri,
        build_type=rule.build_type,
        source_ref=rule.source_ref,
    )


def requirement_from_flags(
    predicate_type: str | None,
    *,
    builder_id: str | None = None,
    source_uri: str | None = None,
    source_tag: str | None = None,
    source_branch: str | None = None,
) -> PredicateRequirement | None:
    """The requirement of ``verify-attestation`` / ``verify-blob-attestation``'s slsa-verifier
    flags (``None`` when none is given). Without ``--type`` either SLSA provenance version is
    accepted; with another type the flags are a usage error."""
    if all(v is None for v in (builder_id, source_uri, source_tag, source_branch)):
        return None
    if source_tag is not None and source_branch is not None:
        raise RequirementInvalid("--source-tag and --source-branch exclude each other")
    ref = None
    for flag, name, prefix in (
        ("--source-tag", source_tag, "refs/tags/"),
        ("--source-branch", source_branch, "refs/heads/"),
    ):
        if name is None:
            continue
        if _clean(name) is None or name.startswith("refs/"):
            raise RequirementInvalid(
                f"invalid {flag} {name!r}", hint=f"give the short name: {flag} v1.2.3 or main"
            )
        ref = prefix + name
    return PredicateRequirement(
        predicate_type,
        builder_id=builder_id,
        source_uri=source_uri,
        source_ref=ref,
        builder_id_exact=False,
        source_ref_glob=False,
    )
