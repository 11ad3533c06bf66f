"""Data streaming pipelines: the durable item log, the pipeline workflow's helpers, destinations.

Layout (see docs/pipelines.md):
- `ingest`       — append items to a pipeline's log (offsets, dedup, backpressure).
- `destinations` — the `Destination` interface and the built-in webhook/database destinations.
- `config`       — validating a pipeline body (transforms via the engine, source, destination).
- `transforms/`  — the transform engine (pure, deterministic; see docs/pipelines-transforms.md).
- `sources/`     — event-driven sources (agent runs, database changes, API activity, schedules).

This module imports nothing heavy so sources and transforms can import from the package freely.
"""
