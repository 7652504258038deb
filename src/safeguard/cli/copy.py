"""Placeholder filled in by the copy command work."""
