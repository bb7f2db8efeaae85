"""A small client for Prometheus's HTTP API (instant and range queries), with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from mlship.errors import ExitCode, MlshipError


class PrometheusUnavailable(MlshipError):
    exit_code = ExitCode.PROMETHEUS_UNAVAILABLE


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self._client.get(f"{self.url}{path}", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} is unreachable ({exc}): start the local environment with "
                "`mlship local up`, or pass the URL of yours with --prometheus-url"
            ) from exc
        try:
            payload = response.json()
        except ValueError:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered {response.status_code} with a non-JSON body"
            ) from None
        if payload.get("status") != "success":
            raise MlshipError(
                f"Prometheus rejected the query: {payload.get('errorType')}: {payload.get('error')}"
            )
        return payload["data"]

    def ready(self) -> bool:
        try:
            return self._client.get(f"{self.url}/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str, *, time: float | None = None) -> list[Sample]:
        params: dict[str, Any] = {"query": expr}
        if time is not None:
            params["time"] = time
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        return [Sample(dict(r["metric"]), float(r["value"][1])) for r in data["result"]]

    def raw_samples(self, selector: str, seconds: int, *, time: float) -> list[tuple[dict[str, str], list]]:
        """Every scraped sample of the series of ``selector`` in ``(time - seconds, time]``.

        A range-vector selector evaluated as an instant query: Prometheus returns the stored samples
        themselves, without the extrapolation of ``increase()``.
        """
        data = self._get("/api/v1/query", {"query": f"{selector}[{seconds}s]", "time": time})
        if data["resultType"] != "matrix":
            raise MlshipError(f"Prometheus answered {data['resultType']} to the range selector {selector}")
        return [(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def scalar(self, expr: str, *, default: float | None = None) -> float | None:
        """Sum of the query's samples, or ``default`` when it returns nothing."""
        samples = self.query(expr)
        return sum(s.value for s in samples) if samples else default

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list]]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return [(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets", {"state": "active"})["activeTargets"])
