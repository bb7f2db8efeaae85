"""Bad input to the model API, through the proxy as users send it (and straight to the server for the
size limit): every probe must get a 4xx, never a 5xx, and the server must stay ready.

A schemathesis run adds generated requests (valid and invalid by the service's own OpenAPI document)
on top of the hand-written probes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from devtools.reliability.result import CaseResult, errored, verdict
from devtools.reliability.saturation import router_5xx
from mlship import names
from mlship.local.environment import LocalEnvironment

AREA = "api"
NESTING = 100_000
TIMEOUT = httpx.Timeout(30.0)


@dataclass(frozen=True)
class Probe:
    name: str
    body: bytes | None = None
    content_type: str | None = "application/json"
    method: str = "POST"
    path: str = names.ENDPOINT_PREDICT
    chunked: bool = False  # stream the body without Content-Length


def _row_with(row: dict[str, Any], field: str, literal: str) -> bytes:
    """``row`` as JSON with ``field``'s value replaced by a raw JSON literal (NaN, nested, ...)."""
    marker = "__MLSHIP_MARKER__"
    return json.dumps({**row, field: marker}).replace(f'"{marker}"', literal).encode()


def non_finite(row: dict[str, Any]) -> list[Probe]:
    return [Probe(lit, _row_with(row, "s5", lit)) for lit in ("NaN", "Infinity", "-Infinity", "1e400")]


def wrong_types(row: dict[str, Any]) -> list[Probe]:
    values = {"string": '"heavy"', "bool": "true", "list": "[1, 2]", "object": '{"v": 1}', "null": "null"}
    return [Probe(name, _row_with(row, "bmi", lit)) for name, lit in values.items()]


def missing_and_extra(row: dict[str, Any]) -> list[Probe]:
    missing = {k: v for k, v in row.items() if k != "age"}
    return [
        Probe("missing field", json.dumps(missing).encode()),
        Probe("extra field", json.dumps({**row, "zip_code": "12345"}).encode()),
        Probe("empty object", b"{}"),
    ]


def malformed() -> list[Probe]:
    return [
        Probe("empty body", b""),
        Probe("not JSON", b"age=50&sex=1"),
        Probe("truncated JSON", b'{"age": 50, "sex'),
        Probe("top-level array", b"[1, 2, 3]"),
        Probe("top-level null", b"null"),
        Probe("invalid UTF-8", b'{"age": "\xff\xfe"}'),
    ]


def deeply_nested(row: dict[str, Any]) -> list[Probe]:
    arrays = "[" * NESTING + "]" * NESTING
    objects = '{"a": ' * NESTING + "1" + "}" * NESTING
    return [
        Probe(f"{NESTING} nested arrays", arrays.encode()),
        Probe(f"{NESTING} nested objects in a field", _row_with(row, "age", objects)),
    ]


def wrong_content_type(row: dict[str, Any]) -> list[Probe]:
    body = json.dumps(row).encode()
    return [
        Probe(ct.split(";")[0], body, content_type=ct)
        for ct in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
        )
    ]


def batch_limits(row: dict[str, Any]) -> list[Probe]:
    return [
        Probe("empty batch", b'{"instances": []}', path=names.ENDPOINT_PREDICT_BATCH),
        Probe(
            f"{names.MAX_BATCH_SIZE + 1} rows",
            json.dumps({"instances": [row] * (names.MAX_BATCH_SIZE + 1)}).encode(),
            path=names.ENDPOINT_PREDICT_BATCH,
        ),
        Probe("batch of wrong rows", b'{"instances": [{"age": "x"}]}', path=names.ENDPOINT_PREDICT_BATCH),
    ]


def wrong_method_and_path() -> list[Probe]:
    return [
        Probe("GET /predict", None, content_type=None, method="GET"),
        Probe("PUT /predict", b"{}", method="PUT"),
        Probe("unknown path", b"{}", path="/predict/../../etc/passwd"),
    ]


def oversized(row: dict[str, Any]) -> list[Probe]:
    limit = names.MAX_REQUEST_BYTES
    padding = b" " * (limit + 1024)
    return [
        Probe(f"{limit + 1024} bytes, Content-Length", b'{"age": ' + padding + b"50}"),
        Probe(
            f"{limit + 1024} bytes, chunked (no Content-Length)", b'{"age": ' + padding + b"50}", chunked=True
        ),
    ]


def just_under_limit(row: dict[str, Any]) -> Probe:
    body = json.dumps(row).encode()
    return Probe(
        "valid row padded to 99% of the limit",
        body + b" " * (int(names.MAX_REQUEST_BYTES * 0.99) - len(body)),
    )


