"""Ports: what the services need from the outside world, as Protocols (a cloud provider;
the chain source lives beside its adapter in adapters/chain/source.py). Each has an adapter
under adapters/ and a fake that passes the same contract tests."""
