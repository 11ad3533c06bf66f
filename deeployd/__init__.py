"""Deeployd Streaming: durable agent runs and data pipelines, streamed live over SSE."""

from deeployd.sdk.client import Client, StreamEvent

__all__ = ["Client", "StreamEvent"]
__version__ = "0.1.0"
