"""The committed artifact is what the committed source compiles to."""

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT
from watcher.adapters.chain.artifact import cloud_token_artifact


def test_committed_artifacts_are_not_stale(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed to recompile the contracts"
    subprocess.run(
        [node, str(ROOT / "contracts" / "compile.js"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    built = sorted(path.name for path in tmp_path.glob("*.json"))
    committed_names = sorted(path.name for path in (ROOT / "contracts" / "build").glob("*.json"))
    assert built == committed_names
    assert {"CloudToken.json", "Checkout.json", "Market.json", "Auction.json"} <= set(built)
    for name in built:
        committed = ROOT / "contracts" / "build" / name
        assert (tmp_path / name).read_bytes() == committed.read_bytes(), (
            f"contracts/build/{name} is stale: run `make contracts` and commit the result"
        )


def test_artifact_settings_and_loader() -> None:
    data = json.loads((ROOT / "contracts" / "build" / "CloudToken.json").read_text())
    assert data["compiler"]["evmVersion"] == "shanghai"
    assert data["compiler"]["version"].startswith("0.8.")
    artifact = cloud_token_artifact()
    assert artifact.bytecode == data["bytecode"]
    # Creation code starts by pushing (PUSH1 or, with immutables, PUSH2) its first word.
    assert artifact.bytecode.startswith(("0x60", "0x61"))
    names = {item.get("name") for item in artifact.abi}
    assert {"transfer", "balanceOf", "approve", "transferFrom", "Transfer"} <= names
