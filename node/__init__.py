"""Waystation: a zero-knowledge store-and-forward relay for Berty-style messaging.

Importing this package has no side effects; it only names the version.
"""

__version__ = "0.1.0"
