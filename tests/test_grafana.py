"""Grafana dashboard and Prometheus alert rules: linted, unit-tested with promtool, and every
panel expression and alert rule evaluated by a real Prometheus scraping a real `dsgen daemon`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dsgen import __version__
from dsgen.metrics import Metrics
from dsgen.synth import SynthSpec, make_video
from helpers import free_port

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "dsgen.json"
ALERTS = GRAFANA / "prometheus" / "dsgen-alerts.yml"
ALERT_TESTS = GRAFANA / "prometheus" / "dsgen-alerts.test.yml"
PROMETHEUS_YML = GRAFANA / "prometheus" / "prometheus.yml"
DS_PROVISIONING = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
DASH_PROVISIONING = GRAFANA / "provisioning" / "dashboards" / "dsgen.yaml"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
JOB_FILTER = 'job=~"$job"'
INSTANCE_FILTER = 'instance=~"$instance"'
GRID_COLUMNS = 24
# Series Prometheus adds itself, not exported by dsgen.
PROMETHEUS_SERIES = {"up"}
# Functions whose range must follow the scrape interval in Grafana.
RATE_FUNCTIONS = ("rate", "increase", "irate")
# PromQL words that are not metric names (aggregations may put `by (…)` before their `(`).
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", *AGGREGATIONS}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
ALERT_NAMES = {"DsgenDown", "DsgenStalled", "DsgenLowSuccessRate", "DsgenDiskFillingUp",
               "DsgenPausedDiskFull", "DsgenConfigReloadFailed", "DsgenWorkersDying"}


# -- the dashboard ---------------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    """The dashboard JSON (fails on invalid JSON)."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def data_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that show data (not rows)."""
    return [p for p in all_panels(dash) if p["type"] != "row"]


def expressions(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target of every panel."""
    return [(p["title"], t["refId"], t["expr"]) for p in data_panels(dash)
            for t in p.get("targets", [])]


def variable_queries(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable name, metric selector, label) of each `label_values(selector, label)` query."""
    out = []
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert m, f"variable {v['name']}: not a label_values() query: {query}"
        out.append((v["name"], m.group(1).strip(), m.group(2)))
    return out


TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<matchers>\{[^}]*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<other>\S)
""", re.VERBOSE)


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a PromQL expression."""
    return [(m.lastgroup or "", m.group()) for m in TOKEN.finditer(expr)]


def selectors(expr: str) -> list[tuple[str, str | None]]:
    """(metric name, `{…}` matchers or None) of every vector selector in `expr`."""
    toks = tokens(expr)
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ("", "")
        if kind == "name" and text in LABEL_LISTS and nxt[1] == "(":
            while i < len(toks) and toks[i][1] != ")":  # skip the label list
                i += 1
        elif kind == "name" and text not in KEYWORDS and nxt[1] != "(":
            out.append((text, nxt[1] if nxt[0] == "matchers" else None))
        elif kind == "matchers" and (i == 0 or toks[i - 1][0] != "name"):
            out.append(("", text))  # {__name__=…}-style selector: flagged by the callers
        i += 1
    return out


def call_arguments(expr: str, function: str) -> list[str]:
    """The argument text of every call of `function` in `expr`."""
    out = []
    for m in re.finditer(rf"\b{function}\s*\(", expr):
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(expr[j], 0)
            j += 1
        out.append(expr[m.end():j - 1])
    return out


def exported_metric_names() -> set[str]:
    """Every series name a dsgen process exports, from a real `Metrics().render()`.

    The engine declares its categories and formats at start-up; without that the labelled
    per-category families have no series, so their names come from the family types too.
    """
    m = Metrics()
    m.declare({"general": ["small_540"]})
    names: set[str] = set()
    for fam in text_string_to_metric_families(m.render().decode()):
        names.update(s.name for s in fam.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "info": ["_info"]}.get(fam.type, [""])
        names.update(fam.name + s for s in suffixes)
    return names


