"""Where creative images live: an interface, and local disk under the instance folder by default."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from flask import current_app

_KEY_RE = re.compile(r"[a-z0-9]{8,64}\.(png|jpeg|gif|webp)")


class CreativeStorage(Protocol):
    """Stores image bytes under a key; S3 or similar can implement the same three calls."""

    def save(self, key: str, data: bytes) -> None: ...
    def load(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...


class LocalDiskStorage:
    """Files in ``<instance>/creatives`` (or CREATIVES_DIR), written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):  # keys are ours: never a path from input
            raise ValueError("bad storage key")
        return self.root / key

    def save(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def load(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def get_storage() -> CreativeStorage:
    """The configured storage (CREATIVES_STORAGE may hold a ready object; tests use tmp dirs)."""
    configured = current_app.config.get("CREATIVES_STORAGE")
    if configured is not None:
        return configured  # type: ignore[no-any-return]
    root = current_app.config.get("CREATIVES_DIR") or os.path.join(current_app.instance_path, "creatives")
    return LocalDiskStorage(root)
