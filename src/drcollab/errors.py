"""Exceptions with messages that name the file or value at fault."""

from pathlib import Path


class DrcollabError(Exception):
    """Base class of every error drcollab raises on purpose."""


class DataError(DrcollabError):
    """Bad input data: a missing, unreadable or inconsistent file or label.

    The message always starts with the offending path so a user can find it.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(DrcollabError):
    """An invalid configuration value; the message names the field."""


class TrainingError(DrcollabError):
    """Training cannot continue (e.g. a non-finite loss); names stage, epoch and step."""
