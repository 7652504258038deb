"""Wire formats of the cosign/Sigstore world as pure functions over bytes (no I/O).

One module per format: ``simplesigning`` (cosign's signed payload), ``cosign_sig`` (the legacy
``sha256-<hex>.sig``/``.att`` manifests), ``dsse`` (DSSE envelopes), ``intoto`` (in-toto
Statements), ``slsa`` (SLSA Provenance v1), ``bundle`` (Sigstore bundles v0.1-v0.3) and ``rekor``
(Rekor entry bodies). Every parser raises a ``safeguard.formats.errors`` error on hostile input.
"""
