"""Runtime: settings, keys, and the wiring that builds services with their adapters
(service.py); audit.py checks a running setup against the chain and the cloud."""
