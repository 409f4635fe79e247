"""The checkout page calls the contracts by hand-written selectors (no JS library on the
page): each must be the keccak of the signature written beside it, and that function must
be in the compiled contract's ABI."""

from __future__ import annotations

import re

from eth_utils import keccak

from tests.conftest import ROOT
from watcher.adapters.chain.artifact import contract_artifact

PAGE = ROOT / "watcher" / "interfaces" / "web" / "static" / "common.js"
ENTRY = re.compile(r'^\s*(\w+): "(0x[0-9a-f]{8})", // (\w+\([\w,]*\))$', re.MULTILINE)


def signatures(abi: list[dict[str, object]]) -> set[str]:
    return {
        f"{item['name']}({','.join(str(i['type']) for i in item['inputs'])})"  # type: ignore[attr-defined]
        for item in abi
        if item.get("type") == "function"
    }


def test_every_selector_is_its_signature_and_in_an_abi() -> None:
    entries = ENTRY.findall(PAGE.read_text("utf-8"))
    assert len(entries) == 8, entries
    known = signatures(contract_artifact("CloudToken").abi) | signatures(
        contract_artifact("Checkout").abi
    )
    for name, selector, signature in entries:
        assert signature.startswith(f"{name}("), (name, signature)
        assert selector == "0x" + keccak(text=signature)[:4].hex(), signature
        assert signature in known, signature
