"""One structured line per event: `event key=value ...`, values quoted when needed."""

from __future__ import annotations

import logging
import sys
from typing import Any


def fields(event: str, **values: Any) -> str:
    parts = [event]
    for key, value in values.items():
        text = "null" if value is None else str(value)
        if not text or any(c.isspace() or c in '"=' for c in text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("watcher")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
