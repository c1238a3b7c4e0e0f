"""Exceptions with messages that name the file or value at fault."""

import errno
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


class WriteError(DataError):
    """A file could not be written (read-only folder, full disk, ...); names the file and says what to do."""

    def __init__(self, path: str | Path, err: OSError) -> None:
        reason = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            advice = "free some disk space"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            advice = "choose a folder you can write to"
        else:
            advice = "check the folder and the disk"
        super().__init__(path, f"cannot write ({reason}): {advice}")
