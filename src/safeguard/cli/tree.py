"""Placeholder filled in by the tree command work."""