def test_dashboard_is_provisionable_as_a_file() -> None:
    """Valid JSON with a fixed short uid, `id: null`, no `__inputs` and no `${DS_…}`
    placeholders (file provisioning cannot fill them); the data source comes from one
    `datasource` variable of type datasource, with job and instance variables after it."""
    text = DASHBOARD.read_text()
    dash = dashboard()
    assert dash["id"] is None
    assert isinstance(dash["uid"], str) and 0 < len(dash["uid"]) <= 40
    assert re.fullmatch(r"[A-Za-z0-9_-]+", dash["uid"])
    assert "__inputs" not in dash and "__requires" not in dash
    assert "${DS_" not in text and "$DS_" not in text
    assert dash["schemaVersion"] >= 36 and dash["title"]
    variables = dash["templating"]["list"]
    sources = [v for v in variables if v["type"] == "datasource"]
    assert len(sources) == 1
    ds = sources[0]
    assert ds["name"] == "datasource" and ds["query"] == "prometheus"
    # An empty `current` lets Grafana pick the default Prometheus data source; a stale uid
    # from someone's Grafana would not resolve elsewhere.
    assert ds.get("current") in ({}, None)
    names = [v["name"] for v in variables]
    assert names[:3] == ["datasource", "job", "instance"]
    for v in variables[1:]:
        assert v["type"] == "query" and v["datasource"] == DATASOURCE, v["name"]
        assert v["includeAll"] and v["allValue"] == ".*" and v["refresh"] in (1, 2)
    queries = {name: (sel, label) for name, sel, label in variable_queries(dash)}
    assert queries["job"] == ("dsgen_build_info", "job")
    assert queries["instance"][1] == "instance" and JOB_FILTER in queries["instance"][0]


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    """Every panel (rows too) and every query target names `${datasource}`, so switching
    the variable switches the whole dashboard; data panels have at least one target."""
    dash = dashboard()
    for p in all_panels(dash):
        assert p.get("datasource") == DATASOURCE, p["title"]
        for t in p.get("targets", []):
            assert t.get("datasource") == DATASOURCE, (p["title"], t["refId"])
            assert t["expr"].strip(), (p["title"], t["refId"])
    for p in data_panels(dash):
        assert p.get("targets"), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]


