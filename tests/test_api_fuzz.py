"""Schemathesis over the whole OpenAPI schema, against the real stack.

Every non-streaming operation of `/openapi.json` is fuzzed (examples, coverage and fuzzing
phases, positive and negative data) with the org's admin key; the run fails on any 5xx and on any
response that does not match the schema. Path parameters are drawn, most of the time, from real
resources made beforehand, so the fuzzer reaches past the 404s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import hypothesis
from hypothesis import strategies as st

from tests.agent_support import auth, scripted_agent
from tests.conftest import Org, RunningApi

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Deterministic by default, so CI sends the same cases every run; DEEPLOYD_FUZZ_SEED=<n> explores
# (randomised generation from that seed), DEEPLOYD_FUZZ_EXAMPLES raises the count per operation.
SEED = os.environ.get("DEEPLOYD_FUZZ_SEED")
EXTRA_CHECKS = [c for c in os.environ.get("DEEPLOYD_FUZZ_CHECKS", "").split(",") if c]
MAX_EXAMPLES = int(os.environ.get("DEEPLOYD_FUZZ_EXAMPLES", "25"))
STREAM_EXAMPLES = max(1, MAX_EXAMPLES // 2)

# Streaming responses never end on their own: they get their own bounded fuzz below.
STREAMING = [
    ("GET", "/api/events/stream"),
    ("GET", "/api/runs/{run_id}/stream"),
    ("GET", "/api/runs/{run_id}/speech"),
    ("GET", "/api/command-center/stream"),
    ("GET", "/api/streaming/pipelines/{pipeline_id}/stream"),
    ("GET", "/api/a2a/tasks/{task_id}/stream"),
    ("POST", "/api/voice/tts/stream"),
]


async def _post(http: httpx.AsyncClient, org: Org, path: str, body: Any) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=auth(org))
    assert response.status_code in (200, 201, 202), (path, response.text)
    return dict(response.json())


async def _seed(http: httpx.AsyncClient, org: Org) -> dict[str, list[str]]:
    """Real resources for the path parameters: one to keep, more for DELETE to take."""
    script = [{"text": "fuzzed answer"}]
    agents = [
        (await _post(http, org, "/api/agents", scripted_agent(script, token_delay_ms=0)))["id"]
        for _ in range(3)
    ]
    conversations = [
        (await _post(http, org, "/api/conversations", {"agentId": agents[0]}))["id"]
        for _ in range(3)
    ]
    run = await _post(
        http, org, f"/api/conversations/{conversations[0]}/messages", {"content": "hello"}
    )
    task = await _post(http, org, "/api/a2a/tasks", {"agentId": agents[0], "message": "hello"})
    rule = await _post(
        http,
        org,
        "/api/command-center/alert-rules",
        {"name": "costly", "metric": "run_cost", "comparator": "gt", "threshold": 1},
    )
    pipeline_body = {
        "name": "fuzzed",
        "source": {"type": "webhook"},
        "destination": {"type": "webhook", "config": {"url": "http://127.0.0.1:9/sink"}},
    }
    pipelines = [
        (await _post(http, org, "/api/streaming/pipelines", pipeline_body))["id"] for _ in range(3)
    ]
    await _post(http, org, f"/api/streaming/pipelines/{pipelines[0]}/batch", [{"n": 1}, {"n": 2}])
    checkpoint = await _post(http, org, f"/api/streaming/pipelines/{pipelines[0]}/checkpoints", {})
    # A running pipeline, so pause, resume, stop and replay get past their 409s.
    await _post(http, org, f"/api/streaming/pipelines/{pipelines[1]}/start", {})
    await _post(http, org, "/api/secrets", {"name": "FUZZ_SECRET", "value": "s3cret"})
    spare_key = await _post(http, org, "/api/keys", {"name": "spare", "scopes": ["read"]})
    return {
        "agent_id": agents,
        "conversation_id": conversations,
        "run_id": [run["runId"]],
        "task_id": [task["id"]],
        "rule_id": [rule["id"]],
        "pipeline_id": pipelines,
        "checkpoint_id": [checkpoint["id"]],
        "name": ["FUZZ_SECRET"],
        "key_id": [spare_key["id"]],
    }


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML too; tables inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _config(api: RunningApi, org: Org, seeds: dict[str, list[str]]) -> str:
    dictionaries = {name: {"values": values} for name, values in seeds.items()}
    parameters = {
        f"path.{name}": {"dictionary": name, "probability": 0.8}
        for name in seeds
        if name != "key_id"
    }
    lines = [
        *([f"seed = {int(SEED)}"] if SEED else []),
        "workers = 1",
        "request-timeout = 30",
        f"headers = {_toml({'Authorization': f'Bearer {org.admin_key}'})}",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        f"deterministic = {'false' if SEED else 'true'}",
        'database = "none"',
        "[phases.examples]\nenabled = true",
        "[phases.coverage]\nenabled = true",
        "[phases.fuzzing]\nenabled = true",
        "[phases.stateful]\nenabled = false",
        "[checks]",
        "enabled = false",
        "not_a_server_error.enabled = true",
        "response_schema_conformance.enabled = true",
        "content_type_conformance.enabled = true",
        *(f"{check}.enabled = true" for check in EXTRA_CHECKS),
        "[dictionaries]",
        *(f"{name} = {_toml(d)}" for name, d in dictionaries.items()),
        "[parameters]",
        *(f"{json.dumps(k)} = {_toml(v)}" for k, v in parameters.items()),
    ]
    for method, path in STREAMING:
        lines += [
            "[[operations]]",
            f"include-name = {json.dumps(f'{method} {path}')}",
            "enabled = false",
        ]
    # Revoking is fuzzed on a spare key only: the admin key the fuzzer uses must keep working.
    lines += [
        "[[operations]]",
        'include-name = "DELETE /api/keys/{key_id}"',
        f"parameters = {_toml({'key_id': seeds['key_id'][0]})}",
    ]
    # The streaming (`stream=true`) and waiting (`wait=true`) variants are covered elsewhere.
    lines += [
        "[[operations]]",
        'include-name = ["GET /api/conversations/{conversation_id}/messages", '
        '"POST /api/conversations/{conversation_id}/messages"]',
        f"parameters = {_toml({'stream': False, 'wait': False})}",
    ]
    return "\n".join(lines) + "\n"


async def test_schemathesis_finds_no_server_error_nor_schema_mismatch(
    api: RunningApi, worker: object, org: Org, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        seeds = await _seed(http, org)
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config(api, org, seeds))
        report = tmp_path / "report.json"
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "--no-color",
            "run",
            f"{api.url}/openapi.json",
            "--report",
            "json",
            "--report-json-path",
            str(report),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,  # its cache directory goes there
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
        text = output.decode(errors="replace")
        print(text)
        assert process.returncode == 0, text[-20000:]
        summary = json.loads(report.read_text())
        print(json.dumps({k: summary[k] for k in ("operations", "test_cases")}, indent=1))

        # The fuzzer's key still works and every seeded agent still reads back.
        listed = await http.get("/api/agents", headers=auth(org))
        assert listed.status_code == 200, listed.text


# --- streaming endpoints: a bounded fuzz of their parameters -------------------------------

_ODD_VALUES = ["", "\x00", "-1", "0", str(2**63), str(2**64), "1e400", "nan", "%00", "\u2028"]
_query_text = st.text(st.characters(codec="utf-8"), max_size=24)
_query_value = st.one_of(
    _query_text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(_ODD_VALUES),
)
_header_value = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


def _stream_case(
    operation: dict[str, Any], seeds: dict[str, list[str]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Path ids (real most of the time), then any subset of the query parameters and the
    Last-Event-ID header, each a value of any shape; a JSON body for TTS."""
    path: dict[str, st.SearchStrategy[str]] = {}
    query: dict[str, st.SearchStrategy[str]] = {}
    headers: dict[str, st.SearchStrategy[str]] = {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            path[name] = st.one_of(st.sampled_from(seeds.get(name, ["x"])), _query_text)
        elif where == "query":
            known = parameter.get("schema", {}).get("default")
            query[name] = (
                _query_value
                if known is None
                else st.one_of(
                    st.just(str(known).lower() if isinstance(known, bool) else str(known)),
                    _query_value,
                )
            )
        elif where == "header":
            headers[name] = _header_value
    body: st.SearchStrategy[Any] = st.none()
    if "requestBody" in operation:  # POST /api/voice/tts/stream
        body = st.fixed_dictionaries(
            {"text": _query_text},
            optional={
                "voice": st.one_of(st.just("alloy"), _query_text),
                "format": st.one_of(st.sampled_from(["mp3", "wav", "pcm", "opus"]), _query_text),
                "speed": st.one_of(st.floats(0.25, 4.0), st.floats(allow_nan=False)),
                "provider": st.one_of(st.just("embedded"), _query_text),
                "language": _query_text,
            },
        )
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries(path),
            "query": st.fixed_dictionaries({}, optional=query),
            "headers": st.fixed_dictionaries({}, optional=headers),
            "body": body,
        }
    )


