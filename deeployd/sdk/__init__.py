"""The Python SDK: `deeployd.Client`."""
