"""Exceptions shown to users as one-line messages by the CLI."""


class UnmixError(Exception):
    """A user-facing error: the message says what is wrong and what to do."""


class AudioError(UnmixError):
    """Audio that cannot be read, is empty, or has an unsupported layout."""


class WeightsError(UnmixError):
    """Weights that are missing, corrupt, unsafe or do not fit the model."""
