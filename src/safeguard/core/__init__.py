"""Pure building blocks shared by every room: digests, references, media types, manifests, errors.

Nothing here performs I/O, so every other package may import it.
"""
