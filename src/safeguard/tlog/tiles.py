"""C2SP tiled transparency log maths (c2sp.org/tlog-tiles): tile coordinates, paths, bundles.

Pure functions only; serving tiles is the log service's job.

A tile at level ``L``, index ``N`` holds up to 256 consecutive stored hashes of Merkle level
``8 * L``: hash ``i`` is the node ``(8L, 256N + i)``, the root of leaves
``[(256N + i) * 256**L, (256N + i + 1) * 256**L)``. Full tiles hold 256 hashes; the right-most tile
of a level may be partial, holding ``floor(size / 256**L) mod 256`` hashes. Tiles are served at
``tile/<L>/<N>[.p/<W>]`` and entry bundles at ``tile/entries/<N>[.p/<W>]``, where ``N`` is written
in three-digit groups, every group but the last prefixed with ``x`` (1234067 is
``x001/x234/067``). A Merkle node whose level is not a multiple of 8 is not stored in any tile: it
is the fold of ``2**(level mod 8)`` consecutive hashes of one tile, which is what
``tile_for_node`` locates and ``node_hash_from_tile`` computes.

Entry bundles are sequences of big-endian uint16 length-prefixed entries, one per leaf of the
corresponding level-0 tile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from safeguard.core.errors import InvalidInput
from safeguard.tlog.merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    NodeID,
    TreeRangeError,
    consistency_plan,
    inclusion_plan,
    node_hash,
    root_plan,
)

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
MAX_TILE_LEVEL: Final = 63
MAX_ENTRY_SIZE: Final = 0xFFFF

_LEVEL: Final = r"(0|[1-9][0-9]?)"
_INDEX: Final = r"((?:x[0-9]{3}/)*[0-9]{3})"
_WIDTH: Final = r"(?:\.p/([1-9][0-9]{0,2}))?"
_TILE_PATH: Final = re.compile(rf"tile/{_LEVEL}/{_INDEX}{_WIDTH}")
_ENTRIES_PATH: Final = re.compile(rf"tile/entries/{_INDEX}{_WIDTH}")


class InvalidTilePath(InvalidInput):
    """A tile or entry-bundle path that is not in the spec's canonical form."""

    code = "TLOG_TILE_PATH_INVALID"


class MalformedTile(InvalidInput):
    """Tile or entry-bundle bytes that do not match their coordinates."""

    code = "TLOG_TILE_MALFORMED"


def encode_index(n: int) -> str:
    """``N`` as zero-padded three-digit path elements, all but the last prefixed with ``x``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidTilePath(f"tile index must be a non-negative integer, got {n!r}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _decode_index(text: str) -> int:
    n = 0
    for group in text.split("/"):
        n = n * 1000 + int(group.removeprefix("x"))
    return n


def _width_suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= TILE_WIDTH:
        raise InvalidTilePath(f"tile width must be in [1, {TILE_WIDTH}], got {width!r}")


@dataclass(frozen=True, slots=True, order=True)
class Tile:
    """Tile ``index`` of ``level``, holding ``width`` hashes (256 when full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int):
            raise InvalidTilePath(f"tile level must be an integer, got {self.level!r}")
        if not 0 <= self.level <= MAX_TILE_LEVEL:
            raise InvalidTilePath(f"tile level must be in [0, {MAX_TILE_LEVEL}]")
        encode_index(self.index)
        _check_width(self.width)

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        return f"tile/{self.level}/{encode_index(self.index)}{_width_suffix(self.width)}"

    @property
    def merkle_level(self) -> int:
        """The Merkle tree level of the hashes in this tile."""
        return TILE_HEIGHT * self.level

    @property
    def start(self) -> int:
        """First leaf index the tile spans."""
        return self.index << (TILE_HEIGHT * (self.level + 1))

    @property
    def end(self) -> int:
        """One past the last leaf the tile's hashes span (for a partial tile, its hashes only)."""
        return self.start + (self.width << self.merkle_level)

    def node_ids(self) -> list[NodeID]:
        """The stored nodes whose hashes, concatenated in this order, are the tile's bytes."""
        base = self.index * TILE_WIDTH
        return [NodeID(self.merkle_level, base + i) for i in range(self.width)]

    def full(self) -> Tile:
        return Tile(self.level, self.index)


