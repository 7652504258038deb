"""May this identity sign for that repository? ``mayPublish`` globs, with a reason when not.

An identity's ``mayPublish`` globs (``safeguard.policy.match`` semantics: ``*`` within a path
segment, ``**`` across) are matched against the full ``REGISTRY/REPOSITORY`` name the request
names, Docker-normalised (``safeguard.core.reference``). An identity without ``mayPublish`` may
publish nowhere: the default is refusal, never "anywhere".

A refusal says which globs the identity has and, when the repository lies in another identity's
namespace, whose it is — the common mistake (a token of team A's release job asking to sign into
team B's repositories) is then named as such rather than as a bare "forbidden".
"""

from __future__ import annotations

from safeguard.core.reference import Reference
from safeguard.policy import Identity, Policy
from safeguard.policy.match import any_glob_matches
from safeguard.signing.errors import SigningNotAuthorized


def repository_name(repository: str) -> str:
    """``REGISTRY/REPO`` as the globs see it (Docker-normalised, no tag or digest)."""
    return Reference.parse(repository).name


def authorize(
    policy: Policy, identity: Identity, repository: str, *, globs: list[str] | None = None
) -> None:
    """Raise ``SigningNotAuthorized`` unless ``identity`` may sign for ``repository``.

    ``globs`` overrides the identity's ``mayPublish`` (release engineers: ``acceptedIn`` too).
    """
    allowed = list(identity.may_publish) if globs is None else globs
    name = repository_name(repository)
    if any_glob_matches(allowed, name):
        return
    owners = [
        other.name
        for other in policy.identities
        if other.name != identity.name and any_glob_matches(other.may_publish, name)
    ]
    scope = f"may publish only in {', '.join(allowed)}" if allowed else "has no mayPublish globs"
    message = f"identity {identity.name!r} may not sign for {name}: it {scope}"
    if owners:
        message += f"; {name} is in the namespace of {', '.join(owners)}"
    raise SigningNotAuthorized(
        message,
        hint="sign from the build role that owns this repository, or extend the identity's "
        "mayPublish in the policy",
        detail={
            "identity": identity.name,
            "repository": name,
            "mayPublish": allowed,
            "owners": owners,
        },
    )
