"""`client.streaming`: data pipelines — create, control, push items, metrics, checkpoints,
dead letters and the live stream (mirrors the TypeScript SDK's `client.streaming`)."""

from __future__ import annotations

from typing import Any

from deeployd.sdk.resource import Resource
from deeployd.sdk.sse import EventStream

_BASE = "/api/streaming"


class Streaming(Resource):
    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await self._object(method, f"{_BASE}{path}", **kwargs)

    # --- pipelines ------------------------------------------------------------------------

    async def create_pipeline(
        self,
        *,
        name: str,
        source: dict[str, Any],
        destination: dict[str, Any],
        transforms: list[dict[str, Any]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "source": source,
            "transforms": transforms or [],
            "destination": destination,
        }
        if options is not None:
            body["options"] = options
        return await self._call("POST", "/pipelines", json=body)

    async def list_pipelines(
        self, *, limit: int = 50, offset: int = 0, status: str | None = None
    ) -> dict[str, Any]:
        """One page: `{items, total, limit, offset}`."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return await self._call("GET", "/pipelines", params=params)

    async def get_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/pipelines/{pipeline_id}")

    async def update_pipeline(self, pipeline_id: str, **config: Any) -> dict[str, Any]:
        """Replace the configuration (name, source, transforms, destination, options)."""
        return await self._call("PUT", f"/pipelines/{pipeline_id}", json=config)

    async def delete_pipeline(self, pipeline_id: str) -> None:
        await self._call("DELETE", f"/pipelines/{pipeline_id}")

    async def _control(self, pipeline_id: str, action: str) -> dict[str, Any]:
        return await self._call("POST", f"/pipelines/{pipeline_id}/{action}")

    async def start_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self._control(pipeline_id, "start")

    async def pause_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self._control(pipeline_id, "pause")

    async def resume_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self._control(pipeline_id, "resume")

    async def stop_pipeline(self, pipeline_id: str) -> dict[str, Any]:
        return await self._control(pipeline_id, "stop")

    # --- items ----------------------------------------------------------------------------

    async def process(self, pipeline_id: str, item: dict[str, Any]) -> dict[str, Any]:
        """Push one item; returns `{accepted, offsets, firstOffset, lastOffset}` once durable.
        Raises ApiError(429) when the pipeline is backpressured (see its `Retry-After`)."""
        return await self._call("POST", f"/pipelines/{pipeline_id}/process", json=item)

    async def batch(self, pipeline_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Push up to 10,000 items in one durable append."""
        return await self._call("POST", f"/pipelines/{pipeline_id}/batch", json=items)

    # --- observability --------------------------------------------------------------------

    async def get_pipeline_metrics(self, pipeline_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/pipelines/{pipeline_id}/metrics")

    async def get_pipeline_health(self, pipeline_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/pipelines/{pipeline_id}/health")

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    def stream(self, pipeline_id: str, *, last_event_id: int | None = None) -> EventStream:
        """Live `status`, `metrics`, `delivery_failed`, ... events; resumes on reconnect."""
        return self._client.stream(
            f"{_BASE}/pipelines/{pipeline_id}/stream", last_event_id=last_event_id
        )

    # --- checkpoints ----------------------------------------------------------------------

    async def create_checkpoint(self, pipeline_id: str) -> dict[str, Any]:
        """Snapshot the pipeline's state; returns `{id, offset}`."""
        return await self._call("POST", f"/pipelines/{pipeline_id}/checkpoints")

    async def list_checkpoints(self, pipeline_id: str) -> list[dict[str, Any]]:
        result: dict[str, Any] = await self._call("GET", f"/pipelines/{pipeline_id}/checkpoints")
        return list(result["items"])

    async def restore_checkpoint(self, pipeline_id: str, checkpoint_id: str) -> dict[str, Any]:
        return await self._call(
            "POST", f"/pipelines/{pipeline_id}/checkpoints/{checkpoint_id}/restore"
        )

    # --- dead letters ---------------------------------------------------------------------

    async def dead_letters(
        self, pipeline_id: str, *, after: int = 0, limit: int = 100, include_replayed: bool = False
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if include_replayed:
            params["includeReplayed"] = "true"
        return await self._call("GET", f"/pipelines/{pipeline_id}/dead-letters", params=params)

    async def replay_dead_letters(self, pipeline_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/pipelines/{pipeline_id}/dead-letters/replay")
