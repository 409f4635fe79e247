"""Where `watcher market` keeps what opens a sealed bid or a witness's report (the value and
its salt) between the commitment and the reveal.

Lose it and the bid cannot be revealed (its deposit is forfeited) or the report counts as
silence (its penalty is taken), so it is written, flushed and renamed into place before the
commitment is sent, readable by its owner only. It moves no funds: it is not a key.

A file keeps every value committed from one signer to one contract, oldest first: a report
committed again replaces the one on chain only once it is mined, so the reveal picks the
value whose commitment the chain holds. The file goes once the reveal is mined.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from watcher.domain.errors import UserError
from watcher.runtime.config import data_home


def sealed_root() -> Path:
    """$XDG_DATA_HOME/watcher/sealed (else ~/.local/share/watcher/sealed)."""
    return data_home() / "watcher" / "sealed"


class SealedSecrets:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else sealed_root()

    def path(self, chain_id: int, contract: str, signer: str) -> Path:
        return self.root / str(chain_id) / contract.lower() / f"{signer.lower()}.json"

    def load(self, chain_id: int, contract: str, signer: str) -> list[dict[str, Any]]:
        """Every value kept for this signer and contract, oldest first (none: [])."""
        path = self.path(chain_id, contract, signer)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}") from None
        try:
            entries = json.loads(text)["entries"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not what `watcher market` wrote") from None
        if not isinstance(entries, list):
            raise UserError(f"{path} is not what `watcher market` wrote")
        return entries

    def add(self, chain_id: int, contract: str, signer: str, record: dict[str, Any]) -> Path:
        """Keep `record` beside the values kept before, before its commitment is sent."""
        entries = [*self.load(chain_id, contract, signer), record]
        return self._write(chain_id, contract, signer, {"entries": entries})

    def remove(self, chain_id: int, contract: str, signer: str) -> None:
        """After the reveal is mined: nothing is left to open."""
        self.path(chain_id, contract, signer).unlink(missing_ok=True)

    def _write(self, chain_id: int, contract: str, signer: str, record: dict[str, Any]) -> Path:
        path = self.path(chain_id, contract, signer)
        temporary = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary.unlink(missing_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            raise UserError(f"cannot keep the sealed value in {path}: {exc.strerror}") from None
        return path
