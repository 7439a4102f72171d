"""Files only the service's own user may read, created once even by processes starting at the same moment.

Imported by the settings module, so nothing here may import Django."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def create_once(path: Path, text: str) -> None:
    """Write `text` to `path` unless a file is there already. Processes starting at once on a new installation
    (the web workers, the worker) each find no file and would each write their own: the last one would replace
    what another process had already read. Written privately (0600) beside the file, then linked to its name,
    which fails if another process's is there: that one is then the file, whole, and nobody else could read it
    in between."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        with contextlib.suppress(FileExistsError):  # another process made it first: its file is the one
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
