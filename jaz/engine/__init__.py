"""The heart of jaz: jobnet model, flow, store, executors and the service layer.

Nothing here imports a UI, HTTP or SSH library (tests/test_layering.py checks it).
"""
