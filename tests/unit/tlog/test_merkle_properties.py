"""Property tests: every proof the log generates verifies, and any single-bit change fails."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.tlog import merkle
from safeguard.tlog.merkle import (
    MerkleLog,
    ProofError,
    ProofFailure,
    verify_consistency,
    verify_inclusion,
)

MAX = 300
LEAF_HASHES = [merkle.leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(MAX)]
LOG = MerkleLog.from_leaf_hashes(LEAF_HASHES)
ROOTS = [merkle.root(LEAF_HASHES[:n]) for n in range(MAX + 1)]

PROPS = settings(max_examples=300, deadline=None)


def flip(value: bytes, bit: int) -> bytes:
    out = bytearray(value)
    out[(bit // 8) % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX))
    return draw(st.integers(1, size2)), size2


def test_past_roots_match_recomputation() -> None:
    assert [LOG.root(n) for n in range(MAX + 1)] == ROOTS


@PROPS
@given(index_and_size())
def test_every_inclusion_proof_verifies(args: tuple[int, int]) -> None:
    index, size = args
    proof = LOG.inclusion_proof(index, size)
    assert len(proof) == merkle.inclusion_proof_length(index, size)
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])
    assert merkle.root_from_inclusion_proof(LEAF_HASHES[index], index, size, proof) == ROOTS[size]


@PROPS
@given(two_sizes())
def test_every_consistency_proof_verifies(args: tuple[int, int]) -> None:
    size1, size2 = args
    proof = LOG.consistency_proof(size1, size2)
    if size1 < size2:
        assert len(proof) == merkle.consistency_proof_length(size1, size2)
    else:
        assert proof == []
    verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


@PROPS
@given(index_and_size(), st.data())
def test_any_single_bit_change_breaks_inclusion(args: tuple[int, int], data: st.DataObject) -> None:
    index, size = args
    proof = LOG.inclusion_proof(index, size)
    leaf, root = LEAF_HASHES[index], ROOTS[size]
    bit = data.draw(st.integers(0, 255))
    target = data.draw(st.sampled_from(["leaf", "root", *range(len(proof))]))
    if target == "leaf":
        leaf = flip(leaf, bit)
    elif target == "root":
        root = flip(root, bit)
    else:
        assert isinstance(target, int)
        proof = [flip(h, bit) if i == target else h for i, h in enumerate(proof)]
    with pytest.raises(ProofError) as info:
        verify_inclusion(leaf, index, size, proof, root)
    assert info.value.reason is ProofFailure.ROOT_MISMATCH


@PROPS
@given(two_sizes(), st.data())
def test_any_single_bit_change_breaks_consistency(
    args: tuple[int, int], data: st.DataObject
) -> None:
    size1, size2 = args
    proof = LOG.consistency_proof(size1, size2)
    root1, root2 = ROOTS[size1], ROOTS[size2]
    bit = data.draw(st.integers(0, 255))
    target = data.draw(st.sampled_from(["root1", "root2", *range(len(proof))]))
    if target == "root1":
        root1 = flip(root1, bit)
    elif target == "root2":
        root2 = flip(root2, bit)
    else:
        assert isinstance(target, int)
        proof = [flip(h, bit) if i == target else h for i, h in enumerate(proof)]
    with pytest.raises(ProofError) as info:
        verify_consistency(size1, size2, proof, root1, root2)
    assert info.value.reason is ProofFailure.ROOT_MISMATCH


@PROPS
@given(index_and_size(), st.data())
def test_wrong_index_size_or_length_breaks_inclusion(
    args: tuple[int, int], data: st.DataObject
) -> None:
    index, size = args
    proof = LOG.inclusion_proof(index, size)
    leaf, root = LEAF_HASHES[index], ROOTS[size]
    mutation = data.draw(st.sampled_from(["index", "size", "truncate", "extend"]))
    if mutation == "index":
        other = data.draw(st.integers(0, MAX).filter(lambda i: i != index))
        with pytest.raises(ProofError):
            verify_inclusion(leaf, other, size, proof, root)
    elif mutation == "size":
        # A proof binds the pair (size, root), not the size alone: the root of 129 leaves also
        # "verifies" as a 130-leaf root whose right subtree hash is leaf 128 (finding such a tree
        # needs a preimage across the 0x00/0x01 domain separation). So another size may pass
        # only with a proof of the same shape.
        other = data.draw(st.integers(0, MAX).filter(lambda s: s != size))
        try:
            verify_inclusion(leaf, index, other, proof, root)
        except ProofError:
            pass
        else:
            assert merkle.inclusion_proof_length(index, other) == len(proof)
    elif mutation == "truncate" and proof:
        with pytest.raises(ProofError) as info:
            verify_inclusion(leaf, index, size, proof[:-1], root)
        assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH
    elif mutation == "extend":
        with pytest.raises(ProofError) as info:
            verify_inclusion(leaf, index, size, [*proof, root], root)
        assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH


@PROPS
@given(two_sizes(), st.data())
def test_wrong_sizes_or_length_break_consistency(
    args: tuple[int, int], data: st.DataObject
) -> None:
    size1, size2 = args
    proof = LOG.consistency_proof(size1, size2)
    root1, root2 = ROOTS[size1], ROOTS[size2]
    mutation = data.draw(st.sampled_from(["size1", "size2", "truncate", "extend"]))
    if mutation == "size1":
        other = data.draw(st.integers(0, MAX).filter(lambda s: s != size1))
        with pytest.raises(ProofError):
            verify_consistency(other, size2, proof, root1, root2)
    elif mutation == "size2":
        # As for inclusion: a different size2 can only pass with a proof of the same shape.
        other = data.draw(st.integers(0, MAX).filter(lambda s: s != size2))
        try:
            verify_consistency(size1, other, proof, root1, root2)
        except ProofError:
            pass
        else:
            assert 0 < size1 < other
            assert merkle.consistency_proof_length(size1, other) == len(proof)
    elif mutation == "truncate" and proof:
        with pytest.raises(ProofError) as info:
            verify_consistency(size1, size2, proof[:-1], root1, root2)
        assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH
    elif mutation == "extend":
        with pytest.raises(ProofError) as info:
            verify_consistency(size1, size2, [*proof, root2], root1, root2)
        assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1))
def test_plans_have_the_predicted_length_at_uint64_scale(index: int, size: int) -> None:
    index %= size
    plan = merkle.inclusion_plan(index, size)
    assert plan.proof_length == merkle.inclusion_proof_length(index, size)
    assert all(0 <= n.level < 64 for n in plan.nodes)
    size1 = max(1, index)
    if size1 < size:
        cplan = merkle.consistency_plan(size1, size)
        assert cplan.proof_length == merkle.consistency_proof_length(size1, size)


@pytest.mark.parametrize(
    ("index", "size", "reason"),
    [
        (5, 5, ProofFailure.INDEX_OUT_OF_RANGE),
        (0, 0, ProofFailure.INDEX_OUT_OF_RANGE),
        (-1, 5, ProofFailure.BAD_ARGUMENT),
        (0, 2**64, ProofFailure.BAD_ARGUMENT),
        (True, 5, ProofFailure.BAD_ARGUMENT),
        ("0", 5, ProofFailure.BAD_ARGUMENT),
    ],
)
def test_hostile_inclusion_arguments(index: object, size: object, reason: ProofFailure) -> None:
    with pytest.raises(ProofError) as info:
        verify_inclusion(LEAF_HASHES[0], index, size, [], ROOTS[1])  # type: ignore[arg-type]
    assert info.value.reason is reason


@pytest.mark.parametrize(
    ("proof", "leaf", "root"),
    [
        ([b"\x00" * 31], LEAF_HASHES[0], ROOTS[2]),
        (["a" * 32], LEAF_HASHES[0], ROOTS[2]),
        ([LEAF_HASHES[1]], LEAF_HASHES[0][:16], ROOTS[2]),
        ([LEAF_HASHES[1]], LEAF_HASHES[0], ROOTS[2] + b"\x00"),
        ([LEAF_HASHES[1]], LEAF_HASHES[0], None),
    ],
)
def test_hostile_hashes(proof: list[object], leaf: object, root: object) -> None:
    with pytest.raises(ProofError) as info:
        verify_inclusion(leaf, 0, 2, proof, root)  # type: ignore[arg-type]
    assert info.value.reason is ProofFailure.BAD_HASH_LENGTH


def test_proof_as_bytes_is_refused() -> None:
    with pytest.raises(ProofError) as info:
        verify_inclusion(LEAF_HASHES[0], 0, 2, LEAF_HASHES[1], ROOTS[2])  # type: ignore[arg-type]
    assert info.value.reason is ProofFailure.BAD_ARGUMENT


def test_consistency_size_rules() -> None:
    with pytest.raises(ProofError) as info:
        verify_consistency(3, 2, LOG.consistency_proof(2, 3), ROOTS[3], ROOTS[2])
    assert info.value.reason is ProofFailure.SIZE_ORDER
    with pytest.raises(ProofError) as info:
        verify_consistency(0, 2, [], merkle.EMPTY_ROOT, ROOTS[2])
    assert info.value.reason is ProofFailure.EMPTY_TREE
    with pytest.raises(ProofError) as info:
        verify_consistency(4, 4, [], ROOTS[4], ROOTS[5])
    assert info.value.reason is ProofFailure.ROOT_MISMATCH
    with pytest.raises(ProofError) as info:
        verify_consistency(4, 4, [ROOTS[4]], ROOTS[4], ROOTS[4])
    assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH
    with pytest.raises(ProofError) as info:
        verify_consistency(4, 5, [], ROOTS[4], ROOTS[5])
    assert info.value.reason is ProofFailure.WRONG_PROOF_LENGTH
    verify_consistency(4, 4, [], ROOTS[4], ROOTS[4])


def test_error_message_names_the_failure() -> None:
    proof = LOG.inclusion_proof(3, 10)
    with pytest.raises(ProofError, match=r"has 3 hashes, expected 4"):
        verify_inclusion(LEAF_HASHES[3], 3, 10, proof[:-1], ROOTS[10])
    with pytest.raises(ProofError, match=r"yields root [0-9a-f]{64}, expected [0-9a-f]{64}"):
        verify_inclusion(LEAF_HASHES[4], 3, 10, proof, ROOTS[10])
