"""Prometheus metrics shared by the API process."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "deeployd_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "deeployd_http_request_seconds",
    "Time to the response headers",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SSE_SUBSCRIBERS = Gauge("deeployd_sse_subscribers", "Live SSE subscribers in this process")
SSE_SLOW_CONSUMERS = Counter(
    "deeployd_sse_slow_consumers_total", "SSE readers cut off for falling too far behind"
)
