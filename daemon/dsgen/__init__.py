"""dsgen: exact, resumable multi-category VSR dataset extraction."""

__version__ = "0.1.0"
