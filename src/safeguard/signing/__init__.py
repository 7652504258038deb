"""Signing: turn a key (file, PKCS#11 token, keyless identity) and an artifact into signatures
and attestations, written where verifiers look (``sign``), with an optional transparency log."""
