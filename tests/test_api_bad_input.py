"""Input a client can send that PostgreSQL or JSON cannot hold: a 422 naming the field, never a
500, and never a stored row that no longer reads back (the reproductions the fuzzer found)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.input_guard import parse_items_body
from deeployd.storable import find_unstorable
from tests.agent_support import auth, scripted_agent
from tests.conftest import Org, RunningApi
from tests.pipeline_helpers import query

PIPELINE = {
    "name": "ingest edges",
    "source": {"type": "webhook"},
    "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/sink"}},
}


def _client(api: RunningApi, org: Org) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, headers=auth(org), timeout=30)


def _raw(body: str) -> dict[str, Any]:
    """A JSON body sent byte for byte (escapes such as \\u0000 and 1e400 kept as written)."""
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


def _refused_at(response: httpx.Response, *loc: str | int) -> str:
    assert response.status_code == 422, (response.status_code, response.text)
    body = response.json()
    assert [list(loc)] == [e["loc"] for e in body["detail"]], body
    return str(body["errors"][0])


async def _pipeline(http: httpx.AsyncClient) -> str:
    created = await http.post("/api/streaming/pipelines", json=PIPELINE)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_offsets_and_ids_beyond_postgres_integers_are_422(api: RunningApi, org: Org) -> None:
    async with _client(api, org) as http:
        pipeline_id = await _pipeline(http)
        for params in ({"offset": 2**63}, {"limit": 1, "offset": 2**63 - 1}, {"offset": 2**31}):
            response = await http.get("/api/streaming/pipelines", params=params)
            assert "query.offset" in _refused_at(response, "query", "offset")
        # The largest offset the schema allows simply pages past the end.
        last = await http.get("/api/streaming/pipelines", params={"offset": 2**31 - 1})
        assert last.status_code == 200, last.text
        assert last.json()["items"] == [] and last.json()["total"] == 1

        too_far = {"after": 2**63}
        _refused_at(await http.get("/api/events", params=too_far), "query", "after")
        dead = f"/api/streaming/pipelines/{pipeline_id}/dead-letters"
        _refused_at(await http.get(dead, params=too_far), "query", "after")
        assert (await http.get(dead, params={"after": 2**63 - 1})).json()["items"] == []


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/a2a/tasks", "contextId"),
        ("/api/events", "streams"),
        ("/api/conversations", "agentId"),
        ("/api/runs", "agentId"),
    ],
)
async def test_nul_in_a_query_filter_is_422_naming_it(
    api: RunningApi, org: Org, path: str, name: str
) -> None:
    async with _client(api, org) as http:
        response = await http.get(f"{path}?{name}=%00")
        message = _refused_at(response, "query", name)
        assert "NUL" in message
        assert (await http.get(f"{path}?{name}=plain")).status_code == 200


async def test_nul_in_a_path_parameter_is_422(api: RunningApi, org: Org) -> None:
    async with _client(api, org) as http:
        _refused_at(await http.get("/api/agents/agt%00x"), "path", "agent_id")
        _refused_at(await http.get("/api/streaming/pipelines/%00/metrics"), "path", "pipeline_id")


async def test_unstorable_strings_and_numbers_in_json_bodies_are_422_and_store_nothing(
    api: RunningApi, org: Org
) -> None:
    async with _client(api, org) as http:
        agent = (await http.post("/api/agents", json=scripted_agent([]))).json()
        cases = [
            ("/api/a2a/tasks", json.dumps({"agentId": agent["id"], "message": "x\u0000"})),
            ("/api/agents", '{"name": "\\ud800", "provider": "scripted", "model": "m"}'),
            (
                "/api/agents",
                '{"name": "a", "provider": "scripted", "model": "m",'
                ' "providerOptions": {"script": [], "k\\u0000": 1}}',
            ),
            (
                "/api/command-center/alert-rules",
                '{"name": "r", "metric": "run_cost", "comparator": "gt", "threshold": 1e400}',
            ),
            (
                "/api/command-center/alert-rules",
                '{"name": "r", "metric": "run_cost", "comparator": "gt", "threshold": NaN}',
            ),
        ]
        expected = [
            ("body", "message"),
            ("body", "name"),
            ("body", "providerOptions", "k\ufffd"),  # the key is echoed encodable
            ("body", "threshold"),
            ("body", "threshold"),
        ]
        for (path, body), loc in zip(cases, expected, strict=True):
            _refused_at(await http.post(path, **_raw(body)), *loc)
        assert [a["id"] for a in (await http.get("/api/agents")).json()] == [agent["id"]]
        assert (await http.get("/api/a2a/tasks")).json()["tasks"] == []
        assert (await http.get("/api/command-center/alert-rules")).json() == []


async def test_a2a_json_rpc_refuses_nul_as_invalid_params(api: RunningApi, org: Org) -> None:
    """The A2A endpoints are outside the OpenAPI schema: the fuzzer does not reach them."""
    async with _client(api, org) as http:
        agent = (await http.post("/api/agents", json=scripted_agent([]))).json()
        body = (
            '{"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": '
            '{"kind": "message", "messageId": "m1", "role": "user", '
            '"parts": [{"kind": "text", "text": "a\\u0000b"}]}}}'
        )
        answer = await http.post(f"/a2a/agents/{agent['id']}", **_raw(body))
        assert answer.status_code == 200, answer.text
        error = answer.json()["error"]
        assert error["code"] == -32602, error  # invalid params, not an internal error
        assert error["message"].startswith("message.parts.0.text: must not contain the NUL")
        assert (await http.get("/api/a2a/tasks")).json()["tasks"] == []


async def test_patch_agent_with_null_on_a_required_field_is_422_and_keeps_the_row(
    api: RunningApi, org: Org
) -> None:
    async with _client(api, org) as http:
        created = await http.post(
            "/api/agents", json=scripted_agent([{"text": "hi"}], temperature=0.5)
        )
        agent = created.json()
        url = f"/api/agents/{agent['id']}"
        for field in ("provider", "providerOptions", "name", "model", "tools", "systemPrompt"):
            _refused_at(await http.patch(url, json={field: None}), "body", field)
        fetched = await http.get(url)
        assert fetched.status_code == 200 and fetched.json() == agent
        listed = await http.get("/api/agents")
        assert listed.status_code == 200 and listed.json() == [agent]
        # `null` still clears what is optional.
        cleared = await http.patch(url, json={"temperature": None})
        assert cleared.status_code == 200 and cleared.json()["temperature"] is None
        assert cleared.json()["providerOptions"] == agent["providerOptions"]


async def test_patch_alert_rule_with_null_or_empty_agent_id_is_422_and_keeps_the_rule(
    api: RunningApi, org: Org
) -> None:
    async with _client(api, org) as http:
        # The longest window the schema allows fits the stored BIGINT.
        created = await http.post(
            "/api/command-center/alert-rules",
            json={
                "name": "slow",
                "metric": "run_duration_ms",
                "comparator": "gt",
                "threshold": 10,
                "windowMs": 30 * 24 * 3600 * 1000,
            },
        )
        assert created.status_code == 201, created.text
        url = f"/api/command-center/alert-rules/{created.json()['id']}"
        for field in ("name", "metric", "comparator", "threshold", "enabled"):
            _refused_at(await http.patch(url, json={field: None}), "body", field)
        _refused_at(await http.patch(url, json={"agentIds": [""]}), "body", "agentIds")
        listed = await http.get("/api/command-center/alert-rules")
        assert listed.status_code == 200, listed.text
        assert [(r["name"], r["metric"], r["agentIds"]) for r in listed.json()] == [
            ("slow", "run_duration_ms", None)
        ]
        cleared = await http.patch(url, json={"windowMs": None})
        assert cleared.status_code == 200 and cleared.json()["windowMs"] is None


async def _stored_items(api: RunningApi, pipeline_id: str) -> list[Any]:
    rows = await query(
        api.settings,
        'SELECT value FROM pipeline_items WHERE pipeline_id = %s ORDER BY "offset"',
        (pipeline_id,),
    )
    return [row[0] for row in rows]


async def test_ingest_refuses_non_finite_numbers_naming_the_item(api: RunningApi, org: Org) -> None:
    async with _client(api, org) as http:
        pipeline_id = await _pipeline(http)
        base = f"/api/streaming/pipelines/{pipeline_id}"
        good = [json.dumps({"n": i}) for i in range(100)]
        poisoned = [*good[:3], '{"n": 3, "x": {"big": 1e400}}', *good[4:]]
        array = "[" + ",".join(poisoned) + "]"
        _refused_at(await http.post(f"{base}/batch", **_raw(array)), "body", 3, "x", "big")
        wrapped = '{"items": ' + array + "}"
        message = _refused_at(
            await http.post(f"{base}/batch", **_raw(wrapped)), "body", "items", 3, "x", "big"
        )
        assert message.startswith("items[3].x.big: must be a finite number")
        _refused_at(await http.post(f"{base}/process", **_raw('{"v": NaN}')), "body", "v")
        hook = f"/api/streaming/hooks/{pipeline_id}"
        _refused_at(await http.post(hook, **_raw('[{}, {"v": [-Infinity]}]')), "body", 1, "v", 0)
        assert await _stored_items(api, pipeline_id) == []  # all or none

        # The same batch without the bad number is accepted whole.
        accepted = await http.post(f"{base}/batch", **_raw("[" + ",".join(good) + "]"))
        assert accepted.status_code == 202 and accepted.json()["accepted"] == 100
        assert await _stored_items(api, pipeline_id) == [{"n": i} for i in range(100)]


async def test_ingest_keeps_nul_and_lone_surrogates_verbatim(api: RunningApi, org: Org) -> None:
    """The item log is a `json` column: such strings are legitimate item data, stored as sent
    (what a destination cannot take is its dead letter, not an ingest error)."""
    async with _client(api, org) as http:
        pipeline_id = await _pipeline(http)
        base = f"/api/streaming/pipelines/{pipeline_id}"
        one = await http.post(f"{base}/process", **_raw('{"s": "a\\u0000b", "\\ud800": 1}'))
        assert one.status_code == 202, one.text
        batch = await http.post(f"{base}/batch", **_raw('[{"s": "\\udc00"}, {"big": 1e300}]'))
        assert batch.status_code == 202, batch.text
        hook = await http.post(f"/api/streaming/hooks/{pipeline_id}", **_raw('{"s": "\\u0000"}'))
        assert hook.status_code == 202, hook.text
        assert await _stored_items(api, pipeline_id) == [
            {"s": "a\x00b", "\ud800": 1},
            {"s": "\udc00"},
            {"big": 1e300},
            {"s": "\x00"},
        ]


# --- the checks themselves, over any JSON value ---------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(exclude_categories=())),
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=4), children, max_size=4
        ),
    ),
    max_leaves=20,
)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    return []


def _storable_text(value: Any) -> bool:
    """No NUL, and encodable as UTF-8 (which no lone surrogate is)."""
    for text in _strings(value):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if "\x00" in text:
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values)
def test_an_ingest_body_is_refused_exactly_when_it_holds_a_non_finite_number(value: Any) -> None:
    from fastapi.exceptions import RequestValidationError

    text = json.dumps(value)  # Python writes NaN/Infinity, and escapes every other string
    try:
        parsed = parse_items_body(text.encode())
    except RequestValidationError as exc:
        assert _has_non_finite(value)
        (error,) = exc.errors()
        assert error["loc"][0] == "body" and "finite" in error["msg"]
    else:
        assert not _has_non_finite(value)
        assert parsed == value


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_a_body_is_flagged_exactly_when_json_or_postgres_cannot_carry_it(value: Any) -> None:
    found = find_unstorable(value, ("body",))
    assert (found is None) == (not _has_non_finite(value) and _storable_text(value))
    if found is not None:
        loc, _ = found
        assert loc[0] == "body"


_items = st.dictionaries(
    st.text(st.characters(exclude_categories=()), max_size=4), _json_values, max_size=4
)


async def test_any_json_item_is_either_stored_exactly_or_refused_naming_its_place(
    api: RunningApi, org: Org
) -> None:
    """Generated items through the real ingest routes: stored as sent, or (only for a
    non-finite number) a 422 at that number's path, with nothing stored."""
    async with _client(api, org) as http:
        pipeline_id = await _pipeline(http)

    def check_all() -> None:
        url = f"/api/streaming/pipelines/{pipeline_id}"
        with (
            httpx.Client(base_url=api.url, headers=auth(org), timeout=30) as http,
            psycopg.connect(api.settings.require_database_url(), autocommit=True) as db,
        ):

            @settings(max_examples=40, deadline=None, database=None, derandomize=True)
            @given(items=st.lists(_items, min_size=1, max_size=3), as_batch=st.booleans())
            def ingest(items: list[dict[str, Any]], as_batch: bool) -> None:
                body = json.dumps(items if as_batch else items[0])
                response = http.post(f"{url}/batch" if as_batch else f"{url}/process", **_raw(body))
                sent = items if as_batch else items[:1]
                if any(_has_non_finite(item) for item in sent):
                    assert response.status_code == 422, response.text
                    (error,) = response.json()["detail"]
                    assert error["loc"][0] == "body" and "finite" in error["msg"]
                    return
                assert response.status_code == 202, response.text
                offsets = response.json()["offsets"]
                stored = db.execute(
                    'SELECT value FROM pipeline_items WHERE pipeline_id = %s AND "offset" = ANY(%s) '
                    'ORDER BY "offset"',
                    (pipeline_id, offsets),
                ).fetchall()
                assert [row[0] for row in stored] == sent

            ingest()

    await asyncio.to_thread(check_all)
