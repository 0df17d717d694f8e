"""The one home of file handling: outputs checked before any work, atomic writes, torn-line reading, sha256.

Every command that writes a file the user named goes through here, so that a bad output path ends with one
line and exit code 2 before a model loads or a dataset is read, an output never replaces its own input, and
a failed write leaves no temporary file behind. Everything else that writes a file or a folder whole, reads
back a JSONL file a killed run may have torn, or hashes files uses the helpers below instead of its own copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from neko.errors import NekoError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file (links and relative paths resolved)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def write_error(path: str | os.PathLike, exc: OSError) -> NekoError:
    """The one-line error of an output that could not be written."""
    reason = exc.strerror or type(exc).__name__
    return NekoError(f"cannot write {path}: {reason}")


def check_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), what: str = "output"
) -> Path:
    """``path`` as a Path, after checking that it can be an output file; NekoError (one line) otherwise.

    Refused: one of ``inputs`` (``-`` and None are skipped), an existing folder, and a path below a file.
    Folders that do not exist yet are created.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and str(source) != "-" and same_file(path, source):
            raise NekoError(
                f"{what} {path} is also the input: writing it would destroy the input; name another {what}"
            )
    if path.is_dir():
        raise NekoError(f"{what} {path} is a folder: name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def remove_quietly(*paths: Path) -> None:
    """Delete files that a failed run created; a file already gone is fine."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *, binary: bool = False
) -> Iterator[IO]:
    """A handle on ``PATH.tmp`` (text, or bytes when ``binary``) that becomes ``path`` when the block ends
    without an error.

    On any error (or Ctrl-C) the temporary file is removed and ``path`` is left as it was; an OSError
    becomes a one-line NekoError naming ``path``.
    """
    path = check_output(path, inputs)
    tmp = path.with_name(path.name + ".tmp")
    try:
        handle = open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        remove_quietly(tmp)
        raise


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` whole or not at all; returns ``path``."""
    with atomic_output(path, binary=isinstance(data, bytes)) as out:
        out.write(data)
    return Path(path)


def replace_folder(work: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder ``work`` to ``target``, replacing an older ``target``; readers see no
    folder or a complete one, never a half-written one."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    os.replace(work, target)
    return target


def cut_torn_line(path: str | os.PathLike) -> bytes:
    """The complete lines of ``path`` (bytes up to its last newline). A last line without its newline (the
    writer was killed while writing it) is cut off the file, so that appending resumes on a line boundary."""
    data = Path(path).read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    return complete


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(path: str | os.PathLike) -> str:
    """sha256 over the relative names and bytes of every file in a folder (sorted)."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()
