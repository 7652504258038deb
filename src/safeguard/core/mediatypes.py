"""Media types of the OCI image spec v1.1, Docker's schema 2, and the Sigstore/cosign artifacts.

Kept in one place so that "is this an index" or "is this a signature" is asked one way everywhere.
"""

from typing import Final

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYOUT_HEADER: Final = "application/vnd.oci.layout.header.v1+json"

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

SIGSTORE_BUNDLE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
COSIGN_SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE: Final = "application/vnd.dsse.envelope.v1+json"
IN_TOTO: Final = "application/vnd.in-toto+json"

# The OCI "empty descriptor": the two bytes ``{}``, used as config of artifacts that need none.
EMPTY_JSON: Final = b"{}"
EMPTY_JSON_DIGEST: Final = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

IMAGE_MANIFESTS: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFESTS: Final = IMAGE_MANIFESTS | INDEXES

# What a client offers in ``Accept`` when it wants any manifest we know how to read.
MANIFEST_ACCEPT: Final = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

SIGNATURE_ARTIFACT_TYPES: Final = frozenset({SIGSTORE_BUNDLE_V03, COSIGN_SIMPLE_SIGNING})
ATTESTATION_ARTIFACT_TYPES: Final = frozenset({DSSE_ENVELOPE, IN_TOTO})
