"""Error types the runtime raises; each message names the file, key, graph or shape at fault."""


class EdgeError(Exception):
    """Base class for every error the runtime raises on purpose."""


class PackageError(EdgeError):
    """A policy package is missing, corrupted, or from an unsupported manifest version."""


class ObservationError(EdgeError, ValueError):
    """An observation has a wrong key, shape, dtype, or a non-finite value."""


class BackendError(EdgeError):
    """A backend is unavailable or failed to run a graph."""
