"""Policy versions in the store: apply, read the active one, history, diff, rollback.

Every ``apply`` that changes anything creates the next numbered version in one transaction:
the YAML as written, the normalised JSON, sha256s, author, time, message, the unified diff
against the previous version, and the public files the policy refers to
(``safeguard.policy.files``). Versions are never changed or deleted; ``rollback(n)`` applies
version n's text and files again as a new version. The newest version is the active one.

Numbering is safe across processes and hosts: the writer takes a PostgreSQL transaction-scoped
advisory lock (SQLite: the ``BEGIN IMMEDIATE`` write transaction of ``Database.write``) before
it reads the newest number, and the number is the primary key, so two writers can never store
the same number; the loser of a race simply waits and takes the next one.

``active()`` is meant to be called on every request: it answers from an in-process cache and
checks the store for a newer version (one indexed ``max(number)`` query) at most every
``refresh_interval`` seconds (default 1 s; 0 checks on every call).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from safeguard.core.errors import InvalidInput, Unreachable
from safeguard.policy.diff import PolicyDiff, files_diff, structural_changes, unified_text_diff
from safeguard.policy.errors import PolicyNotApplied, PolicyVersionNotFound
from safeguard.policy.files import StoredFiles
from safeguard.policy.load import LoadedPolicy, canonical_json, load_policy_text
from safeguard.policy.schema import Policy
from safeguard.store import Database
from safeguard.store.policy_models import PolicyBlob, PolicyFileRecord, PolicyVersionRecord

_LOCK_KEY: Final = 0x5AFE_9011  # "safeguard policy" advisory lock
_MAX_AUTHOR: Final = 255
_MAX_MESSAGE: Final = 4096
_INFO_COLUMNS: Final = (
    PolicyVersionRecord.number,
    PolicyVersionRecord.created_at,
    PolicyVersionRecord.author,
    PolicyVersionRecord.message,
    PolicyVersionRecord.source,
    PolicyVersionRecord.sha256,
    PolicyVersionRecord.content_sha256,
    PolicyVersionRecord.rollback_of,
)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PolicyVersionInfo:
    """A version's metadata, as ``history()`` lists it."""

    number: int
    created_at: datetime
    author: str
    message: str | None
    source: str | None
    sha256: str
    """sha256 of the YAML text as applied."""
    content_sha256: str
    """sha256 of the text and every referenced file: what "identical content" means."""
    rollback_of: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "createdAt": self.created_at.isoformat(),
            "author": self.author,
            "message": self.message,
            "source": self.source,
            "sha256": self.sha256,
            "contentSha256": self.content_sha256,
            "rollbackOf": self.rollback_of,
        }


@dataclass(frozen=True)
class PolicyVersion(PolicyVersionInfo):
    """One stored version: its text, normalised policy, diff and files."""

    text: str
    normalized_json: str
    diff: str
    files: Mapping[str, bytes] = field(default_factory=dict)
    new: bool = False
    """True only on what ``apply``/``rollback`` return when they created this version."""

    @cached_property
    def policy(self) -> Policy:
        """The validated policy (from the normalised JSON; from the text if the schema moved)."""
        try:
            return Policy.model_validate_json(self.normalized_json)
        except ValidationError:
            return load_policy_text(self.text, files=StoredFiles(self.files)).policy

    @cached_property
    def normalized(self) -> dict[str, Any]:
        return self.policy.normalized()

    def read(self, path: str) -> bytes:
        """A file the policy refers to (``keys/team-a.pub``), as stored with this version."""
        try:
            return self.files[path]
        except KeyError:
            raise PolicyVersionNotFound(
                f"policy version {self.number} refers to no file {path!r}",
                hint=f"files of this version: {', '.join(sorted(self.files)) or 'none'}",
            ) from None

    def file_digests(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}


def _check_author(author: str) -> str:
    if not author or not author.strip():
        raise InvalidInput("an author is required", hint="pass --author NAME (default: $USER)")
    if len(author) > _MAX_AUTHOR or not author.isprintable():
        raise InvalidInput(
            f"the author must be one line of at most {_MAX_AUTHOR} characters",
            hint="pass a user name",
        )
    return author


def _check_message(message: str | None) -> str | None:
    if message is not None and len(message) > _MAX_MESSAGE:
        raise InvalidInput(f"the message is longer than {_MAX_MESSAGE} characters")
    return message


