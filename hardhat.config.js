// Hardhat 2 runs only the local dev chain (`watcher devchain`); contracts are compiled by
// contracts/compile.js with solc-js, so Hardhat never downloads a compiler.
"use strict";

module.exports = {
  // No Solidity sources for Hardhat: keep its compile task away from contracts/.
  paths: { sources: "./contracts/build", cache: "./.hardhat/cache", artifacts: "./.hardhat/artifacts" },
  networks: {
    hardhat: {
      // The thesis's dev network id; `--dev-account N` is only honoured on this chain.
      chainId: 1337,
      hardfork: "shanghai",
    },
  },
};