def _open_and_close(http: httpx.Client, method: str, template: str, case: dict[str, Any]) -> int:
    url = template.format(**{k: quote(v, safe="") for k, v in case["path"].items()})
    body = {} if case["body"] is None else {"json": case["body"]}
    with http.stream(
        method, url, params=case["query"], headers=case["headers"], **body
    ) as response:
        assert response.status_code < 500, (method, url, case, response.read())
        if response.status_code == 200:
            kind = response.headers.get("content-type", "")
            assert kind.startswith(("text/event-stream", "audio/")), (url, kind)
            with contextlib.suppress(httpx.ReadTimeout):
                first = next(response.iter_raw(), b"")  # the first frame or audio bytes
                assert first, (url, case)
        else:
            response.read()
    return response.status_code


def _fuzz_operation(
    http: httpx.Client, method: str, template: str, cases: st.SearchStrategy[dict[str, Any]]
) -> dict[int, int]:
    """Run the operation's bounded Hypothesis test; how often each status came back."""
    seen: dict[int, int] = {}

    @hypothesis.settings(
        max_examples=STREAM_EXAMPLES,
        derandomize=SEED is None,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=cases)
    def fuzz(case: dict[str, Any]) -> None:
        status = _open_and_close(http, method, template, case)
        seen[status] = seen.get(status, 0) + 1

    if SEED is not None:
        fuzz = hypothesis.seed(int(SEED))(fuzz)
    fuzz()
    return seen