@dataclass(frozen=True, slots=True, order=True)
class EntryBundle:
    """Entry bundle ``index``, holding the ``width`` entries of level-0 tile ``index``."""

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        encode_index(self.index)
        _check_width(self.width)

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        return f"tile/entries/{encode_index(self.index)}{_width_suffix(self.width)}"

    @property
    def start(self) -> int:
        return self.index * TILE_WIDTH

    @property
    def end(self) -> int:
        return self.start + self.width

    def tile(self) -> Tile:
        """The level-0 tile holding these entries' leaf hashes."""
        return Tile(0, self.index, self.width)


def _parse(pattern: re.Pattern[str], path: str, what: str) -> re.Match[str]:
    match = pattern.fullmatch(path) if isinstance(path, str) else None
    if match is None:
        raise InvalidTilePath(f"malformed {what} path {path!r}")
    return match


def parse_tile_path(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` (relative to the log prefix); canonical form only."""
    match = _parse(_TILE_PATH, path, "tile")
    level_text, index_text, width_text = match.groups()
    width = int(width_text) if width_text else TILE_WIDTH
    if width_text and width >= TILE_WIDTH:
        raise InvalidTilePath(f"partial tile width must be below {TILE_WIDTH}: {path!r}")
    tile = Tile(int(level_text), _decode_index(index_text), width)
    if tile.path != path:
        raise InvalidTilePath(f"tile path {path!r} is not canonical (expected {tile.path!r})")
    return tile


def parse_entries_path(path: str) -> EntryBundle:
    """Parse ``tile/entries/<N>[.p/<W>]``; canonical form only."""
    match = _parse(_ENTRIES_PATH, path, "entry bundle")
    index_text, width_text = match.groups()
    width = int(width_text) if width_text else TILE_WIDTH
    if width_text and width >= TILE_WIDTH:
        raise InvalidTilePath(f"partial bundle width must be below {TILE_WIDTH}: {path!r}")
    bundle = EntryBundle(_decode_index(index_text), width)
    if bundle.path != path:
        raise InvalidTilePath(f"bundle path {path!r} is not canonical (expected {bundle.path!r})")
    return bundle


# --------------------------------------------------------------------------------------------
# Which tiles exist for a tree size, and which a proof needs
# --------------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise TreeRangeError(f"tree size must be an integer in [0, 2^64), got {size!r}")


def tile_in_tree(level: int, index: int, size: int) -> Tile | None:
    """Tile (level, index) as the tree of ``size`` leaves has it, or None if it is empty."""
    _check_size(size)
    stored = size >> (TILE_HEIGHT * level)
    width = min(TILE_WIDTH, stored - index * TILE_WIDTH)
    return Tile(level, index, width) if width > 0 else None


def tiles_for_size(size: int) -> Iterator[Tile]:
    """Every tile of the tree of ``size`` leaves, level by level, left to right."""
    _check_size(size)
    level = 0
    while stored := size >> (TILE_HEIGHT * level):
        full, rest = divmod(stored, TILE_WIDTH)
        for n in range(full):
            yield Tile(level, n)
        if rest:
            yield Tile(level, full, rest)
        level += 1


def partial_tiles(size: int) -> list[Tile]:
    """The partial tiles of the tree of ``size``: what a log must serve for its checkpoint."""
    _check_size(size)
    out: list[Tile] = []
    level = 0
    while stored := size >> (TILE_HEIGHT * level):
        if rest := stored % TILE_WIDTH:
            out.append(Tile(level, stored // TILE_WIDTH, rest))
        level += 1
    return out


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles that growing the tree from ``old_size`` to ``new_size`` creates or extends."""
    _check_size(old_size)
    _check_size(new_size)
    if old_size > new_size:
        raise TreeRangeError(f"old tree size {old_size} is larger than new size {new_size}")
    out: list[Tile] = []
    level = 0
    while new_stored := new_size >> (TILE_HEIGHT * level):
        old_stored = old_size >> (TILE_HEIGHT * level)
        if old_stored != new_stored:
            for n in range(old_stored // TILE_WIDTH, new_stored // TILE_WIDTH):
                out.append(Tile(level, n))
            if rest := new_stored % TILE_WIDTH:
                out.append(Tile(level, new_stored // TILE_WIDTH, rest))
        level += 1
    return out


@dataclass(frozen=True, slots=True)
class TileSlice:
    """Where a Merkle node lives: hashes ``[begin, end)`` of ``tile`` fold into it."""

    tile: Tile
    begin: int
    end: int


def tile_for_node(node: NodeID, size: int) -> TileSlice:
    """The tile of the tree of ``size`` that holds (or folds into) ``node``."""
    _check_size(size)
    level, index = node
    if level < 0 or index < 0 or (index + 1) << level > size:
        raise TreeRangeError(f"node (level {level}, index {index}) is not in a tree of {size}")
    tile_level, rest = divmod(level, TILE_HEIGHT)
    first = index << rest  # first hash of stored level 8 * tile_level under the node
    tile_index, begin = divmod(first, TILE_WIDTH)
    tile = tile_in_tree(tile_level, tile_index, size)
    if tile is None:  # unreachable: the node exists, so do the hashes under it
        raise TreeRangeError(f"no tile holds node (level {level}, index {index})")
    return TileSlice(tile, begin, begin + (1 << rest))


def tiles_for_nodes(nodes: Iterable[NodeID], size: int) -> list[Tile]:
    """The distinct tiles holding ``nodes`` in the tree of ``size``, in order."""
    return sorted({tile_for_node(n, size).tile for n in nodes})


def tiles_for_root(size: int) -> list[Tile]:
    return tiles_for_nodes(root_plan(size).nodes, size)


def tiles_for_inclusion_proof(index: int, size: int) -> list[Tile]:
    """Tiles a client fetches to build ``PATH(index, D[size])`` (with the leaf's own tile)."""
    plan = inclusion_plan(index, size)
    return tiles_for_nodes([NodeID(0, index), *plan.nodes], size)


def tiles_for_consistency_proof(size1: int, size2: int) -> list[Tile]:
    """Tiles a client fetches to build ``PROOF(size1, D[size2])``."""
    return tiles_for_nodes(consistency_plan(size1, size2).nodes, size2)


# --------------------------------------------------------------------------------------------
# Tile and entry-bundle bytes
# --------------------------------------------------------------------------------------------


def split_tile(tile: Tile, data: bytes) -> list[bytes]:
    """The hashes in a tile's bytes, which must be exactly ``width`` hashes."""
    if len(data) != tile.width * HASH_SIZE:
        raise MalformedTile(
            f"tile {tile.path} must be {tile.width * HASH_SIZE} bytes, got {len(data)}"
        )
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def node_hash_from_tile(tile: Tile, data: bytes, node: NodeID) -> bytes:
    """The hash of ``node`` from the bytes of a tile that holds it (full, or wide enough)."""
    level, index = node
    tile_level, rest = divmod(level, TILE_HEIGHT)
    first = index << rest
    if tile_level != tile.level or first // TILE_WIDTH != tile.index:
        raise MalformedTile(f"node (level {level}, index {index}) is not in tile {tile.path}")
    begin = first % TILE_WIDTH
    end = begin + (1 << rest)
    if end > tile.width:
        raise MalformedTile(f"tile {tile.path} is too narrow for node ({level}, {index})")
    hashes = split_tile(tile, data)[begin:end]
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as a bundle: each a big-endian uint16 length, then the entry."""
    if len(entries) > TILE_WIDTH:
        raise MalformedTile(f"an entry bundle holds at most {TILE_WIDTH} entries")
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise MalformedTile(f"an entry is at most {MAX_ENTRY_SIZE} bytes, got {len(entry)}")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entry_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """Split a bundle into entries; with ``width``, exactly that many entries are required."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedTile("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise MalformedTile("entry bundle ends inside an entry")
        entries.append(bytes(data[pos : pos + length]))
        pos += length
        if len(entries) > TILE_WIDTH:
            raise MalformedTile(f"entry bundle holds more than {TILE_WIDTH} entries")
    if width is not None and len(entries) != width:
        raise MalformedTile(f"entry bundle holds {len(entries)} entries, expected {width}")
    return entries
