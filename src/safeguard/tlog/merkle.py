"""The Merkle tree of the transparency log: hashing, proofs, and their verification.

Follows RFC 9162 (Certificate Transparency v2) section 2.1, which keeps RFC 6962's tree: the leaf
hash is ``SHA-256(0x00 || leaf)``, an interior node is ``SHA-256(0x01 || left || right)``, and the
empty tree's root is ``SHA-256()``. Inclusion proofs are ``PATH(m, D[n])`` (section 2.1.3.1) and
consistency proofs ``PROOF(m, D[n])`` (section 2.1.4.1). They are checked with the algorithms of
sections 2.1.3.2 and 2.1.4.2, step by step as the RFC writes them.

Storage model. The only hashes ever stored are those of *perfect* subtrees: node ``(level,
index)`` is the root of leaves ``[index * 2**level, (index + 1) * 2**level)`` and exists once the
tree holds all of them. Such a node never changes, so a store is append-only. Every root and proof
of any past size is assembled from O(log n) stored nodes: a ``ProofPlan`` names the nodes to read
(one batched read, which is what a SQL-backed ``HashReader`` wants) and how to fold the few that
lie on the ragged right edge into the one "ephemeral" node a proof of a non-perfect tree needs.
Appending keeps the compact range (the perfect subtrees covering ``[0, size)``) so each append
costs O(log n) hashes and writes, and no reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple, Protocol

from safeguard.core.errors import InvalidInput, NotFound, VerificationFailed

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
MAX_TREE_SIZE: Final = (1 << 64) - 1
"""Tree sizes and indices are uint64 on every wire format we speak (RFC 9162, checkpoints)."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``MTH({d}) = HASH(0x00 || d)`` (RFC 9162 section 2.1.1)."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``HASH(0x01 || left || right)`` (RFC 9162 section 2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes, in O(n) hashes and O(n) memory.

    Pairing neighbours level by level and promoting an unpaired last node unchanged builds exactly
    RFC 9162's tree, which splits at the largest power of two below n.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    for h in level:
        _check_hash(h, "leaf hash")
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ProofFailure(StrEnum):
    """Why a proof failed; stable values that scripts and API clients can match on."""

    BAD_ARGUMENT = "bad_argument"
    BAD_HASH_LENGTH = "bad_hash_length"
    INDEX_OUT_OF_RANGE = "index_out_of_range"
    SIZE_ORDER = "size1_greater_than_size2"
    EMPTY_TREE = "empty_tree"
    WRONG_PROOF_LENGTH = "wrong_proof_length"
    ROOT_MISMATCH = "root_mismatch"


class ProofError(VerificationFailed):
    """An inclusion or consistency proof does not verify. ``reason`` says which check failed."""

    code = "TLOG_PROOF_INVALID"

    def __init__(self, reason: ProofFailure, message: str) -> None:
        super().__init__(message, detail={"reason": reason.value})
        self.reason = reason


class TreeRangeError(InvalidInput):
    """A proof or root was asked for an index or size the tree cannot answer."""

    code = "TLOG_RANGE_INVALID"


class MissingHash(NotFound):
    """A hash store lacks a node that a tree of the requested size must have."""

    code = "TLOG_HASH_MISSING"


# --------------------------------------------------------------------------------------------
# Node coordinates and proof plans (pure integer maths, no hashing)
# --------------------------------------------------------------------------------------------


class NodeID(NamedTuple):
    """A perfect subtree: the root of leaves ``[index << level, (index + 1) << level)``."""

    level: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: (L, N) as in specs


def range_nodes(begin: int, end: int) -> list[NodeID]:
    """The perfect subtrees that exactly cover leaves ``[begin, end)``, left to right."""
    nodes: list[NodeID] = []
    while begin < end:
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append(NodeID(level, begin >> level))
        begin += 1 << level
    return nodes


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which stored nodes a proof or root needs, and how to assemble them.

    ``nodes[rehash_begin:rehash_end]`` (ordered from the lowest, right-most node up) are folded
    right to left into one node: the ephemeral node of a proof, or the whole root for a root plan.
    Every other node is used as read.
    """

    nodes: tuple[NodeID, ...]
    rehash_begin: int = 0
    rehash_end: int = 0

    @property
    def proof_length(self) -> int:
        return len(self.nodes) - max(0, self.rehash_end - self.rehash_begin - 1)

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes of ``nodes`` (same order) into the proof."""
        if len(hashes) != len(self.nodes):
            raise ValueError(f"got {len(hashes)} hashes for {len(self.nodes)} nodes")
        begin, end = self.rehash_begin, self.rehash_end
        if end - begin <= 1:
            return list(hashes)
        folded = hashes[begin]
        for i in range(begin + 1, end):
            folded = node_hash(hashes[i], folded)
        return [*hashes[:begin], folded, *hashes[end:]]


def _path_plan(index: int, level: int, size: int) -> tuple[list[NodeID], int, int]:
    """Nodes proving node ``(level, index)`` into the tree of ``size`` leaves, seed node first.

    The path from the seed climbs through perfect subtrees up to the "fork", the highest ancestor
    still complete in the tree; the fork's right neighbour is the ephemeral node covering
    ``[fork_end, size)``, assembled from that range's perfect subtrees; the rest of the proof is
    the perfect subtrees covering ``[0, fork_begin)``, lowest first.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level = level + inner
    fork_begin = (index >> inner) << fork_level
    fork_end = fork_begin + (1 << fork_level)
    nodes = [NodeID(level, index)]
    i = index
    for lvl in range(level, fork_level):
        nodes.append(NodeID(lvl, i ^ 1))
        i >>= 1
    right = range_nodes(fork_end, size)
    right.reverse()
    begin = len(nodes)
    nodes.extend(right)
    end = len(nodes)
    left = range_nodes(0, fork_begin)
    left.reverse()
    nodes.extend(left)
    return nodes, begin, end


def _check_size(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise TreeRangeError(f"{what} must be an integer in [0, 2^64), got {value!r}")


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The plan for ``PATH(index, D[size])`` (RFC 9162 section 2.1.3.1)."""
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise TreeRangeError(f"leaf index {index} is not below tree size {size}")
    nodes, begin, end = _path_plan(index, 0, size)
    if end - begin <= 1:
        begin = end = 0
    else:
        begin, end = begin - 1, end - 1
    return ProofPlan(tuple(nodes[1:]), begin, end)


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """The plan for ``PROOF(size1, D[size2])`` (RFC 9162 section 2.1.4.1).

    Equal sizes give the empty proof. The proof starts at the largest perfect subtree ending at
    ``size1`` (left out when that subtree is the whole old tree, whose root the verifier has) and
    continues with that node's inclusion path in the new tree.
    """
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise TreeRangeError(f"first tree size {size1} is larger than second {size2}")
    if size1 == 0:
        raise TreeRangeError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        return ProofPlan(())
    level = (size1 & -size1).bit_length() - 1
    nodes, begin, end = _path_plan((size1 - 1) >> level, level, size2)
    if end - begin <= 1:
        begin = end = 0
    if size1 & (size1 - 1) == 0:
        nodes = nodes[1:]
        if end:
            begin, end = begin - 1, end - 1
    return ProofPlan(tuple(nodes), begin, end)


def root_plan(size: int) -> ProofPlan:
    """The stored nodes whose right-to-left fold is the root of the tree of ``size`` leaves."""
    _check_size(size, "tree size")
    nodes = range_nodes(0, size)
    nodes.reverse()
    return ProofPlan(tuple(nodes), 0, len(nodes))


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes ``PATH(index, D[size])`` has (index < size)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(size1: int, size2: int) -> int:
    """How many hashes ``PROOF(size1, D[size2])`` has (0 < size1 < size2)."""
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = (size1 & -size1).bit_length() - 1
    seed = 0 if size1 & (size1 - 1) == 0 else 1
    return seed + inner - shift + border


# --------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)
# --------------------------------------------------------------------------------------------


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes | bytearray | memoryview) else None
        raise ProofError(
            ProofFailure.BAD_HASH_LENGTH,
            f"{what} must be {HASH_SIZE} bytes, got {size if size is not None else type(value)}",
        )


