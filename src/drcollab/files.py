"""Writing files so that a crash never leaves a half-written one, and cleaning up after one that did.

Every file is written to our own temporary file beside its target (``.<name>.<pid>.tmp``) and renamed
into place. The temporary file is created with ``open()``, so the final file gets the usual mode
(0666 minus the umask, e.g. 0644), and a temporary file orphaned by a crash (SIGKILL, power loss) has a
name :func:`remove_stale_temps` recognises on the next start.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drcollab.errors import WriteError

# Ours, and those of the Rust ``tempfile`` crate (``.tmpAbC123``) that safetensors' save_file left behind.
STALE_TEMP = re.compile(r"^\..+\.tmp$|^\.tmp[A-Za-z0-9]{6}$")


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` (read-only folder, full disk, ...) into a :class:`WriteError` naming ``path``."""
    try:
        yield
    except OSError as err:
        raise WriteError(path, err) from err


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, flushed to disk, and a rename.

    Raises:
        WriteError: the folder cannot be created or written (nothing is left behind).
    """
    path = Path(path)
    tmp = temp_path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files a killed writer left in ``folder`` (not below it); returns what was removed.

    Only call this where no other process is writing (a run folder at the start of its run).
    """
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(".*") if p.is_file() and STALE_TEMP.match(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def cache_home() -> Path:
    """Where drcollab keeps what it can rebuild (measured engine choices, exported graphs): ``$DRCOLLAB_CACHE_HOME``,
    else ``$XDG_CACHE_HOME/drcollab``, else ``~/.cache/drcollab``."""
    if os.environ.get("DRCOLLAB_CACHE_HOME"):
        return Path(os.environ["DRCOLLAB_CACHE_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "drcollab"
