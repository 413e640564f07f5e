"""Errors raised on bad input: each message names the file (or key) and the reason on one line."""


class MMLError(Exception):
    """Base class of every error `mml` raises on bad input."""


class SpecError(MMLError):
    """An invalid table spec or profile: the message names the file, the key and the reason."""


class DataError(MMLError):
    """A missing, malformed or undecodable data file: the message names the file and the reason."""


class CheckpointError(MMLError):
    """A checkpoint that cannot be loaded into a model: the message names the file and the tensor."""
