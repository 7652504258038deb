"""Where an artifact is, as the CLI names it (skopeo's transport syntax, the parts we support).

* ``oci:DIR[:TAG]``: an OCI image layout directory; ``DIR`` ends at the first ``:``, as in
  skopeo's ``oci:`` transport, and ``TAG`` is the ``org.opencontainers.image.ref.name``.
* ``docker://REF`` or a bare ``REF``: a registry reference ``HOST/REPO[:TAG][@DIGEST]``.
* ``http://REF`` / ``https://REF``: a registry reference with its scheme forced; ``http`` to a
  non-loopback host needs ``--allow-insecure-registry`` (see ``transport/endpoint.py``).

Reference syntax errors stay the typed errors of ``safeguard.core.reference``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safeguard.core.errors import InvalidReference
from safeguard.core.reference import Reference, validate_tag

LAYOUT_PREFIX = "oci:"


@dataclass(frozen=True, slots=True)
class Location:
    reference: Reference | None = None  # registry locations
    scheme: str | None = None
    path: Path | None = None  # layout locations
    tag: str | None = None

    @property
    def is_layout(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"{LAYOUT_PREFIX}{self.path}" + (f":{self.tag}" if self.tag else "")
        return str(self.reference)


def parse_location(text: str) -> Location:
    if text.startswith(LAYOUT_PREFIX):
        rest = text[len(LAYOUT_PREFIX) :]
        path, sep, tag = rest.partition(":")
        if not path:
            raise InvalidReference(
                f"invalid OCI layout location {text!r}: no directory",
                hint="write oci:DIR or oci:DIR:TAG",
            )
        if sep:
            validate_tag(tag)
        return Location(path=Path(path), tag=tag if sep else None)
    scheme: str | None = None
    for prefix in ("docker://", "http://", "https://"):
        if text.startswith(prefix):
            scheme = None if prefix == "docker://" else prefix[:-3]
            text = text[len(prefix) :]
            break
    return Location(reference=Reference.parse(text), scheme=scheme)
