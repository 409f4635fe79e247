"""The compiled CloudToken contract (ABI and bytecode), shipped so Python never needs Node."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# A wheel carries the artifacts inside the package (see pyproject.toml); a source checkout
# or an editable install reads the committed files from contracts/build.
_SOURCE_TREE = Path(__file__).resolve().parents[3] / "contracts" / "build"


@dataclass(frozen=True)
class ContractArtifact:
    abi: list[dict[str, Any]]
    bytecode: str


@cache
def contract_artifact(name: str) -> ContractArtifact:
    """A compiled contract of contracts/build (CloudToken, Checkout)."""
    packaged = resources.files("watcher.adapters.chain").joinpath(f"{name}.json")
    source = _SOURCE_TREE / f"{name}.json"
    text = packaged.read_text("utf-8") if packaged.is_file() else source.read_text("utf-8")
    data = json.loads(text)
    return ContractArtifact(abi=data["abi"], bytecode=data["bytecode"])


def cloud_token_artifact() -> ContractArtifact:
    return contract_artifact("CloudToken")