def _chunks(body: bytes, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def send(client: httpx.Client, base: str, probe: Probe) -> int:
    """The probe's HTTP status, or 0 when no answer came (connection reset, timeout)."""
    headers = {"content-type": probe.content_type} if probe.content_type else {}
    content: bytes | Iterator[bytes] | None = probe.body
    if probe.chunked and probe.body is not None:
        content = _chunks(probe.body)
    try:
        response = client.request(probe.method, base + probe.path, content=content, headers=headers)
    except httpx.HTTPError:
        return 0
    return response.status_code


def _describe(codes: dict[str, int]) -> str:
    return ", ".join(f"{name} {code or 'no answer'}" for name, code in codes.items())


def probe_case(
    client: httpx.Client,
    base: str,
    case: str,
    probes: list[Probe],
    *,
    expected: str,
    accept: Callable[[int], bool],
) -> CaseResult:
    codes = {p.name: send(client, base, p) for p in probes}
    ok = all(accept(c) for c in codes.values())
    return verdict(AREA, case, expected=expected, observed=_describe(codes), ok=ok, codes=codes)


def is_4xx(code: int) -> bool:
    return 400 <= code < 500


def rejected_field_series(client: httpx.Client, server_url: str) -> int:
    """How many `mlship_rejected_inputs_total` series the server exports (one per reason and field)."""
    text = client.get(server_url + "/metrics").text
    prefix = names.METRIC_REJECTED + "{"
    return sum(1 for line in text.splitlines() if line.startswith(prefix))


def label_cardinality(
    client: httpx.Client, base: str, server_url: str, row: dict[str, Any], keys: int
) -> CaseResult:
    expected = (
        f"one request with {keys} unknown fields: 4xx, and at most one new rejected-input series "
        "(metric labels never take values from the request)"
    )
    case = "unknown field names as metric labels"
    before = rejected_field_series(client, server_url)
    body = json.dumps({**row, **{f"x{i}": i for i in range(keys)}}).encode()
    code = send(client, base, Probe(f"{keys} unknown fields", body))
    time.sleep(0.5)
    growth = rejected_field_series(client, server_url) - before
    ok = is_4xx(code) and growth <= 1
    observed = f"answered {code}; {names.METRIC_REJECTED} series +{growth} ({before} before)"
    return verdict(AREA, case, expected=expected, observed=observed, ok=ok, status=code, series_growth=growth)


def schemathesis_run(base: str, examples: int) -> CaseResult:
    """Generated requests, valid and invalid per the served OpenAPI document: no 5xx, ever."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    expected = f"up to {examples} valid + {examples} invalid generated requests per operation: no 5xx"
    case = "schemathesis run against the OpenAPI document"
    try:
        schema = schemathesis.openapi.from_url(base + "/docs.json")
        operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
        codes: dict[int, int] = {}
        failures: list[str] = []
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def call(case: Any) -> None:
                    response = case.call(base_url=base, timeout=30)
                    codes[response.status_code] = codes.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        failures.append(case.as_curl_command()[:200])

                try:
                    call()
                except Unsatisfiable:
                    continue  # nothing to generate in this mode (e.g. no invalid form of /livez)
        total = sum(codes.values())
        server_errors = sum(n for c, n in codes.items() if c >= 500)
        spread = ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
        observed = f"{total} requests over {len(operations)} operations ({spread}); {server_errors} 5xx"
        if failures:
            observed += f"; first: {failures[0]}"
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=server_errors == 0 and total > 0,
            requests=total,
            codes={str(k): v for k, v in codes.items()},
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)


def run_api_cases(
    env: LocalEnvironment,
    row: dict[str, Any],
    *,
    schemathesis_examples: int,
    cardinality_keys: int,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[CaseResult]:
    proxy = env.proxy_url
    server = env.server_url(names.ROLE_STABLE)
    stable = env.running(names.ROLE_STABLE)
    pid_before = stable.pid if stable else None
    results: list[CaseResult] = []
    router_before = router_5xx(env)
    four = "every probe 4xx, never 5xx"
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        progress("hand-written bad requests")
        for case, probes in (
            ("NaN and infinite numbers", non_finite(row)),
            ("wrong types", wrong_types(row)),
            ("missing and extra fields", missing_and_extra(row)),
            ("malformed bodies", malformed()),
            (f"deeply nested JSON ({NESTING} levels)", deeply_nested(row)),
            ("wrong content type (JSON body)", wrong_content_type(row)),
            ("batch limits", batch_limits(row)),
            ("wrong method or path", wrong_method_and_path()),
        ):
            results.append(probe_case(client, proxy, case, probes, expected=four, accept=is_4xx))
        limit = names.MAX_REQUEST_BYTES
        for where, base in (("proxy", proxy), ("model server, no proxy", server)):
            probes = oversized(row)
            codes = {p.name: send(client, base, p) for p in probes}
            under = just_under_limit(row)
            codes[under.name] = send(client, base, under)
            ok = all(codes[p.name] == 413 for p in probes) and codes[under.name] == 200
            results.append(
                verdict(
                    AREA,
                    f"request size limit at the {where}",
                    expected=f"413 over {limit} bytes (with or without Content-Length); 200 just under it",
                    observed=_describe(codes),
                    ok=ok,
                    codes=codes,
                )
            )
        progress("schemathesis")
        results.append(schemathesis_run(proxy, schemathesis_examples))
        progress("metric labels from input")
        results.append(label_cardinality(client, proxy, server, row, cardinality_keys))
        # After everything: the same server process, ready, answering through the proxy.
        ready = client.get(server + "/readyz").status_code
        valid = send(client, proxy, Probe("valid row", json.dumps(row).encode()))
        after = env.running(names.ROLE_STABLE)
        router_delta = router_5xx(env) - router_before
        same = after is not None and after.pid == pid_before
        results.append(
            verdict(
                AREA,
                "server still ready after the bad input",
                expected="same server process (no crash, no restart), /readyz 200, a valid request 200",
                observed=(
                    f"{'same process' if same else 'server process changed or gone'}; /readyz {ready}; "
                    f"valid request {valid}; 5xx the proxy answered during the bad input: {router_delta}"
                ),
                ok=same and ready == 200 and valid == 200,
                router_5xx=router_delta,
            )
        )
    return results