def test_panel_ids_are_unique_and_the_grid_has_no_overlap() -> None:
    """Panel ids are unique; every gridPos lies in the 24-column grid and no two overlap."""
    panels = all_panels(dashboard())
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, p["title"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, p["title"]
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for i, (a, ax0, ay0, ax1, ay1) in enumerate(boxes):
        for b, bx0, by0, bx1, by1 in boxes[i + 1:]:
            assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"{a} overlaps {b}"


def test_every_data_panel_has_a_unit_and_a_description() -> None:
    """Every panel that shows data sets fieldConfig.defaults.unit and explains itself."""
    for p in data_panels(dashboard()):
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert len(p.get("description", "")) >= 20, p["title"]


def test_every_selector_filters_job_and_instance() -> None:
    """Every vector selector in every panel filters `job=~"$job", instance=~"$instance"`,
    so the job and instance variables narrow every panel."""
    for title, ref, expr in expressions(dashboard()):
        found = selectors(expr)
        assert found, (title, ref, expr)
        for name, matchers in found:
            assert name, (title, ref, expr)
            assert matchers is not None, f"{title}/{ref}: {name} has no label filter"
            assert JOB_FILTER in matchers and INSTANCE_FILTER in matchers, (title, name)


def test_rate_and_increase_use_the_rate_interval() -> None:
    """Every rate()/increase()/irate() window is `$__rate_interval`, which Grafana keeps at
    least four scrapes wide whatever the zoom (fixed windows are left to deriv() and
    predict_linear(), whose spans are the point of the panel)."""
    count = 0
    for title, ref, expr in expressions(dashboard()):
        for fn in RATE_FUNCTIONS:
            for args in call_arguments(expr, fn):
                count += 1
                windows = re.findall(r"\[[^\]]*\]", args)
                assert windows == ["[$__rate_interval]"], (title, ref, expr)
    assert count >= 10


def test_every_metric_a_panel_names_is_exported_by_dsgen() -> None:
    """Every metric the panels and variables name is one dsgen exports (from a real
    Metrics().render()) or Prometheus' own `up`: a renamed metric breaks this test, not
    a dashboard in production."""
    exported = exported_metric_names() | PROMETHEUS_SERIES
    assert {"dsgen_stage_duration_seconds_bucket", "dsgen_samples_written_total",
            "dsgen_samples", "dsgen_build_info"} <= exported
    dash = dashboard()
    used = {name for _, _, expr in expressions(dash) for name, _ in selectors(expr)}
    used |= {name for _, sel, _ in variable_queries(dash) for name, _ in selectors(sel)}
    assert used - exported == set()


def test_the_dashboard_covers_what_the_terminal_shows() -> None:
    """Progress, videos, patches/min, success rate, rejections, stage latencies, disk and
    its forecast, ETA, workers, reloads, pause and build info each have a panel."""
    dash = dashboard()
    exprs = [expr for _, _, expr in expressions(dash)]
    used = {name for expr in exprs for name, _ in selectors(expr)}
    needed = {"dsgen_samples", "dsgen_category_target_samples", "dsgen_videos",
              "dsgen_samples_written_total", "dsgen_clip_attempts_total",
              "dsgen_stage_duration_seconds_bucket", "dsgen_stage_duration_seconds_sum",
              "dsgen_stage_duration_seconds_count", "dsgen_output_bytes",
              "dsgen_filesystem_free_bytes", "dsgen_estimated_completion_timestamp_seconds",
              "dsgen_workers", "dsgen_config_reload_success", "dsgen_paused",
              "dsgen_build_info", "dsgen_run_state", "dsgen_last_success_timestamp_seconds"}
    assert needed - used == set()
    joined = "\n".join(exprs)
    assert "histogram_quantile(0.5," in joined and "histogram_quantile(0.95," in joined
    assert "predict_linear(" in joined and "- time()" in joined
    assert 'sum by (reason) (rate(dsgen_clip_attempts_total{reason!="ok"' in joined
    types = {p["type"] for p in data_panels(dash)}
    assert {"stat", "bargauge", "timeseries", "table"} <= types
    eta = [p for p in data_panels(dash) if p["title"] == "ETA"]
    assert len(eta) == 1 and eta[0]["fieldConfig"]["defaults"]["unit"] == "s"


def test_provisioning_files_agree_with_the_dashboard() -> None:
    """The file provider points at a dashboards folder, the data source provisioning names
    a fixed uid and http://localhost:9090, and the example scrape config uses job dsgen on
    dsgen's default port with the alert rules loaded."""
    provider = DASH_PROVISIONING.read_text()
    assert re.search(r"^\s*type:\s*file\s*$", provider, re.M)
    assert re.search(r"^\s*path:\s*/var/lib/grafana/dashboards/dsgen\s*$", provider, re.M)
    ds = DS_PROVISIONING.read_text()
    assert re.search(r"^\s*type:\s*prometheus\s*$", ds, re.M)
    assert re.search(r"^\s*uid:\s*[A-Za-z0-9_-]{1,40}\s*$", ds, re.M)
    assert re.search(r"^\s*url:\s*http://localhost:9090\s*$", ds, re.M)
    prom = PROMETHEUS_YML.read_text()
    assert re.search(r"^\s*-\s*job_name:\s*dsgen\b", prom, re.M)
    assert '"127.0.0.1:9478"' in prom and re.search(r"^\s*-\s*dsgen-alerts\.yml", prom, re.M)


# -- promtool --------------------------------------------------------------------------------

def binary(name: str) -> str:
    """`name` from PATH or .ci/bin (.ci/install-tools unpacks it); skip locally, fail in CI."""
    found = shutil.which(name) or shutil.which(name, path=str(REPO / ".ci" / "bin"))
    if found:
        return found
    why = f"{name} not found on PATH or in .ci/bin: run .ci/install-tools"
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this test must run)")
    print(why)
    pytest.skip(why)


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool with a timeout, capturing its output."""
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def test_alert_rules_and_scrape_config_pass_promtool_check() -> None:
    """`promtool check rules` accepts the alert rules without a warning, and `promtool check
    config` accepts the example prometheus.yml and the rule file it loads."""
    tool = binary("promtool")
    rules = run_tool(tool, "check", "rules", str(ALERTS))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in rules.stdout, rules.stdout
    assert "WARNING" not in rules.stdout + rules.stderr
    config = run_tool(tool, "check", "config", str(PROMETHEUS_YML))
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout, config.stdout


def test_alert_rule_unit_tests_pass_and_cover_every_alert() -> None:
    """`promtool test rules` passes, and every alert in the rules file has a unit test that
    expects it quiet and one that expects it firing."""
    tool = binary("promtool")
    rules = set(re.findall(r"^\s*-\s*alert:\s*(\w+)", ALERTS.read_text(), re.M))
    assert rules == ALERT_NAMES
    text = ALERT_TESTS.read_text()
    cases = re.findall(r"alertname:\s*(\w+)\s*\n\s*exp_alerts:(\s*\[\])?", text)
    quiet = {name for name, empty in cases if empty}
    firing = {name for name, empty in cases if not empty}
    assert quiet == rules and firing == rules
    result = run_tool(tool, "test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- live: a real dsgen daemon scraped by a real Prometheus ----------------------------------

DSGEN_CONFIG = """\
output_root = "out"
state_dir = "state"
workers = 2
segment_slots = 4
status_seconds = 0.5

