#!/usr/bin/env node
// Compiles the contracts with solc-js and writes the artifacts the Python package loads
// (contracts/build/<Name>.json), so running watcher never needs Node.
//
//   node contracts/compile.js [--out DIR]
//
// CloudToken is the product's token, Checkout pays for a drafted order naming it;
// PaymentBatcher only serves tests and benchmarks; market/ is the on-chain marketplace
// (auctions, service agreements, witness committees, made by the Market factory).
// The output is byte-for-byte deterministic for a given solc version and sources:
// tests recompile into a temporary folder and fail if a committed artifact is stale.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
// Source paths under contracts/, without ".sol"; an artifact is named after the contract.
const CONTRACTS = [
  "CloudToken",
  "Checkout",
  "PaymentBatcher",
  "market/Auction",
  "market/ServiceAgreement",
  "market/WitnessCommittee",
  "market/WitnessPool",
  "market/Market",
];
// Shanghai is the newest EVM every dev chain and network we target runs; Cancun's
// opcodes (MCOPY, transient storage) would make the bytecode fail on older nodes.
const EVM_VERSION = "shanghai";
const OPTIMIZER = { enabled: true, runs: 200 };

function parseArgs(argv) {
  let out = path.join(__dirname, "build");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) {
      out = path.resolve(argv[++i]);
    } else {
      console.error(`compile.js: unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
  return { out };
}

function findImports(importPath) {
  const candidates = [
    path.join(__dirname, importPath),
    path.join(ROOT, "node_modules", importPath),
  ];
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `import not found: ${importPath}` };
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const sources = {};
  const outputSelection = {};
  for (const source of CONTRACTS) {
    const name = path.basename(source);
    sources[`${source}.sol`] = { content: fs.readFileSync(path.join(__dirname, `${source}.sol`), "utf8") };
    outputSelection[`${source}.sol`] = { [name]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: { evmVersion: EVM_VERSION, optimizer: OPTIMIZER, outputSelection },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const diagnostic of output.errors || []) {
    console.error(diagnostic.formattedMessage.trimEnd());
  }
  if (errors.length > 0) {
    process.exit(1);
  }
  fs.mkdirSync(out, { recursive: true });
  for (const source of CONTRACTS) {
    const name = path.basename(source);
    const compiled = output.contracts[`${source}.sol`][name];
    const runtimeBytes = compiled.evm.deployedBytecode.object.length / 2;
    // EIP-170: a chain refuses runtime code over 24,576 bytes.
    if (runtimeBytes > 24576) {
      console.error(`${name}: ${runtimeBytes} bytes of runtime code, over EIP-170's 24,576`);
      process.exit(1);
    }
    const artifact = {
      contractName: name,
      sourceName: `contracts/${source}.sol`,
      compiler: { name: "solc-js", version: solc.version(), evmVersion: EVM_VERSION, optimizer: OPTIMIZER },
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
    };
    const file = path.join(out, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
    console.error(
      `compiled ${name} (${runtimeBytes} bytes) with solc ${solc.version()} (evm ${EVM_VERSION}) -> ${path.relative(process.cwd(), file)}`,
    );
  }
}

main();
