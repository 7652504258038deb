"""Placeholder filled in by the serve command work."""
