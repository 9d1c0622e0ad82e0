"""Benchmark harness: latency statistics, power meters, energy per frame, result records.

Nothing heavy is imported here; runners, onnxruntime and torch are loaded by the functions that
need them.
"""
