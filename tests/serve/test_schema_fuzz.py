"""Schemathesis against the app (in process, through ASGI): requests generated from the OpenAPI
schema, valid (positive) and invalid (negative), must never get a server error or a response
off the schema. Driven through schemathesis's Python API: its pytest plugin does not run on
pytest 9 (it reads ``Function._nodeid``)."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (after the importorskip)
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode, checks  # noqa: E402

from densa.corpus import read_corpus  # noqa: E402
from densa.index import Index  # noqa: E402
from densa.serve import ServeConfig  # noqa: E402
from densa.serve.app import create_app  # noqa: E402
from tests.helpers import TINY, HashingEncoder  # noqa: E402

#: Examples per operation and generation mode: bounded, so the run fits the suite's time.
EXAMPLES = 30
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("fuzz") / "idx"
    Index.build(read_corpus(TINY / "corpus.jsonl"), path, encoder=HashingEncoder())
    app = create_app(
        ServeConfig(index=path, api_key="k3y", max_body_bytes=64 * 1024), encoder=HashingEncoder()
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(api_schema: Any) -> dict[str, Any]:
    found = (result.ok() for result in api_schema.get_all_operations())
    return {f"{op.method.upper()} {op.path}": op for op in found}


def test_the_fuzzed_operations_are_the_api(api_schema: Any) -> None:
    assert {"POST /search", "POST /documents", "DELETE /documents/{doc_id}", "POST /context"} <= set(
        _operations(api_schema)
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_requests_get_no_server_error_and_documented_responses(api_schema: Any, mode: Any) -> None:
    failures: list[str] = []
    skipped: list[str] = []
    for name, operation in sorted(_operations(api_schema).items()):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
        )
        def run(case: Any) -> None:
            case.call_and_validate(checks=CHECKS, headers={"X-API-Key": "k3y"})

        try:
            run()
        except Unsatisfiable:  # no invalid request exists (no parameters, or a free-form path string)
            assert mode == GenerationMode.NEGATIVE, name
            skipped.append(name)
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert "POST /search" not in skipped and "POST /documents" not in skipped  # those were fuzzed
