"""C2SP tlog-tiles maths: the spec's examples, paths, and proofs rebuilt from tiles."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.tlog import merkle
from safeguard.tlog.merkle import MemoryHashStore, MerkleLog, NodeID, TreeRangeError
from safeguard.tlog.tiles import (
    EntryBundle,
    InvalidTilePath,
    MalformedTile,
    Tile,
    encode_entry_bundle,
    encode_index,
    new_tiles,
    node_hash_from_tile,
    parse_entries_path,
    parse_entry_bundle,
    parse_tile_path,
    partial_tiles,
    split_tile,
    tile_for_node,
    tile_in_tree,
    tiles_for_consistency_proof,
    tiles_for_inclusion_proof,
    tiles_for_root,
    tiles_for_size,
)

SIZE = 70_000  # the spec's example tree
LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(SIZE)]
STORE = MemoryHashStore()
LOG = MerkleLog(STORE)
LOG.extend(LEAVES)


def test_spec_index_encoding() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(999) == "999"
    assert encode_index(1000) == "x001/000"
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(3, 5, 2).path == "tile/3/005.p/2"
    assert EntryBundle(1234067, 8).path == "tile/entries/x001/x234/067.p/8"


def test_spec_example_tree_of_70000() -> None:
    tiles = list(tiles_for_size(SIZE))
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if not t.is_partial]) == 273
    assert [t for t in level0 if t.is_partial] == [Tile(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [Tile(2, 0, 1)]
    assert len(tiles) == 277
    assert partial_tiles(SIZE) == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]


def test_spec_example_tree_of_256() -> None:
    assert list(tiles_for_size(256)) == [Tile(0, 0), Tile(1, 0, 1)]
    assert list(tiles_for_size(0)) == []
    assert tile_in_tree(0, 1, 256) is None


def test_tile_contents_match_the_spec_definition() -> None:
    # Hash i of tile n at level l is MTH(D[(n*256+i) * 256**l : (n*256+i+1) * 256**l]).
    for tile in tiles_for_size(SIZE):
        data = b"".join(STORE.read_hashes(tile.node_ids()))
        hashes = split_tile(tile, data)
        for i in (0, tile.width - 1):
            span = 256**tile.level
            first = (tile.index * 256 + i) * span
            assert hashes[i] == merkle.root(LEAVES[first : first + span])
        assert tile.end <= SIZE
    assert Tile(1, 0).start == 0 and Tile(1, 0).end == 65536
    assert Tile(1, 1, 17).start == 65536 and Tile(1, 1, 17).end == 65536 + 17 * 256


def _tile_data(tile: Tile) -> bytes:
    return b"".join(STORE.read_hashes(tile.node_ids()))


def _proof_from_tiles(plan: merkle.ProofPlan, tiles: list[Tile], size: int) -> list[bytes]:
    fetched = {t: _tile_data(t) for t in tiles}
    hashes = []
    for node in plan.nodes:
        where = tile_for_node(node, size)
        assert where.tile in fetched, (node, where)
        hashes.append(node_hash_from_tile(where.tile, fetched[where.tile], node))
    return plan.assemble(hashes)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, SIZE), st.data())
def test_inclusion_proofs_rebuilt_from_their_tiles(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    tiles = tiles_for_inclusion_proof(index, size)
    assert all(t == tile_in_tree(t.level, t.index, size) for t in tiles)
    proof = _proof_from_tiles(merkle.inclusion_plan(index, size), tiles, size)
    assert proof == LOG.inclusion_proof(index, size)
    (root,) = _proof_from_tiles(merkle.root_plan(size), tiles_for_root(size), size)
    assert root == LOG.root(size)
    merkle.verify_inclusion(LEAVES[index], index, size, proof, root)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, SIZE), st.data())
def test_consistency_proofs_rebuilt_from_their_tiles(size2: int, data: st.DataObject) -> None:
    size1 = data.draw(st.integers(1, size2))
    tiles = tiles_for_consistency_proof(size1, size2)
    proof = _proof_from_tiles(merkle.consistency_plan(size1, size2), tiles, size2)
    assert proof == LOG.consistency_proof(size1, size2)


def test_a_proof_touches_few_tiles() -> None:
    # A 70,000-leaf tree is three levels of tiles; an inclusion proof needs at most one tile per
    # level plus the partial tiles along the right edge.
    rng = random.Random(7)
    for _ in range(200):
        size = rng.randrange(1, SIZE + 1)
        index = rng.randrange(size)
        assert len(tiles_for_inclusion_proof(index, size)) <= 6


def test_node_location_examples() -> None:
    where = tile_for_node(NodeID(0, 1234), SIZE)
    assert (where.tile, where.begin, where.end) == (Tile(0, 4), 210, 211)
    where = tile_for_node(NodeID(3, 5), SIZE)  # leaves 40..47, hashes 40..47 of tile 0/000
    assert (where.tile, where.begin, where.end) == (Tile(0, 0), 40, 48)
    where = tile_for_node(NodeID(8, 3), SIZE)
    assert (where.tile, where.begin, where.end) == (Tile(1, 0), 3, 4)
    where = tile_for_node(NodeID(16, 0), SIZE)
    assert (where.tile, where.begin, where.end) == (Tile(2, 0, 1), 0, 1)
    where = tile_for_node(NodeID(3, 8749), SIZE)  # in the partial level-0 tile
    assert where.tile == Tile(0, 273, 112)
    with pytest.raises(TreeRangeError):
        tile_for_node(NodeID(0, SIZE), SIZE)
    with pytest.raises(TreeRangeError):
        tile_for_node(NodeID(17, 0), SIZE)
    with pytest.raises(MalformedTile):
        node_hash_from_tile(Tile(0, 1), _tile_data(Tile(0, 1)), NodeID(0, 5))
    with pytest.raises(MalformedTile):
        node_hash_from_tile(Tile(0, 273, 8), b"\x00" * 256, NodeID(3, 8749))
    with pytest.raises(MalformedTile):
        split_tile(Tile(0, 0), b"\x00" * 31)


def _naive_tiles(size: int) -> set[Tile]:
    return set(tiles_for_size(size))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 140_000), st.integers(0, 3000))
def test_new_tiles_are_exactly_the_changed_ones(old: int, grow: int) -> None:
    new = old + grow
    assert set(new_tiles(old, new)) == _naive_tiles(new) - _naive_tiles(old)
    assert new_tiles(old, new) == sorted(new_tiles(old, new), key=lambda t: (t.level, t.index))


def test_new_tiles_examples() -> None:
    assert new_tiles(1, 1) == []
    assert new_tiles(100, 101) == [Tile(0, 0, 101)]
    assert new_tiles(255, 257) == [Tile(0, 0), Tile(0, 1, 1), Tile(1, 0, 1)]
    with pytest.raises(TreeRangeError):
        new_tiles(5, 4)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/000",
        "tile/0/001.p/5",
        "tile/3/x123/x456/078",
        "tile/3/x123/x456/078.p/2",
        "tile/1/x003/x057/500",
        "tile/63/999.p/255",
        "tile/10/x001/000",
    ],
)
def test_tile_paths_round_trip(path: str) -> None:
    assert parse_tile_path(path).path == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "tile/3/123/456/078",  # groups before the last need an x
        "tile/-1/x123/x456/078",
        "tile/data/x003/x057/500",
        "tile/entries/000",
        "tile/00/000",
        "tile/64/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/05",
        "tile/0/000.p/",
        "tile/0/x000/001",  # not canonical: 1 is "001"
        "tile/0/1",
        "tile/0/0001",
        "tile/0/x001",
        "/tile/0/000",
        "tile/0/000/",
        "tile/0/000.p/5/",
        "tile/8/5/x123/x456/078",  # sumdb form, with the height
        "tile/0/\u0661\u0662\u0663",  # Arabic-Indic digits
        "tile/0/000\n",
    ],
)
def test_bad_tile_paths(path: str) -> None:
    with pytest.raises(InvalidTilePath) as info:
        parse_tile_path(path)
    assert info.value.code == "TLOG_TILE_PATH_INVALID"


def test_entry_bundle_paths() -> None:
    assert parse_entries_path("tile/entries/x001/x234/067.p/8") == EntryBundle(1234067, 8)
    assert parse_entries_path("tile/entries/000") == EntryBundle(0)
    assert EntryBundle(2, 7).tile() == Tile(0, 2, 7)
    assert (EntryBundle(2, 7).start, EntryBundle(2, 7).end) == (512, 519)
    for bad in ("tile/entries/000.p/256", "tile/entries/x000/000", "tile/0/000", "tile/entries/"):
        with pytest.raises(InvalidTilePath):
            parse_entries_path(bad)
    for make in (
        lambda: Tile(0, -1),
        lambda: Tile(64, 0),
        lambda: Tile(0, 0, 0),
        lambda: Tile(0, 0, 257),
        lambda: Tile(True, 0),
        lambda: EntryBundle(0, 300),
    ):
        with pytest.raises(InvalidTilePath):
            make()
    with pytest.raises(InvalidTilePath):
        parse_tile_path(None)  # type: ignore[arg-type]


def test_entry_bundles() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = encode_entry_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert parse_entry_bundle(data) == entries
    assert parse_entry_bundle(data, 3) == entries
    assert parse_entry_bundle(b"") == []
    for bad in (b"\x00", b"\x00\x02a", data[:-1]):
        with pytest.raises(MalformedTile):
            parse_entry_bundle(bad)
    with pytest.raises(MalformedTile):
        parse_entry_bundle(data, 2)
    with pytest.raises(MalformedTile):
        parse_entry_bundle(b"\x00\x00" * 257)
    with pytest.raises(MalformedTile):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(MalformedTile):
        encode_entry_bundle([b""] * 257)
    # Each entry of a bundle hashes to the matching hash of the level-0 tile.
    bundle = [i.to_bytes(4, "big") for i in range(256)]
    tile_hashes = split_tile(Tile(0, 0), _tile_data(Tile(0, 0)))
    decoded = parse_entry_bundle(encode_entry_bundle(bundle), 256)
    assert [merkle.leaf_hash(e) for e in decoded] == tile_hashes
