"""The last-known-good snapshot on disk, so a gateway can start while Consul is down.

Written atomically (a temporary file, then ``os.replace``), so a reader never sees half a file
even when several gateway workers write at once.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from discovery.model import Instance, Service

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def save(path: Path, services: Mapping[str, Service]) -> None:
    """Write *services* to *path* atomically; a failure is logged, never raised."""
    data = {
        "version": FORMAT_VERSION,
        "services": {
            name: [i.to_dict() for i in svc.instances] for name, svc in sorted(services.items())
        },
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write the snapshot file %s: %s", path, exc)


def load(path: Path) -> dict[str, Service]:
    """Read a snapshot written by :func:`save`; a missing or unreadable file gives ``{}``."""
    try:
        data = json.loads(path.read_text())
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown format version {data.get('version')!r}")
        return {
            name: Service.of(name, [Instance.from_dict(i) for i in instances])
            for name, instances in data["services"].items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the snapshot file %s: %s", path, exc)
        return {}
