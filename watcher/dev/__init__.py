"""Dev tools, apart from the runtime: the Hardhat dev chain (`watcher devchain`), moto's EC2
server as a stand-in for AWS, and `watcher demo`, which runs both.

Nothing outside this package imports it (tests/unit/test_dev_tools_apart.py checks), so a production
install needs neither Node nor moto; moto's server comes with the `demo` extra, which `make
demo` and `make test` install. The dev accounts' keys stay in
`watcher.adapters.chain.dev_accounts`: the runtime's `--dev-account` signing option needs them.
"""
