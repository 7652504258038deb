"""RFC 6962 / RFC 9162 Merkle tree against published vectors (tests/fixtures/vectors/tlog)."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard.tlog import merkle
from safeguard.tlog.merkle import (
    MemoryHashStore,
    MerkleLog,
    NodeID,
    ProofError,
    ProofFailure,
    verify_consistency,
    verify_inclusion,
)

from ._vectors import b64, load

REF = load("rfc6962-reference-tree.json")
LEAVES = [bytes.fromhex(x) for x in REF["leaves"]]
LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]
ROOTS = [bytes.fromhex(x) for x in REF["roots"]]


def _h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in values]


def test_hasher_vectors() -> None:
    hv = REF["hasher"]
    assert merkle.EMPTY_ROOT.hex() == hv["emptyRoot"]
    assert merkle.root([]).hex() == hv["emptyRoot"]
    assert merkle.leaf_hash(b"").hex() == hv["emptyLeafHash"]
    assert merkle.leaf_hash(hv["leaf"]["input"].encode()).hex() == hv["leaf"]["hash"]
    node = merkle.node_hash(hv["node"]["left"].encode(), hv["node"]["right"].encode())
    assert node.hex() == hv["node"]["hash"]


def test_reference_leaves_are_the_rfc_ones() -> None:
    assert [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        bytes(range(0x60, 0x70)),
    ] == LEAVES


@pytest.mark.parametrize("size", range(9))
def test_roots_of_every_prefix(size: int) -> None:
    assert merkle.root(LEAF_HASHES[:size]) == ROOTS[size]
    log = MerkleLog.from_leaf_hashes(LEAF_HASHES[:size])
    assert log.root() == ROOTS[size]


def test_past_roots_from_the_full_tree() -> None:
    log = MerkleLog.from_leaf_hashes(LEAF_HASHES)
    assert [log.root(size) for size in range(9)] == ROOTS


def test_stored_node_hashes_per_level() -> None:
    store = MemoryHashStore()
    MerkleLog(store).extend(LEAF_HASHES)
    for level, hashes in enumerate(REF["nodeHashes"]):
        ids = [NodeID(level, i) for i in range(len(hashes))]
        assert store.read_hashes(ids) == _h(hashes)
        assert store.node_count(level) == len(hashes)
    assert store.node_count(len(REF["nodeHashes"])) == 0


@pytest.mark.parametrize(
    "vector", REF["inclusionProofs"], ids=lambda v: f"{v['leafIndex']}@{v['treeSize']}"
)
def test_published_inclusion_proofs(vector: dict[str, Any]) -> None:
    index, size, proof = vector["leafIndex"], vector["treeSize"], _h(vector["proof"])
    log = MerkleLog.from_leaf_hashes(LEAF_HASHES)
    assert log.inclusion_proof(index, size) == proof
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(
    "vector", REF["consistencyProofs"], ids=lambda v: f"{v['size1']}-{v['size2']}"
)
def test_published_consistency_proofs(vector: dict[str, Any]) -> None:
    size1, size2, proof = vector["size1"], vector["size2"], _h(vector["proof"])
    log = MerkleLog.from_leaf_hashes(LEAF_HASHES)
    assert log.consistency_proof(size1, size2) == proof
    verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


INCLUSION = load("transparency-dev-merkle-inclusion.json")["vectors"]
CONSISTENCY = load("transparency-dev-merkle-consistency.json")["vectors"]

# Where we are deliberately stricter than transparency-dev/merkle: every hash is a SHA-256
# output, so a 12-byte "root" is refused even when both roots are equal and the proof is empty.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


@pytest.mark.parametrize("vector", INCLUSION, ids=lambda v: v["path"].removeprefix("testdata/"))
def test_transparency_dev_inclusion_probes(vector: dict[str, Any]) -> None:
    args = (
        b64(vector["leafHash"]),
        vector["leafIdx"],
        vector["treeSize"],
        [b64(p) for p in vector["proof"] or []],
        b64(vector["root"]),
    )
    if vector["wantErr"]:
        with pytest.raises(ProofError) as info:
            verify_inclusion(*args)
        assert info.value.code == "TLOG_PROOF_INVALID"
        assert info.value.exit_code == 1
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("vector", CONSISTENCY, ids=lambda v: v["path"].removeprefix("testdata/"))
def test_transparency_dev_consistency_probes(vector: dict[str, Any]) -> None:
    args = (
        vector["size1"],
        vector["size2"],
        [b64(p) for p in vector["proof"] or []],
        b64(vector["root1"]),
        b64(vector["root2"]),
    )
    if vector["wantErr"] or vector["path"] in STRICTER:
        with pytest.raises(ProofError) as info:
            verify_consistency(*args)
        if vector["path"] in STRICTER:
            assert info.value.reason is ProofFailure.BAD_HASH_LENGTH
    else:
        verify_consistency(*args)


def test_probe_sets_are_complete() -> None:
    # 98 + 98 probes, of which the happy paths verify and every mutation is rejected.
    assert len(INCLUSION) == 98 and len(CONSISTENCY) == 98
    assert sum(not v["wantErr"] for v in INCLUSION) == 6
    assert sum(not v["wantErr"] for v in CONSISTENCY) == 6


@pytest.mark.parametrize(
    ("probe", "reason"),
    [
        ("inclusion/1/removed-component.json", ProofFailure.WRONG_PROOF_LENGTH),
        ("inclusion/1/inserted-component.json", ProofFailure.WRONG_PROOF_LENGTH),
        ("inclusion/1/wrong-leaf.json", ProofFailure.BAD_HASH_LENGTH),
        ("inclusion/1/leafIdx-plus-@1.json", ProofFailure.ROOT_MISMATCH),
        ("inclusion/1/modified-proof[1]-bit-@3.json", ProofFailure.ROOT_MISMATCH),
        ("inclusion/0/empty-root.json", ProofFailure.ROOT_MISMATCH),
        ("inclusion/additional/0/random-leaf.json", ProofFailure.BAD_HASH_LENGTH),
        ("inclusion/additional/0/empty-root-and-random-leaf.json", ProofFailure.INDEX_OUT_OF_RANGE),
    ],
)
def test_inclusion_failures_name_the_reason(probe: str, reason: ProofFailure) -> None:
    (vector,) = [v for v in INCLUSION if v["path"] == f"testdata/{probe}"]
    with pytest.raises(ProofError) as info:
        verify_inclusion(
            b64(vector["leafHash"]),
            vector["leafIdx"],
            vector["treeSize"],
            [b64(p) for p in vector["proof"] or []],
            b64(vector["root"]),
        )
    assert info.value.reason is reason
    assert info.value.to_dict()["detail"] == {"reason": reason.value}


@pytest.mark.parametrize(
    ("probe", "reason"),
    [
        ("consistency/1/truncated-proof.json", ProofFailure.WRONG_PROOF_LENGTH),
        ("consistency/1/trailing-garbage.json", ProofFailure.BAD_HASH_LENGTH),
        ("consistency/1/trailing-root2.json", ProofFailure.WRONG_PROOF_LENGTH),
        ("consistency/1/wrong-root2.json", ProofFailure.BAD_HASH_LENGTH),
        ("consistency/2/swapped-roots.json", ProofFailure.ROOT_MISMATCH),
        ("consistency/2/modified-proof@1-bit-@4.json", ProofFailure.ROOT_MISMATCH),
        (
            "consistency/additional/consistency-check-on-empty-tree-size1-is-zero-is-useless.json",
            ProofFailure.EMPTY_TREE,
        ),
        (
            "consistency/additional/sizes-match-but-proof-is-not-empty-and-sizes-are-one.json",
            ProofFailure.WRONG_PROOF_LENGTH,
        ),
    ],
)
def test_consistency_failures_name_the_reason(probe: str, reason: ProofFailure) -> None:
    (vector,) = [v for v in CONSISTENCY if v["path"] == f"testdata/{probe}"]
    with pytest.raises(ProofError) as info:
        verify_consistency(
            vector["size1"],
            vector["size2"],
            [b64(p) for p in vector["proof"] or []],
            b64(vector["root1"]),
            b64(vector["root2"]),
        )
    assert info.value.reason is reason
