"""Safeguard's private transparency log.

The pure foundations live here: the RFC 9162 Merkle tree and its proofs (``merkle``), C2SP signed
notes (``note``), C2SP checkpoints (``checkpoint``) and C2SP tlog-tiles path maths (``tiles``).
Storage, the log service and its HTTP routes build on them.
"""
