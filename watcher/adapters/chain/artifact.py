"""The compiled CloudToken contract (ABI and bytecode), shipped so Python never needs Node."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# A wheel carries the artifact inside the package (see pyproject.toml); a source checkout
# or an editable install reads the committed file from contracts/build.
_PACKAGED = "CloudToken.json"
_SOURCE_TREE = Path(__file__).resolve().parents[3] / "contracts" / "build" / "CloudToken.json"


@dataclass(frozen=True)
class ContractArtifact:
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def cloud_token_artifact() -> ContractArtifact:
    packaged = resources.files("watcher.adapters.chain").joinpath(_PACKAGED)
    text = packaged.read_text("utf-8") if packaged.is_file() else _SOURCE_TREE.read_text("utf-8")
    data = json.loads(text)
    return ContractArtifact(abi=data["abi"], bytecode=data["bytecode"])
