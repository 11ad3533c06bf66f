"""The `api_event` source: the API's own requests, as items of the org's pipelines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from deeployd.services import Services
from tests.conftest import Org, RunningApi, make_org
from tests.fakes import serve
from tests.fakes.slack import SlackFake
from tests.fakes.sources import create_pipeline, items, sink_destination
from tests.pipeline_helpers import auth, eventually


@pytest.fixture
async def sink() -> AsyncIterator[str]:
    async with serve(SlackFake().app) as url:
        yield url


async def test_real_api_calls_reach_the_matching_pipelines(
    api: RunningApi, org: Org, worker: Services, sink: str
) -> None:
    other = await make_org(api.settings)
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        streaming_gets = await create_pipeline(
            http,
            org.admin_key,
            {"type": "api_event", "paths": ["/api/streaming/*"], "methods": ["GET"]},
            sink_destination(sink),
        )
        everything = await create_pipeline(
            http, org.admin_key, {"type": "api_event"}, sink_destination(sink)
        )
        assert (await http.get("/api/streaming/pipelines")).status_code == 200
        assert (await http.get("/api/me")).status_code == 200
        response = await http.post(f"/api/streaming/pipelines/{everything}/process", json={"x": 1})
        assert response.status_code == 202, response.text
        assert (await http.get(f"/api/streaming/pipelines/{streaming_gets}")).status_code == 200
        assert (await http.get("/api/me", headers=auth(other.admin_key))).status_code == 200
        assert (await http.get("/api/streaming/stats")).status_code == 200  # the last call

        def has_last(log: list[dict]) -> bool:
            return any(i.get("path") == "/api/streaming/stats" for i in log)

        first = await eventually(lambda: items(api.settings, streaming_gets), has_last)
        second = await eventually(lambda: items(api.settings, everything), has_last)
    # The item pushed through /process is in the log as well; the rest are request records.
    assert {"x": 1} in second
    second = [i for i in second if i != {"x": 1}]

    paths_first = [(i["method"], i["path"]) for i in first]
    assert ("GET", "/api/streaming/pipelines") in paths_first
    assert all(m == "GET" and p.startswith("/api/streaming/") for m, p in paths_first)
    # A pipeline never sees requests to its own URLs (no feedback loop).
    assert not any(
        p.startswith(f"/api/streaming/pipelines/{streaming_gets}") for _, p in paths_first
    )

    paths_second = [(i["method"], i["path"]) for i in second]
    assert ("GET", "/api/me") in paths_second
    assert ("GET", f"/api/streaming/pipelines/{streaming_gets}") in paths_second
    assert not any(p.startswith(f"/api/streaming/pipelines/{everything}") for _, p in paths_second)
    # Only this organisation's requests.
    assert all(i["orgId"] == org.id for i in first + second)
    assert sum(1 for _, p in paths_second if p == "/api/me") == 1

    item = next(i for i in second if i["path"] == "/api/me")
    assert item["status"] == 200 and item["method"] == "GET"
    assert item["keyPrefix"] and org.admin_key.startswith(item["keyPrefix"].rstrip("…."))
    assert isinstance(item["latencyMs"], float) and item["ts"].endswith("+00:00")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ({"type": "api_event", "methods": ["FETCH"]}, "source.methods[0]: Input should be"),
        ({"type": "api_event", "paths": ["api/*"]}, "source.paths[0]: must be a path or glob"),
        ({"type": "api_event", "paths": []}, "source.paths: List should have at least 1 item"),
    ],
)
async def test_bad_api_event_config_is_a_422(
    api: RunningApi, org: Org, source: dict, error: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=auth(org.admin_key)) as http:
        response = await http.post(
            "/api/streaming/pipelines",
            json={"name": "a", "source": source, "destination": sink_destination("http://x")},
        )
    assert response.status_code == 422, response.text
    assert any(e.startswith(error) for e in response.json()["errors"]), response.json()
