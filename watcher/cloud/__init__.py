"""Adapters to the cloud that provisions what was paid for."""