def _fuzz_streams(
    base_url: str, key: str, schema: dict[str, Any], seeds: dict[str, list[str]]
) -> dict[str, dict[int, int]]:
    timeout = httpx.Timeout(30, read=3)
    auth_header = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=auth_header, timeout=timeout) as http:
        return {
            f"{method} {template}": _fuzz_operation(
                http,
                method,
                template,
                _stream_case(schema["paths"][template][method.lower()], seeds),
            )
            for method, template in STREAMING
        }


async def test_streaming_endpoints_answer_fuzzed_parameters_without_a_server_error(
    api: RunningApi, worker: object, org: Org
) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        seeds = await _seed(http, org)
        run_id = seeds["run_id"][0]
        # A finished run, so its streams replay and end; the org-wide streams stay live.
        for _ in range(100):
            run = (await http.get(f"/api/runs/{run_id}", headers=auth(org))).json()
            if run["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        schema = (await http.get("/openapi.json")).json()
    statuses = await asyncio.to_thread(_fuzz_streams, api.url, org.admin_key, schema, seeds)
    print(json.dumps(statuses, indent=1))
    assert set(statuses) == {f"{m} {p}" for m, p in STREAMING}
    # Real ids and valid values were reached: every stream opened at least once.
    assert all(200 in seen for seen in statuses.values()), statuses