[metrics]
port = {port}

[daemon]
rescan_seconds = 1.0
idle_seconds = 0.2

[formats.tiny]
width = 96
height = 96
scale = 3

[formats.wide]
width = 192
height = 108
scale = 3

[categories.alpha]
target = {alpha}
formats = {{ tiny = 1.0 }}

[categories.beta]
target = {beta}
formats = {{ tiny = 0.5, wide = 0.5 }}

[[videos]]
name = "first"
path = "{first}"
categories = ["alpha", "beta"]

[[videos]]
name = "second"
path = "{second}"
categories = ["alpha"]
"""
# Two phases, so Prometheus surely scrapes counters while they grow: the first targets are
# met, then a SIGHUP reload raises them (which also exercises the reload metrics).
PHASES = ({"alpha": 10, "beta": 4}, {"alpha": 30, "beta": 12})
WORKERS = 2
# What Grafana's macros become: range queries as at a 1 s scrape interval; instant queries
# with windows wide enough to hold the whole run.
RANGE_MACROS = {"__rate_interval": "15s", "__interval": "1s", "__range": "5m",
                "__range_s": "300"}
INSTANT_MACROS = {"__rate_interval": "5m", "__interval": "5s", "__range": "5m",
                  "__range_s": "300"}
TIMEOUT = 120.0


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with Grafana's `$name` / `${name}` variables replaced (unknown ones fail)."""
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"unknown variable ${name} in {expr}"
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def durable_samples(state_dir: Path) -> int:
    """Samples recorded in dsgen's state database (0 before it exists)."""
    try:
        db = sqlite3.connect(f"file:{state_dir / 'dsgen.sqlite3'}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0
    try:
        return int(db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


@dataclass
class Live:
    """A running Prometheus that has scraped a dsgen daemon through both phases."""

    api: str            # http://127.0.0.1:PORT/api/v1
    job: str
    instance: str
    start: float        # Unix time just before dsgen started
    total: int          # samples at the end

    def get(self, path: str, **params: str) -> Any:
        """GET an API path; returns `data` after asserting status success."""
        url = f"{self.api}/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path} {params}: HTTP {e.code}: {e.read().decode()}") from e
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query at now."""
        data = self.get("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def values(self, expr: str) -> list[float]:
        """The values of an instant query at now."""
        return [float(s["value"][1]) for s in self.instant(expr)]

    def wait(self, cond: Callable[[], bool], what: str, procs: list[subprocess.Popen[bytes]]
             ) -> None:
        """Poll `cond()` until true (bounded); fail early if a process died."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            for p in procs:
                assert p.poll() is None, f"{p.args[0]} exited with {p.returncode} ({what})"
            try:
                if cond():
                    return
            except (AssertionError, OSError, ValueError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"timed out after {TIMEOUT:.0f}s waiting for {what}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Prometheus (1 s scrape and rule evaluation, the alert rules loaded) scraping a
    `dsgen daemon` on loopback through two phases of real extraction, kept up afterwards."""
    prometheus = binary("prometheus")
    work = tmp_path_factory.mktemp("grafana-live")
    videos = {}
    for name, seed in (("first", 301), ("second", 302)):
        videos[name] = make_video(work / f"{name}.mkv", SynthSpec(
            name, "h264", 640, 360, 240, cuts=(60, 150), gop=24, seed=seed))
    dsgen_port, prom_port = free_port(), free_port()
    instance = f"127.0.0.1:{dsgen_port}"
    cfg = work / "dsgen.toml"

    def write_config(targets: dict[str, int]) -> None:
        cfg.write_text(DSGEN_CONFIG.format(port=dsgen_port, first=videos["first"],
                                           second=videos["second"], **targets))

    write_config(PHASES[0])
    # JSON is YAML: the example config's job and rules, with a 1 s cadence and our port.
    prom_cfg = work / "prometheus.yml"
    prom_cfg.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "dsgen",
                            "static_configs": [{"targets": [instance]}]}]}))
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        prom_log = (work / "prometheus.log").open("wb")
        logs.append(prom_log)
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={prom_cfg}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=prom_log, stderr=subprocess.STDOUT, cwd=work))
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env["PYTHONUNBUFFERED"] = "1"
        lv = Live(f"http://127.0.0.1:{prom_port}/api/v1", "dsgen", instance, 0.0,
                  sum(PHASES[-1].values()))

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready",
                                        timeout=5) as r:
                return bool(r.status == 200)

        lv.wait(ready, "Prometheus to be ready", procs)
        lv.start = time.time() - 2
        dsgen_log = (work / "dsgen.log").open("wb")
        logs.append(dsgen_log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dsgen.cli", "daemon", "--config", str(cfg)],
            stdout=dsgen_log, stderr=subprocess.STDOUT, cwd=work, env=env))
        scraped = f'sum(dsgen_samples{{job="dsgen", instance="{instance}"}})'
        for i, targets in enumerate(PHASES):
            if i:
                write_config(targets)
                procs[1].send_signal(signal.SIGHUP)
            n = sum(targets.values())
            lv.wait(lambda n=n: durable_samples(work / "state") == n,
                    f"{n} samples in the state", procs)
            lv.wait(lambda n=n: lv.values(scraped) == [n],
                    f"Prometheus to scrape {n} samples", procs)
        # A few more scrapes and rule evaluations with everything settled.
        lv.wait(lambda: lv.values(f'count_over_time(up{{instance="{instance}"}}[1h])')[0]
                >= 8, "eight scrapes", procs)
        yield lv
    finally:
        for p in reversed(procs):
            stop(p)
        for f in logs:
            f.close()
        for name in ("dsgen.log", "prometheus.log"):
            path = work / name
            if path.exists():
                print(f"--- {name} (last 20 lines)")
                print("\n".join(path.read_text(errors="replace").splitlines()[-20:]))


def series_values(series: list[dict[str, Any]]) -> list[float]:
    """Every point value of a vector or matrix result."""
    out = []
    for s in series:
        points = s["values"] if "values" in s else [s["value"]]
        out.extend(float(v) for _, v in points)
    return out


@pytest.mark.slow
def test_every_panel_expression_returns_data_from_a_live_dsgen(live: Live) -> None:
    """Every expression of every panel, with the variables set to the live job and instance
    (and to All), evaluates without error to a non-empty result, both as an instant query
    and as a range query over the run; key panels show what the run really did."""
    dash = dashboard()
    exprs = expressions(dash)
    real = {"job": live.job, "instance": live.instance}
    everything = {"job": ".*", "instance": ".*"}
    now = time.time()
    results: dict[str, list[dict[str, Any]]] = {}
    evaluated = 0
    for title, ref, expr in exprs:
        for variables in (real, everything):
            q = substitute(expr, {**variables, **INSTANT_MACROS})
            got = live.instant(q)
            assert got, f"{title}/{ref}: no data for {q}"
            evaluated += 1
            if variables is real:
                results[f"{title}/{ref}"] = got
        q = substitute(expr, {**real, **RANGE_MACROS})
        data = live.get("query_range", query=q, start=f"{live.start:.3f}", end=f"{now:.3f}",
                        step="1")
        assert data["resultType"] == "matrix" and data["result"], f"{title}/{ref}: {q}"
        assert any(s["values"] for s in data["result"]), f"{title}/{ref}: {q}"
        evaluated += 1
    assert evaluated == 3 * len(exprs) and len(exprs) >= 40
    print(f"{len(exprs)} panel expressions, {evaluated} queries, all non-empty")

    def vals(key: str) -> list[float]:
        return series_values(results[key])

    total, targets = live.total, PHASES[-1]
    assert vals("Overall progress/A") == [1.0]
    assert vals("Samples / target/A") == [total] and vals("Samples / target/B") == [total]
    assert vals("Videos done/B") == [2]
    assert vals("Patches/min/A")[0] > 0
    assert 0 < vals("Clip success rate/A")[0] <= 1
    assert vals("ETA/A") == [0]  # every target met: nothing left
    assert vals("Paused/A") == [0] and vals("Config reload/A") == [1]
    assert vals("Scrape/A") == [1]
    assert sorted(vals("Progress per category/A")) == [1.0, 1.0]
    owed = {s["metric"]["category"]: float(s["value"][1])
            for s in results["Category breakdown/A"]}
    assert owed == {k: float(v) for k, v in targets.items()}
    assert sum(vals("Workers busy / idle/A")) == WORKERS
    assert {s["metric"]["result"]: float(s["value"][1]) > 0
            for s in results["Config reloads/A"]} == {"success": True, "failure": False}
    mean = {s["metric"]["stage"]: float(s["value"][1])
            for s in results["Stage time per item: mean/A"]}
    assert all(mean[stage] > 0 for stage in ("decode", "quality", "patch", "encode"))
    build = results["Build info/A"]
    assert len(build) == 1 and build[0]["metric"]["version"] == __version__


@pytest.mark.slow
def test_template_variables_find_the_live_job_and_instance(live: Live) -> None:
    """The job and instance variables' label_values() queries list the scraped dsgen."""
    found = {}
    for name, selector, label in variable_queries(dashboard()):
        match = substitute(selector, {"job": live.job, "instance": live.instance})
        found[name] = live.get(f"label/{label}/values", **{"match[]": match})
    assert found == {"job": [live.job], "instance": [live.instance]}


@pytest.mark.slow
def test_alert_rules_evaluate_cleanly_against_a_live_dsgen(live: Live) -> None:
    """Prometheus loaded every alert rule and evaluated each with health ok and no error,
    each rule's expression also runs through the query API, and a healthy run fires none."""
    def evaluated() -> bool:
        rules = [r for g in live.get("rules")["groups"] for r in g["rules"]]
        return bool(rules) and all(r["health"] != "unknown" for r in rules)

    deadline = time.monotonic() + 30
    while not evaluated() and time.monotonic() < deadline:
        time.sleep(0.5)
    rules = [r for g in live.get("rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == ALERT_NAMES
    for r in rules:
        assert r["type"] == "alerting", r["name"]
        assert r["health"] == "ok" and not r.get("lastError"), (r["name"], r.get("lastError"))
        assert r["state"] != "firing", (r["name"], r["alerts"])
        live.instant(r["query"])  # status success; an empty result is a quiet alert