@dataclass
class _Cache:
    version: PolicyVersion | None = None
    checked_at: float | None = None


class PolicyStore:
    """Numbered policy versions in a ``Database`` (SQLite or PostgreSQL)."""

    def __init__(
        self,
        db: Database,
        *,
        refresh_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._cache = _Cache()

    # -- reading -----------------------------------------------------------------------------

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise Unreachable(
                f"the policy store is unreachable: {exc.orig if hasattr(exc, 'orig') else exc}",
                hint="check the --database URL and that the server is running",
            ) from exc

    def _files(self, conn: Connection, number: int) -> dict[str, bytes]:
        rows = conn.execute(
            sa.select(PolicyFileRecord.path, PolicyBlob.content)
            .join(PolicyBlob, PolicyBlob.sha256 == PolicyFileRecord.sha256)
            .where(PolicyFileRecord.version == number)
        )
        return {row.path: bytes(row.content) for row in rows}

    def _load(self, conn: Connection, number: int, *, new: bool = False) -> PolicyVersion | None:
        table = PolicyVersionRecord.__table__
        row = conn.execute(sa.select(table).where(table.c.number == number)).first()
        if row is None:
            return None
        return PolicyVersion(
            number=row.number,
            created_at=_aware(row.created_at),
            author=row.author,
            message=row.message,
            source=row.source,
            sha256=row.sha256,
            content_sha256=row.content_sha256,
            rollback_of=row.rollback_of,
            text=row.text,
            normalized_json=row.normalized,
            diff=row.diff,
            files=self._files(conn, number),
            new=new,
        )

    def _head(self, conn: Connection) -> int | None:
        head: int | None = conn.execute(sa.select(sa.func.max(PolicyVersionRecord.number))).scalar()
        return head

    def get(self, number: int) -> PolicyVersion:
        """Version ``number``; raises ``PolicyVersionNotFound``."""
        with self._reachable(), self.db.read() as conn:
            version = self._load(conn, number)
            head = self._head(conn) if version is None else None
        if version is None:
            raise PolicyVersionNotFound(
                f"there is no policy version {number}",
                hint=f"versions are 1 to {head}" if head else "no policy has been applied yet",
            )
        return version

    def latest(self) -> PolicyVersion | None:
        """The newest version, read from the store now (no cache)."""
        with self._reachable(), self.db.read() as conn:
            head = self._head(conn)
            return None if head is None else self._load(conn, head)

    def active(self) -> PolicyVersion | None:
        """The active (newest) version, or ``None`` before the first apply; cached, see module."""
        now = self._clock()
        with self._lock:
            cache = self._cache
            if cache.checked_at is not None and now - cache.checked_at < self.refresh_interval:
                return cache.version
        with self._reachable(), self.db.read() as conn:
            head = self._head(conn)
            current = cache.version
            if head is None:
                version = None
            elif current is not None and current.number == head:
                version = current
            else:
                version = self._load(conn, head)
        with self._lock:
            if self._cache.version is None or (
                version is not None and version.number >= self._cache.version.number
            ):
                self._cache = _Cache(version, now)
            return self._cache.version

    def require_active(self) -> PolicyVersion:
        version = self.active()
        if version is None:
            raise PolicyNotApplied(
                "no policy has been applied yet", hint="run `safeguard policy apply safeguard.yaml`"
            )
        return version

    def history(self, limit: int | None = None) -> list[PolicyVersionInfo]:
        """Every version's metadata, newest first."""
        query = sa.select(*_INFO_COLUMNS).order_by(PolicyVersionRecord.number.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reachable(), self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            PolicyVersionInfo(
                number=r.number,
                created_at=_aware(r.created_at),
                author=r.author,
                message=r.message,
                source=r.source,
                sha256=r.sha256,
                content_sha256=r.content_sha256,
                rollback_of=r.rollback_of,
            )
            for r in rows
        ]

    def diff(self, a: int, b: int) -> PolicyDiff:
        """What changed from version ``a`` to version ``b`` (text and structure)."""
        old, new = self.get(a), self.get(b)
        return PolicyDiff(
            old=a,
            new=b,
            text=unified_text_diff(old.text, new.text, f"policy v{a}", f"policy v{b}")
            + files_diff(old.files, new.files, f"v{a}", f"v{b}"),
            changes=tuple(
                structural_changes(
                    old.normalized, new.normalized, old.file_digests(), new.file_digests()
                )
            ),
        )

    # -- writing -----------------------------------------------------------------------------

    def apply(
        self,
        policy: str | bytes | LoadedPolicy,
        author: str,
        message: str | None = None,
        *,
        base_dir: Path | None = None,
        source: str | None = None,
        rollback_of: int | None = None,
    ) -> PolicyVersion:
        """Validate ``policy`` and store it as the next version; returns that version with
        ``new=True``. Content identical to the active version (text and files) stores nothing and
        returns the active version with ``new=False``. Raises ``PolicyInvalid`` (every problem)
        without touching the store."""
        _check_author(author)
        _check_message(message)
        if isinstance(policy, LoadedPolicy):
            loaded = policy
        else:
            loaded = load_policy_text(policy, base_dir=base_dir, source=source or "policy")
        shown_source = source if source is not None else loaded.source
        for attempt in range(3):
            try:
                with self._reachable():
                    version = self._store(loaded, author, message, shown_source, rollback_of)
                break
            except sa.exc.IntegrityError:  # pragma: no cover - only if something bypassed the lock
                if attempt == 2:
                    raise
        if version.new:
            with self._lock:
                if self._cache.version is None or self._cache.version.number < version.number:
                    self._cache = _Cache(version, self._clock())
        return version

    def _store(
        self,
        loaded: LoadedPolicy,
        author: str,
        message: str | None,
        source: str | None,
        rollback_of: int | None,
    ) -> PolicyVersion:
        digest = loaded.content_sha256
        with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            head_number = self._head(conn)
            head = None if head_number is None else self._load(conn, head_number)
            if head is not None and head.content_sha256 == digest:
                return head
            number = 1 if head is None else head.number + 1
            old_text = head.text if head is not None else ""
            old_files = head.files if head is not None else {}
            diff = unified_text_diff(
                old_text, loaded.text, f"policy v{number - 1}" if head else "/dev/null",
                f"policy v{number}",
            ) + files_diff(old_files, loaded.files, f"v{number - 1}", f"v{number}")  # fmt: skip
            created_at = datetime.now(UTC)
            conn.execute(
                sa.insert(PolicyVersionRecord).values(
                    number=number,
                    created_at=created_at,
                    author=author,
                    message=message,
                    source=source[:1024] if source else None,
                    text=loaded.text,
                    normalized=loaded.normalized_json,
                    sha256=loaded.sha256,
                    content_sha256=digest,
                    diff=diff,
                    rollback_of=rollback_of,
                )
            )
            digests = {
                path: hashlib.sha256(data).hexdigest() for path, data in loaded.files.items()
            }
            if digests:
                present = set(
                    conn.execute(
                        sa.select(PolicyBlob.sha256).where(PolicyBlob.sha256.in_(digests.values()))
                    ).scalars()
                )
                blobs = {d: loaded.files[p] for p, d in digests.items() if d not in present}
                if blobs:
                    conn.execute(
                        sa.insert(PolicyBlob),
                        [{"sha256": d, "content": data} for d, data in blobs.items()],
                    )
                conn.execute(
                    sa.insert(PolicyFileRecord),
                    [{"version": number, "path": p, "sha256": d} for p, d in digests.items()],
                )
        return PolicyVersion(
            number=number,
            created_at=created_at,
            author=author,
            message=message,
            source=source,
            sha256=loaded.sha256,
            content_sha256=digest,
            rollback_of=rollback_of,
            text=loaded.text,
            normalized_json=loaded.normalized_json,
            diff=diff,
            files=dict(loaded.files),
            new=True,
        )

    def rollback(self, number: int, author: str, message: str | None = None) -> PolicyVersion:
        """Make version ``number``'s text and files active again, as a new version.

        The old version is re-validated by today's rules first. When it is already what is
        active, nothing is stored and the active version comes back with ``new=False``.
        """
        old = self.get(number)
        loaded = load_policy_text(
            old.text, files=StoredFiles(old.files), source=f"policy version {number}"
        )
        return self.apply(
            loaded,
            author,
            message if message is not None else f"rollback to version {number}",
            source=old.source,
            rollback_of=number,
        )


def normalized_json(policy: Policy) -> str:
    """The canonical JSON form of a policy, as stored (sorted keys, no white space)."""
    return canonical_json(policy.normalized())
