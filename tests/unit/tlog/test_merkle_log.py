"""MerkleLog and hash stores: appends, history, resuming from a store, and bad requests."""

from __future__ import annotations

import pytest

from safeguard.core.errors import InvalidInput, NotFound
from safeguard.tlog import merkle
from safeguard.tlog.merkle import (
    MemoryHashStore,
    MerkleLog,
    MissingHash,
    NodeID,
    TreeRangeError,
)

LEAVES = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(1100)]


def test_append_returns_indices_and_roots_track_size() -> None:
    log = MerkleLog()
    assert log.size == 0
    assert log.root() == merkle.EMPTY_ROOT
    for i, h in enumerate(LEAVES[:40]):
        assert log.append(h) == i
        assert log.size == i + 1
        assert log.root() == merkle.root(LEAVES[: i + 1])
    assert log.extend(LEAVES[40:100]) == 40
    assert log.root() == merkle.root(LEAVES[:100])
    assert log.leaf_hash(57) == LEAVES[57]


def test_store_holds_only_perfect_subtrees() -> None:
    store = MemoryHashStore()
    MerkleLog(store).extend(LEAVES[:1027])
    # 1027 = 0b10000000011: level k holds floor(1027 / 2**k) nodes.
    assert [store.node_count(k) for k in range(12)] == [1027 >> k for k in range(12)]


@pytest.mark.parametrize("size", [0, 1, 5, 64, 1000, 1024, 1099])
def test_resume_from_store(size: int) -> None:
    store = MemoryHashStore()
    MerkleLog(store).extend(LEAVES[:size])
    resumed = MerkleLog(store, size=size)
    assert resumed.root() == merkle.root(LEAVES[:size])
    resumed.extend(LEAVES[size:])
    assert resumed.root() == merkle.root(LEAVES)
    assert resumed.inclusion_proof(3) == MerkleLog.from_leaf_hashes(LEAVES).inclusion_proof(3)


def test_resume_beyond_what_the_store_holds() -> None:
    store = MemoryHashStore()
    MerkleLog(store).extend(LEAVES[:10])
    with pytest.raises(MissingHash) as info:
        MerkleLog(store, size=11)
    assert isinstance(info.value, NotFound)
    assert info.value.code == "TLOG_HASH_MISSING"


def test_requests_beyond_the_tree_are_range_errors() -> None:
    log = MerkleLog.from_leaf_hashes(LEAVES[:10])
    for call in (
        lambda: log.root(11),
        lambda: log.inclusion_proof(10),
        lambda: log.inclusion_proof(3, 11),
        lambda: log.inclusion_proof(-1),
        lambda: log.consistency_proof(5, 11),
        lambda: log.consistency_proof(6, 5),
        lambda: log.consistency_proof(0, 5),
        lambda: log.leaf_hash(10),
        lambda: log.root(-1),
    ):
        with pytest.raises(TreeRangeError) as info:
            call()
        assert isinstance(info.value, InvalidInput)
        assert info.value.code == "TLOG_RANGE_INVALID"


def test_bad_leaf_hash_is_refused_without_changing_the_tree() -> None:
    log = MerkleLog.from_leaf_hashes(LEAVES[:3])
    before = log.root()
    with pytest.raises(merkle.ProofError):
        log.append(b"short")
    with pytest.raises(merkle.ProofError):
        log.extend([LEAVES[3], b"short"])
    assert log.size == 3
    assert log.root() == before


def test_memory_store_is_append_only() -> None:
    store = MemoryHashStore()
    store.write_hashes([(NodeID(0, 0), LEAVES[0])])
    store.write_hashes([(NodeID(0, 0), LEAVES[0])])  # idempotent rewrite
    with pytest.raises(ValueError, match="already different"):
        store.write_hashes([(NodeID(0, 0), LEAVES[1])])
    with pytest.raises(ValueError, match="gap"):
        store.write_hashes([(NodeID(0, 5), LEAVES[1])])
    with pytest.raises(ValueError, match="32 bytes"):
        store.write_hashes([(NodeID(0, 1), b"x")])
    with pytest.raises(MissingHash):
        store.read_hashes([NodeID(3, 0)])
    with pytest.raises(MissingHash):
        store.read_hashes([NodeID(0, -1)])


def test_plans_are_pure_and_batched() -> None:
    # A storage layer reads plan.nodes in one query and assembles the proof from them.
    store = MemoryHashStore()
    MerkleLog(store).extend(LEAVES[:7])
    plan = merkle.inclusion_plan(0, 7)
    assert plan.nodes == (NodeID(0, 1), NodeID(1, 1), NodeID(0, 6), NodeID(1, 2))
    assert (plan.rehash_begin, plan.rehash_end, plan.proof_length) == (2, 4, 3)
    proof = plan.assemble(store.read_hashes(plan.nodes))
    assert proof[2] == merkle.node_hash(merkle.node_hash(LEAVES[4], LEAVES[5]), LEAVES[6])
    with pytest.raises(ValueError, match="got 1 hashes for 4 nodes"):
        plan.assemble([LEAVES[0]])
    assert merkle.range_nodes(3, 13) == [
        NodeID(0, 3),
        NodeID(2, 1),
        NodeID(2, 2),
        NodeID(0, 12),
    ]
    assert merkle.root_plan(0).nodes == ()
    assert merkle.read_root(store, 0) == merkle.EMPTY_ROOT
