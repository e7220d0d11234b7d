"""Dagster-free orchestration shared by the assets and headless runs: what to request, once, and ahead."""
