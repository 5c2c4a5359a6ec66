"""gate-sidecar: a signing proxy for the Gate.io API v4."""

__version__ = "0.1.0"
