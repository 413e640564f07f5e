"""Errors raised on bad input: each message names the file (or key) and the reason on one line."""


class MMLError(Exception):
    """Base class of every error `mml` raises on bad input."""


class SpecError(MMLError):
    """An invalid table spec or profile: the message names the file, the key and the reason."""


class DataError(MMLError):
    """A missing, malformed or undecodable data file: the message names the file and the reason."""


class CheckpointError(MMLError):
    """A checkpoint that cannot be loaded into a model: the message names the file and the tensor."""


class InvalidValue(MMLError, ValueError):
    """A configuration value that fails its check: `key` and `reason`, without the place it came from.

    The reader that knows the place (a spec file and table, a command-line option) puts it in front with
    `mml.validation.reported_at`, so every such error reads `where: key: reason` on one line.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key, self.reason = key, reason
