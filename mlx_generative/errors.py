"""The errors this package raises on purpose.

Everything derives from `MlxGenerativeError`, so the CLI can catch one class and
print its message as a single line, while real bugs still surface as tracebacks.
"""


class MlxGenerativeError(Exception):
    """Base of every error this package raises on purpose; the CLI prints its message as one line."""


class DataError(MlxGenerativeError):
    """A data file or data set is missing, malformed or inconsistent."""


class IdxError(DataError):
    """An IDX file is malformed; the message names the file and what is wrong."""


class DatasetNotFoundError(DataError):
    """No copy of a data set was found; the message lists where we looked and how to get it."""


class DownloadError(DataError):
    """Every mirror failed; the message lists each mirror and why."""


class CheckpointError(MlxGenerativeError):
    """A checkpoint is missing, malformed or does not match the model."""


class UsageError(MlxGenerativeError):
    """A bad command-line argument or API argument."""
