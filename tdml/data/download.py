"""Locate a catalog file in the data folder, or download it with a checksum check."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tdml.data.catalog import DatasetSpec
from tdml.errors import DataError

log = logging.getLogger(__name__)


def data_dir() -> Path:
    """``$TDML_DATA_DIR`` or the per-user cache folder (``$XDG_CACHE_HOME/tdml/data``)."""
    env = os.environ.get("TDML_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tdml" / "data"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` (http(s) or file://) to ``dest`` atomically; verify ``sha256`` if given.

    A checksum mismatch leaves nothing at ``dest`` and raises DataError.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        got = sha256_of(tmp)
        if sha256 and got != sha256:
            raise DataError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}. "
                f"The download is corrupt or the upstream file changed; nothing was saved to {dest}."
            )
        os.replace(tmp, dest)
        log.info("downloaded %s -> %s (sha256 %s)", url, dest, got)
        return dest
    except (urllib.error.URLError, OSError) as e:
        raise DataError(
            f"could not download {url}: {e}. Without network access, put the file at {dest} "
            f"(or set TDML_DATA_DIR to a folder that contains it)."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def resolve(spec: DatasetSpec, directory: Path | None = None, allow_download: bool = True) -> Path:
    """Path of the catalog file: found in the data folder, else downloaded (and cached) there."""
    directory = directory or data_dir()
    path = directory / spec.filename
    if path.is_file():
        got = sha256_of(path) if spec.sha256 else None
        if got and got != spec.sha256:
            raise DataError(
                f"{path} does not match the catalog checksum of {spec.name}: expected sha256 "
                f"{spec.sha256}, got {got}; delete it to re-download, or pass it with "
                f"--data-path to use it as a custom file."
            )
        return path
    if spec.url and allow_download:
        return download(spec.url, path, spec.sha256)
    if spec.manual:
        raise DataError(f"dataset {spec.name!r} is not in {directory}: "
                        + spec.manual.format(file=spec.filename, dir=directory))
    raise DataError(f"dataset {spec.name!r} is not in {directory} and downloads are disabled")
