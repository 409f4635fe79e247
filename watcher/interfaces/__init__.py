"""Interfaces: how people reach the product. The `watcher` command (cli.py, with the
bodies of its commands in runner.py) and the web API with its pages (web/)."""
