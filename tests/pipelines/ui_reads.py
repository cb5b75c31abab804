"""What the MLflow UI (3.17) shows of a run, read with the MLflow client the way the UI reads it.

The run page's "Model metrics" tab (``RunViewMetricCharts`` → ``RunsChartsCardConfig.getBaseChart
AndSectionConfigs`` in the UI's bundle) draws one chart per metric key not under ``system/``, in one
section per prefix (everything before the last ``/``), the sections sorted by name and the prefix-less
"Model metrics" after them; a metric whose latest step is below 1 is drawn as a bar, the rest as lines.
An experiment opens on its runs (not GenAI traces) when the browser's workflow is model training,
which the URL's ``workflowType=machine_learning`` sets.
"""

from __future__ import annotations

import re
from typing import Any

UNGROUPED = "Model metrics"


def chart_sections(run: Any) -> list[str]:
    """The sections of the run's Model metrics tab, in the order the UI shows them."""
    keys = [k for k in run.data.metrics if not k.startswith("system/")]
    named = sorted({k.rsplit("/", 1)[0] for k in keys if "/" in k})
    return named + ([UNGROUPED] if any("/" not in k for k in keys) else [])


def one_point_charts(client: Any, run: Any) -> list[str]:
    """Model-metric charts that show a single point (or a bar): a value, not a curve."""
    keys = [k for k in run.data.metrics if not k.startswith("system/")]
    return [k for k in keys if len(client.get_metric_history(run.info.run_id, k)) < 2]


def repeated_series(client: Any, run: Any) -> list[tuple[str, str]]:
    """Pairs of adl's metric keys whose histories are the same points: one series drawn twice.

    MLflow's own ``system/`` metrics are left out: adl does not choose them, and they can coincide
    (a process whose only traffic is on the loopback receives exactly what it sends)."""
    series: dict[tuple[tuple[int, float], ...], str] = {}
    repeats = []
    for key in sorted(k for k in run.data.metrics if not k.startswith("system/")):
        points = tuple(sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)))
        if len(points) < 2:
            continue
        if points in series:
            repeats.append((series[points], key))
        series[points] = key
    return repeats


def printed_run_page(text: str) -> tuple[str, str, str]:
    """(address, experiment id, run id) of the run page a command printed last."""
    found = re.findall(
        r"(https?://[^\s/]+)/#/experiments/(\d+)/runs/([0-9a-f]{32})\?workflowType=machine_learning", text
    )
    assert found, f"no run page address in: {text[-2000:]}"
    return found[-1]
