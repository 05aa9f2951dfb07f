"""A self-contained HTML report with Plotly charts (plotly.js is inlined once: no network).

Sections: the headline verdicts; reference vs current distribution of every feature; drift over
time (effect size per feature across reports, as a heatmap); estimated vs realized accuracy over
time with the estimate's band; prediction drift; data-quality findings.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from driftline.report import estimator_label

__all__ = ["render_report_html"]

COLORS = {
    "ok": "#2e7d32",
    "warning": "#f9a825",
    "critical": "#c62828",
    "none": "#2e7d32",
    "insufficient_data": "#757575",
    "soft": "#f9a825",
    "hard": "#c62828",
}


def _ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return html.escape(str(value))


def _times(bodies: Sequence[dict[str, Any]]) -> list[datetime | None]:
    """Report times as (naive, UTC) datetimes: Plotly then draws a date axis and picks a few
    readable ticks, where text labels would be one overlapping label per report."""
    return [
        datetime.fromtimestamp(b["ts"], tz=UTC).replace(tzinfo=None)
        if b.get("ts") is not None
        else None
        for b in bodies
    ]


def _time_axis(fig: go.Figure) -> None:
    fig.update_xaxes(type="date", nticks=8, title_text="time (UTC)", tickformat="%b %d %H:%M")


def _badge(severity: str | None) -> str:
    text = severity or "-"
    color = COLORS.get(text, "#455a64")
    return f'<span class="badge" style="background:{color}">{html.escape(text)}</span>'


def _figure_html(fig: go.Figure) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def _distribution_figure(distributions: dict[str, Any]) -> go.Figure | None:
    names = list(distributions)
    if not names:
        return None
    cols = 2
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, vertical_spacing=0.08)
    for i, name in enumerate(names):
        d = distributions[name]
        r, c = i // cols + 1, i % cols + 1
        if d["kind"] == "numeric":
            edges = d["edges"]
            labels = (
                [f"< {edges[0]:.3g}"]
                + [f"{a:.3g}–{b:.3g}" for a, b in itertools.pairwise(edges)]
                + [f"≥ {edges[-1]:.3g}"]
            )
        else:
            labels = d["categories"]
        labels = labels[: len(d["reference"])]
        fig.add_trace(
            go.Bar(
                x=labels,
                y=d["reference"],
                name="reference",
                marker_color="#90a4ae",
                showlegend=i == 0,
                legendgroup="reference",
            ),
            row=r,
            col=c,
        )
        if d.get("current") is not None:
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=d["current"],
                    name="current",
                    marker_color="#1e88e5",
                    showlegend=i == 0,
                    legendgroup="current",
                ),
                row=r,
                col=c,
            )
    fig.update_layout(
        barmode="group", height=260 * rows, margin={"t": 40, "b": 20}, template="plotly_white"
    )
    fig.update_xaxes(showticklabels=False)
    return fig


def _drift_over_time(history: Sequence[dict[str, Any]]) -> go.Figure | None:
    if len(history) < 1:
        return None
    ordered = sorted(history, key=lambda b: b.get("ts") or 0)
    features: list[str] = []
    for body in ordered:
        for f in (body.get("data_drift") or {}).get("features", []):
            if f["feature"] not in features:
                features.append(f["feature"])
    times = _times(ordered)
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for name in features:
        row: list[float | None] = []
        labels: list[str] = []
        for body in ordered:
            found = next(
                (
                    f
                    for f in (body.get("data_drift") or {}).get("features", [])
                    if f["feature"] == name
                ),
                None,
            )
            row.append(None if found is None else found.get("effect_size"))
            labels.append("" if found is None else str(found.get("severity")))
        z.append(row)
        text.append(labels)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=times,
            y=features,
            text=text,
            colorscale="YlOrRd",
            zmin=0,
            hovertemplate="%{y} at %{x}<br>effect %{z:.3f} (%{text})<extra></extra>",
            colorbar={"title": "effect size"},
        )
    )
    fig.update_layout(
        title="Drift over time (effect size per feature)",
        height=160 + 28 * len(features),
        template="plotly_white",
        margin={"t": 50},
    )
    _time_axis(fig)
    return fig


def _accuracy_over_time(history: Sequence[dict[str, Any]]) -> go.Figure | None:
    ordered = sorted(history, key=lambda b: b.get("ts") or 0)
    points = [(b, (b.get("performance") or {})) for b in ordered]
    if not any(p.get("estimated") or p.get("realized") for _, p in points):
        return None
    times = _times([b for b, _ in points])

    def series(kind: str, key: str) -> list[float | None]:
        return [((p.get(kind) or {}).get(key)) for _, p in points]

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=times,
            y=series("estimated", "accuracy_upper"),
            line={"width": 0},
            showlegend=False,
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=times,
            y=series("estimated", "accuracy_lower"),
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(30,136,229,0.15)",
            name="estimate band",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=times,
            y=series("estimated", "accuracy"),
            name="estimated (label-free)",
            # Which estimator produced each point: the doubly robust one or CBPE.
            customdata=[estimator_label(p.get("estimator")) for _, p in points],
            hovertemplate="%{y:.3f} (%{customdata})<extra>estimated</extra>",
            line={"color": "#1e88e5"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=times,
            y=series("realized", "accuracy"),
            name="realized (labels)",
            line={"color": "#e53935"},
            mode="lines+markers",
        )
    )
    reference = [p.get("reference_accuracy") for _, p in points]
    fig.add_trace(
        go.Scatter(
            x=times,
            y=reference,
            name="reference (holdout)",
            line={"color": "#757575", "dash": "dot"},
        )
    )
    fig.update_layout(
        title="Estimated vs realized accuracy",
        yaxis_title="accuracy",
        template="plotly_white",
        height=380,
    )
    _time_axis(fig)
    return fig


def _drift_table(drift: dict[str, Any] | None, title: str) -> str:
    if not drift:
        return f"<h3>{html.escape(title)}</h3><p>not available</p>"
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(f['feature'])}</td><td>{html.escape(f['kind'])}</td>"
        f"<td>{html.escape(str(f['method']))}</td><td>{_fmt(f['statistic'])}</td>"
        f"<td>{_fmt(f['p_adjusted'])}</td>"
        f"<td>{html.escape(str(f['effect_name']))} {_fmt(f['effect_size'])}</td>"
        f"<td>{_fmt(f['missing_rate_reference'], 3)} → {_fmt(f['missing_rate_current'], 3)}</td>"
        f"<td>{_badge(f['severity'])}</td>"
        f"<td class='small'>{html.escape('; '.join(f.get('reasons', [])))}</td>"
        "</tr>"
        for f in drift.get("features", [])
    )
    reasons = html.escape("; ".join(drift.get("reasons", [])))
    return (
        f"<h3>{html.escape(title)} {_badge(drift.get('severity'))}</h3>"
        f"<p class='small'>{reasons}</p>"
        "<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th>"
        "<th>p (BH)</th><th>effect</th><th>missing</th><th>verdict</th><th>why</th></tr>"
        f"{rows}</table>"
    )


def _quality_table(quality: dict[str, Any]) -> str:
    findings = [f for f in quality.get("findings", []) if not f.get("passed", True)]
    if not findings:
        note = " (too few rows to judge)" if quality.get("insufficient_data") else ""
        return (
            f"<h3>Data quality {_badge(quality.get('severity'))}</h3><p>all checks passed{note}</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(str(f['check']))}</td>"
        f"<td>{html.escape(str(f.get('feature') or '-'))}</td>"
        f"<td>{_badge(f['severity'])}</td><td>{_fmt(f['value'])}</td><td>{_fmt(f['threshold'])}</td>"
        f"<td class='small'>{html.escape(str(f['message']))}</td></tr>"
        for f in findings
    )
    return (
        f"<h3>Data quality {_badge(quality.get('severity'))}</h3>"
        "<table><tr><th>check</th><th>feature</th><th>severity</th><th>value</th>"
        f"<th>threshold</th><th>message</th></tr>{rows}</table>"
    )


def _severity(report: dict[str, Any], key: str) -> str | None:
    part = report.get(key) or {}
    return part.get("severity") if isinstance(part, dict) else None


def render_report_html(report: dict[str, Any], history: Sequence[dict[str, Any]] = ()) -> str:
    """The HTML page of ``report`` (a report body), with charts over ``history`` (bodies)."""
    history = list(history) or [report]
    performance = report.get("performance") or {}
    estimated = performance.get("estimated") or {}
    realized = performance.get("realized") or {}
    concept = report.get("concept_drift") or {}
    window = report.get("window") or {}
    sections: list[str] = []
    for fig in (
        _drift_over_time(history),
        _accuracy_over_time(history),
        _distribution_figure(report.get("distributions") or {}),
    ):
        if fig is not None:
            sections.append(f'<div class="chart">{_figure_html(fig)}</div>')
    # Why the estimated accuracy comes from the estimator it names (reports since issue 11).
    reason = (
        f"<tr><td>estimator</td><td>{html.escape(str(performance['estimator_reason']))}</td></tr>"
        if performance.get("estimator_reason")
        else ""
    )
    headline = (
        "<table class='kv'>"
        f"<tr><td>status</td><td>{_badge(report.get('status'))}</td></tr>"
        f"<tr><td>model</td><td>{html.escape(str(report.get('model_name')))} "
        f"version {report.get('model_version')}</td></tr>"
        f"<tr><td>window</td><td>{_ts(window.get('start'))} → {_ts(window.get('end'))} "
        f"({report.get('rows', 0):,} rows, {report.get('rejected', 0):,} rejected)</td></tr>"
        f"<tr><td>data drift</td><td>{_badge(_severity(report, 'data_drift'))}</td></tr>"
        f"<tr><td>prediction drift</td>"
        f"<td>{_badge(_severity(report, 'prediction_drift'))}</td></tr>"
        f"<tr><td>quality</td><td>{_badge((report.get('quality') or {}).get('severity'))}</td></tr>"
        f"<tr><td>concept drift</td><td>{html.escape(str(concept.get('state')))} "
        f"({concept.get('n_drifts', 0)} confirmed, "
        f"{concept.get('n_seen', 0):,} labels seen)</td></tr>"
        f"<tr><td>accuracy</td><td>estimated "
        f"({html.escape(estimator_label(performance.get('estimator')))}) "
        f"{_fmt(estimated.get('accuracy'), 3)} "
        f"[{_fmt(estimated.get('accuracy_lower'), 3)}, {_fmt(estimated.get('accuracy_upper'), 3)}]"
        f" · realized {_fmt(realized.get('accuracy'), 3)} (n={realized.get('n', 0)})"
        f" · reference {_fmt(performance.get('reference_accuracy'), 3)}</td></tr>"
        f"{reason}"
        "</table>"
    )
    body = "\n".join(
        [
            headline,
            *sections[:2],
            _drift_table(report.get("data_drift"), "Data drift per feature"),
            _drift_table(report.get("prediction_drift"), "Prediction drift"),
            _quality_table(report.get("quality") or {}),
            "<h3>Reference vs current distributions</h3>",
            *sections[2:],
        ]
    )
    data = html.escape(json.dumps({"id": report.get("id"), "status": report.get("status")}))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>driftline report {html.escape(str(report.get("id", "")))}</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px;
        color: #263238; }}
 table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; width: 100%; }}
 td, th {{ border-bottom: 1px solid #eceff1; padding: .3rem .5rem; text-align: left; }}
 table.kv td:first-child {{ width: 12rem; color: #607d8b; }}
 .badge {{ color: white; border-radius: .6rem; padding: .05rem .55rem; font-size: .85rem; }}
 .small {{ font-size: .8rem; color: #607d8b; }}
 .chart {{ margin: 1rem 0; }}
</style></head>
<body data-report="{data}">
<h1>driftline monitoring report</h1>
<p class="small">generated {_ts(report.get("ts"))}</p>
{body}
</body></html>
"""
