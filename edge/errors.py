"""The edge error tree: `EdgeError` is the root of every error the runtime raises on purpose.

Each message names the file, manifest field, feature, graph or option at fault. The workstation
side (export/) roots its own tree in `EdgeError` too, so one exit-status mapping (edge/exit_status.py)
serves every command line without edge importing export.
"""


class EdgeError(Exception):
    """Root of every error the runtime raises on purpose."""


class PackageError(EdgeError):
    """A policy package is missing, corrupted, inconsistent, or from an unsupported manifest version."""


class ObservationError(EdgeError, ValueError):
    """An observation has a wrong key, shape, dtype, or a non-finite value."""


class BackendError(EdgeError):
    """A backend is unavailable or failed to run a graph."""


class OptionError(EdgeError, ValueError):
    """An option given to `load_policy`, a runner or an executor is invalid."""


class CLIError(OptionError):
    """A command-line argument refused by an `edge` command."""


class PolicyOutputError(EdgeError):
    """A graph produced a non-finite action; the message names the step and the action index."""


class ResultsNotWritten(EdgeError):
    """A run completed (the arm moved) but a result file (summary, telemetry) could not be written."""


class RobotConfigError(EdgeError, ValueError):
    """The robot file is unusable; the message names the file and the field."""


class PolicyServerError(EdgeError):
    """The policy server is unreachable, gave no chunk in time, or answered for another package."""
