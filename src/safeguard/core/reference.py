"""Image references: ``[registry[:port]/]repository[:tag][@digest]``.

Follows the grammar of distribution's ``reference`` package (which Docker, containerd, cosign and
skopeo share) and the repository-name rule of the OCI distribution spec v1.1 ("Pulling manifests":
``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*``), including Docker
Hub's defaults: no registry means ``docker.io`` and a one-component name means ``library/NAME``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Final

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidName, InvalidReference, InvalidTag

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
NAME_MAX: Final = 255

_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY: Final = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST: Final = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
)


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise ``InvalidName``."""
    if not name:
        raise InvalidName("repository name is empty", hint="name a repository, e.g. team/app")
    if len(name) > NAME_MAX:
        raise InvalidName(
            f"repository name is {len(name)} characters long; the limit is {NAME_MAX}",
            hint="use a shorter repository name",
        )
    if not _REPOSITORY.match(name):
        raise InvalidName(
            f"invalid repository name {name!r}",
            hint="use lower-case letters, digits and single separators (. _ __ -) between "
            "components, with / between path components",
        )
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InvalidTag(
            f"invalid tag {tag!r}",
            hint="a tag is 1 to 128 characters of letters, digits, _ . and -, not starting "
            "with . or -",
        )
    return tag


def is_loopback_host(registry: str) -> bool:
    """True for ``localhost`` and loopback addresses, which Docker reaches over plain HTTP."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not text or any(c.isspace() for c in text):
            raise InvalidReference(
                f"invalid image reference {text!r}",
                hint="write REGISTRY/REPOSITORY[:TAG][@DIGEST], e.g. localhost:5000/team/app:v1",
            )
        rest = text
        digest: Digest | None = None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except InvalidDigest as exc:
                raise InvalidReference(
                    f"invalid digest in reference {text!r}: {exc.message}", hint=exc.hint
                ) from exc
        tag: str | None = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            validate_tag(tag)
        registry, repository = _split_registry(rest)
        if not _HOST.match(registry):
            raise InvalidReference(f"invalid registry host {registry!r} in {text!r}")
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        validate_repository(repository)
        if len(registry) + 1 + len(repository) > NAME_MAX:
            raise InvalidName(f"image name in {text!r} is longer than {NAME_MAX} characters")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repository, tag, digest)

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, tag=None, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=validate_tag(tag), digest=None)

    def __str__(self) -> str:
        out = self.name
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    is_domain = bool(sep) and (
        "." in first or ":" in first or first == "localhost" or first.lower() != first
    )
    if not is_domain:
        return DOCKER_HUB, name
    if first == "index.docker.io":
        first = DOCKER_HUB
    return first, remainder
