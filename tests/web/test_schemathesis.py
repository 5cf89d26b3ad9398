"""schemathesis 4 against /openapi.json of a running `ticker serve` (local fake upstream, never a real API).

Every operation is fuzzed with schema-valid (positive) and schema-invalid (negative) inputs; each response
must be no server error, have a documented status code and content type, and a body that matches its
schema. `GET /api/v1/stream` is left out: its 200 is an event stream that never ends while the client
stays, so schemathesis' requests transport would wait for each response until its timeout and report
that; the stream's first event and its 400 are checked against the document in test_openapi.py.

Run with `-s` to see the number of cases per operation.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import checks
from schemathesis.generation import GenerationMode

from tests.fake_upstream import FakeUpstream
from tests.service import Service, running, write_config

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 50
STREAM = "/api/v1/stream"
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("schemathesis")
    with FakeUpstream() as upstream:
        upstream.coingecko.prices = {
            "bitcoin": {"usd": (90917.04, 1.64), "eur": (84123.55, None)},
            "ethereum": {"usd": (3021.5512, -2.3127), "eur": (2795.8, 0.0)},
            "pirate-chain": {"usd": (0.00001234, 12.5), "eur": (0.0000114, 12.4)},
        }
        with running(write_config(tmp_path, upstream, interval=1)) as service:
            yield service


@pytest.fixture(scope="module")
def schema(service: Service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def fuzz(operation, mode: GenerationMode, base_url: str, statuses: Counter[int]) -> int:
    """Up to MAX_EXAMPLES cases of one operation in one mode, each response checked; returns how many ran."""
    cases = 0
    extra = [checks.negative_data_rejection] if mode is GenerationMode.NEGATIVE else []

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        nonlocal cases
        cases += 1
        response = case.call(base_url=base_url, timeout=5)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS + extra)

    run()
    return cases


def test_every_operation_fuzzed_against_the_running_service(service, schema, capsys):
    schema.validate()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert sorted(op.label for op in operations) == [
        "GET /api/v1/history/{symbol}",
        "GET /api/v1/prices",
        "GET /api/v1/prices/{symbol}",
        "GET /api/v1/stream",
        "GET /healthz",
        "GET /readyz",
    ]
    report: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    started = time.monotonic()
    for operation in operations:
        if operation.path == STREAM:
            continue
        has_parameters = any(True for _ in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * has_parameters
        seen = statuses.setdefault(operation.label, Counter())
        for mode in modes:
            cases = fuzz(operation, mode, service.url, seen)
            report.append(f"{operation.label:32} {mode.value:8} {cases:3} cases")
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nschemathesis ({elapsed:.1f} s), statuses seen: {dict(statuses)}\n" + "\n".join(report))
    assert statuses["GET /api/v1/prices"].keys() >= {200, 400}
    assert statuses["GET /api/v1/prices/{symbol}"].keys() >= {200, 404}
    assert statuses["GET /api/v1/history/{symbol}"].keys() >= {200, 400, 404}
    assert statuses["GET /healthz"].keys() == {200} and statuses["GET /readyz"].keys() == {200}


def test_schemathesis_cli_all_phases_and_checks(service, tmp_path, capsys):
    """The schemathesis command (examples, coverage, fuzzing phases; every check but the two known failures)."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-path",
            STREAM,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--request-timeout",
            "5",
            "--seed",
            "20261127",
            "--no-color",
        ],
        cwd=tmp_path,  # its replay store goes there, not into the repository
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = re.search(r"Test cases:\n\s*(.+)", result.stdout)
    with capsys.disabled():
        print(f"\nschemathesis CLI: {summary.group(1) if summary else result.stdout[-2000:]}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/v1/prices", {"GET", "HEAD", "OPTIONS"}),
        ("TRACE", "/api/v1/prices/BTC", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/healthz", {"GET", "HEAD"}),
        ("PUT", "/widget", {"GET", "HEAD"}),
    ],
)
def test_405_says_which_methods_are_allowed(service, method, path, allowed):
    response = httpx.request(method, f"{service.url}{path}", timeout=5)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()} == allowed