def _check_arg(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(ProofFailure.BAD_ARGUMENT, f"{what} must be a uint64, got {value!r}")


def _check_proof(proof: Sequence[bytes]) -> None:
    if isinstance(proof, bytes | str):
        raise ProofError(ProofFailure.BAD_ARGUMENT, "proof must be a sequence of hashes")
    for i, h in enumerate(proof):
        _check_hash(h, f"proof hash [{i}]")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``index`` in a tree of ``size``.

    RFC 9162 section 2.1.3.2, steps 1 to 4, plus the length check of step 5.
    """
    _check_arg(index, "leaf index")
    _check_arg(size, "tree size")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(proof)
    # Step 1.
    if index >= size:
        raise ProofError(
            ProofFailure.INDEX_OUT_OF_RANGE, f"leaf index {index} is not below tree size {size}"
        )
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(
            ProofFailure.WRONG_PROOF_LENGTH,
            f"inclusion proof for index {index} in size {size} has {len(proof)} hashes, "
            f"expected {want}",
        )
    # Steps 2 and 3.
    fn, sn = index, size - 1
    r = bytes(leaf_hash)
    # Step 4.
    for p in proof:
        if sn == 0:  # 4a
            raise ProofError(ProofFailure.WRONG_PROOF_LENGTH, "inclusion proof is too long")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # Step 5 (first half).
    if sn != 0:
        raise ProofError(ProofFailure.WRONG_PROOF_LENGTH, "inclusion proof is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with root ``root``.

    Raises ``ProofError`` on any failure.
    """
    _check_hash(root, "root hash")
    computed = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if computed != root:
        raise ProofError(
            ProofFailure.ROOT_MISMATCH,
            f"inclusion proof for index {index} in size {size} yields root {computed.hex()}, "
            f"expected {bytes(root).hex()}",
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the tree of ``size1`` with ``root1``.

    RFC 9162 section 2.1.4.2. The RFC defines proofs for ``0 < size1 < size2``; for equal sizes
    the proof must be empty and the roots equal (the tree is consistent with itself), and a proof
    from the empty tree is refused as meaningless, as transparency-dev/merkle does. Raises
    ``ProofError`` on any failure.
    """
    _check_arg(size1, "first tree size")
    _check_arg(size2, "second tree size")
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    _check_proof(proof)
    if size1 > size2:
        raise ProofError(
            ProofFailure.SIZE_ORDER, f"first tree size {size1} is larger than second {size2}"
        )
    if size1 == 0:
        raise ProofError(
            ProofFailure.EMPTY_TREE, "a consistency proof from the empty tree is meaningless"
        )
    if size1 == size2:
        if proof:
            raise ProofError(
                ProofFailure.WRONG_PROOF_LENGTH,
                f"sizes are equal ({size1}) but the proof has {len(proof)} hashes, expected 0",
            )
        if root1 != root2:
            raise ProofError(
                ProofFailure.ROOT_MISMATCH, f"sizes are equal ({size1}) but the roots differ"
            )
        return
    # Step 1.
    if not proof:
        raise ProofError(ProofFailure.WRONG_PROOF_LENGTH, "consistency proof is empty")
    want = consistency_proof_length(size1, size2)
    if len(proof) != want:
        raise ProofError(
            ProofFailure.WRONG_PROOF_LENGTH,
            f"consistency proof from size {size1} to {size2} has {len(proof)} hashes, "
            f"expected {want}",
        )
    path: list[bytes] = [bytes(p) for p in proof]
    # Step 2.
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))
    # Step 3.
    fn, sn = size1 - 1, size2 - 1
    # Step 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # 6a
            raise ProofError(ProofFailure.WRONG_PROOF_LENGTH, "consistency proof is too long")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise ProofError(ProofFailure.WRONG_PROOF_LENGTH, "consistency proof is too short")
    if fr != root1:
        raise ProofError(
            ProofFailure.ROOT_MISMATCH,
            f"consistency proof yields first root {fr.hex()}, expected {bytes(root1).hex()}",
        )
    if sr != root2:
        raise ProofError(
            ProofFailure.ROOT_MISMATCH,
            f"consistency proof yields second root {sr.hex()}, expected {bytes(root2).hex()}",
        )


# --------------------------------------------------------------------------------------------
# Hash storage
# --------------------------------------------------------------------------------------------


class HashReader(Protocol):
    """Reads stored perfect-subtree hashes. One call per proof: implement it as one query."""

    def read_hashes(self, ids: Sequence[NodeID], /) -> list[bytes]:
        """The hashes of ``ids`` in order; raise ``MissingHash`` if any is not stored."""
        ...


class HashStore(HashReader, Protocol):
    """A ``HashReader`` that can also append nodes (a node, once written, never changes)."""

    def write_hashes(self, nodes: Sequence[tuple[NodeID, bytes]], /) -> None: ...


class MemoryHashStore:
    """An in-memory ``HashStore``: one contiguous byte array per level (32 bytes per node)."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def node_count(self, level: int) -> int:
        return len(self._levels[level]) // HASH_SIZE if level < len(self._levels) else 0

    def read_hashes(self, ids: Sequence[NodeID], /) -> list[bytes]:
        levels = self._levels
        out: list[bytes] = []
        for level, index in ids:
            start = index * HASH_SIZE
            if level >= len(levels) or index < 0 or start + HASH_SIZE > len(levels[level]):
                raise MissingHash(f"no stored hash for node (level {level}, index {index})")
            out.append(bytes(levels[level][start : start + HASH_SIZE]))
        return out

    def write_hashes(self, nodes: Sequence[tuple[NodeID, bytes]], /) -> None:
        levels = self._levels
        for (level, index), value in nodes:
            if len(value) != HASH_SIZE:
                raise ValueError(f"node hash must be {HASH_SIZE} bytes, got {len(value)}")
            while len(levels) <= level:
                levels.append(bytearray())
            row = levels[level]
            count = len(row) // HASH_SIZE
            if index == count:
                row += value
            elif 0 <= index < count:
                if row[index * HASH_SIZE : (index + 1) * HASH_SIZE] != value:
                    raise ValueError(f"node (level {level}, index {index}) is already different")
            else:
                raise ValueError(
                    f"node (level {level}, index {index}) leaves a gap after {count} nodes"
                )


def read_root(reader: HashReader, size: int) -> bytes:
    """The root of the tree of ``size`` leaves, from stored nodes (O(log n) reads)."""
    if size == 0:
        _check_size(size, "tree size")
        return EMPTY_ROOT
    plan = root_plan(size)
    return plan.assemble(reader.read_hashes(plan.nodes))[0]


def read_inclusion_proof(reader: HashReader, index: int, size: int) -> list[bytes]:
    plan = inclusion_plan(index, size)
    return plan.assemble(reader.read_hashes(plan.nodes)) if plan.nodes else []


def read_consistency_proof(reader: HashReader, size1: int, size2: int) -> list[bytes]:
    plan = consistency_plan(size1, size2)
    return plan.assemble(reader.read_hashes(plan.nodes)) if plan.nodes else []


# --------------------------------------------------------------------------------------------
# The appendable log
# --------------------------------------------------------------------------------------------


class MerkleLog:
    """An append-only Merkle tree over a ``HashStore``.

    ``MerkleLog()`` keeps everything in memory; ``MerkleLog(store, size=n)`` resumes a tree whose
    first ``n`` leaves the store already holds (one batched read rebuilds the compact range).
    Proofs and roots for any size up to the current one come from stored nodes only.
    """

    __slots__ = ("_border", "_size", "_store")

    def __init__(self, store: HashStore | None = None, *, size: int = 0) -> None:
        _check_size(size, "tree size")
        self._store: HashStore = store if store is not None else MemoryHashStore()
        self._size = size
        nodes = range_nodes(0, size)
        hashes = self._store.read_hashes(nodes) if nodes else []
        # The compact range of [0, size): (level, hash) of each perfect subtree, left to right.
        self._border: list[tuple[int, bytes]] = [
            (n.level, h) for n, h in zip(nodes, hashes, strict=True)
        ]

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleLog:
        log = cls()
        log.extend(leaf_hashes)
        return log

    @property
    def size(self) -> int:
        return self._size

    @property
    def store(self) -> HashStore:
        return self._store

    def _append(self, value: bytes, out: list[tuple[NodeID, bytes]]) -> None:
        _check_hash(value, "leaf hash")
        index = self._size
        out.append((NodeID(0, index), bytes(value)))
        level, current, border = 0, bytes(value), self._border
        while index & 1:
            _, left = border.pop()
            current = node_hash(left, current)
            index >>= 1
            level += 1
            out.append((NodeID(level, index), current))
        border.append((level, current))
        self._size += 1

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; returns its index."""
        if self._size >= MAX_TREE_SIZE:
            raise TreeRangeError("the tree is full")
        new: list[tuple[NodeID, bytes]] = []
        index = self._size
        self._append(leaf_hash, new)
        self._store.write_hashes(new)
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> int:
        """Append many leaf hashes with one store write; returns the index of the first."""
        first = self._size
        new: list[tuple[NodeID, bytes]] = []
        border = list(self._border)
        try:
            for value in leaf_hashes:
                self._append(value, new)
            self._store.write_hashes(new)
        except BaseException:
            self._border, self._size = border, first
            raise
        return first

    def _check_known(self, size: int, what: str = "tree size") -> None:
        _check_size(size, what)
        if size > self._size:
            raise TreeRangeError(f"{what} {size} is beyond the current tree size {self._size}")

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree at ``size`` (default: now)."""
        if size is None or size == self._size:
            if not self._border:
                return EMPTY_ROOT
            result = self._border[-1][1]
            for _, h in reversed(self._border[:-1]):
                result = node_hash(h, result)
            return result
        self._check_known(size)
        return read_root(self._store, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """``PATH(index, D[size])``: the audit path of leaf ``index`` in the tree of ``size``."""
        size = self._size if size is None else size
        self._check_known(size)
        return read_inclusion_proof(self._store, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """``PROOF(size1, D[size2])``: that the tree at ``size2`` extends the one at ``size1``."""
        size2 = self._size if size2 is None else size2
        self._check_known(size2, "second tree size")
        return read_consistency_proof(self._store, size1, size2)

    def leaf_hash(self, index: int) -> bytes:
        self._check_known(index + 1 if isinstance(index, int) else index, "leaf index + 1")
        return self._store.read_hashes([NodeID(0, index)])[0]
