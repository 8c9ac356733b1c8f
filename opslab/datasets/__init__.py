"""Datasets: the store (layout, manifest, fingerprint), the synthetic generator, imports, quality checks and instrument files."""
