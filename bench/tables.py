"""The benchmark's Markdown tables (per method, ratios with issue 10's targets, start-up)."""

from __future__ import annotations

from typing import Any

from common import fmt


def per_clip(m: dict[str, Any]) -> dict[str, float | None]:
    """Per-clip costs of one measured method (dsgen, bound, floor or predecessor)."""
    n = m.get("clips") or 0
    steady_cpu = m.get("steady_cpu")
    return {"s_per_clip": m["wall"] / n if n else None,
            "cpu_per_clip": m["cpu"] / n if n else None,
            "steady_cpu_per_clip": steady_cpu / n if n and steady_cpu is not None else None,
            "frames_per_clip": m["frames_decoded"] / n if n and m.get("frames_decoded")
            is not None else None,
            "cpu_per_sample": m["cpu"] / m["patches"] if m.get("patches") else None}


def _x(a: float | None, b: float | None) -> float | None:
    """How many times faster the cost a is than the cost b (b ÷ a)."""
    return b / a if a and b is not None else None


def ratios(r: dict[str, Any]) -> dict[str, float | None]:
    """dsgen's speed relative to each other method (> 1: dsgen is faster)."""
    d = r["dsgen"]["per_clip"]
    out: dict[str, float | None] = {}
    for key in ("baseline", "bound", "floor", "predecessor"):
        if key not in r:
            continue
        o = r[key]["per_clip"]
        out[f"{key}_cpu"] = _x(d["cpu_per_clip"], o["cpu_per_clip"])
        out[f"{key}_steady_cpu"] = _x(d["steady_cpu_per_clip"],
                                      o["steady_cpu_per_clip"] or o["cpu_per_clip"])
        out[f"{key}_wall"] = _x(d["s_per_clip"], o["s_per_clip"])
        if key in ("baseline", "predecessor"):
            out[f"{key}_cpu_per_sample"] = _x(d["cpu_per_sample"], o["cpu_per_sample"])
    return out


def targets(r: dict[str, Any]) -> str:
    """Issue 10's must-show for this row: met / MISSED (– where it does not apply)."""
    q, d = r["ratios"], r["dsgen"]["per_clip"]
    checks: list[str] = []
    if r["video"] == "2160p" and r["density"] == 3:
        fpc = d["frames_per_clip"]
        checks.append(f"frames/clip ≤ 10 {'met' if fpc is not None and fpc <= 10 else 'MISSED'}")
        if q.get("baseline_cpu") is not None:
            checks.append(f"≥ 3× today {'met' if q['baseline_cpu'] >= 3 else 'MISSED'}")
        if q.get("predecessor_cpu") is not None:
            checks.append(f"≥ 7× predecessor {'met' if q['predecessor_cpu'] >= 7 else 'MISSED'}")
    if r["density"] == 50 and q.get("baseline_cpu") is not None:
        checks.append(f"≥ 0.95× today {'met' if q['baseline_cpu'] >= 0.95 else 'MISSED'}")
    return "; ".join(checks) or "–"


LABELS = {"dsgen": "dsgen", "baseline": "today's dsgen (baseline)",
          "bound": "decode-only bound, today's strategy", "floor": "floor: keyframe + 7 frames",
          "predecessor": "predecessor (ffmpeg CLI)"}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| video | clips/min | method | clips | samples | wall s | s/clip | CPU s/clip | "
             "steady CPU s/clip | frames/clip | seeks | bg load |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for key, label in LABELS.items():
            if key not in r:
                continue
            m, pc = r[key], r[key]["per_clip"]
            if key == "predecessor" and m.get("subset"):
                label += f", {m['clips']}-clip subset"
            if key in ("dsgen", "baseline"):
                label += f" `{m.get('rev', '?')}`"
            est = "≈ " if key == "predecessor" else ""
            lines.append(
                f"| {r['video']} | {r['density']:g} | {label} | {m['clips']} | "
                f"{m.get('patches', '–') if m.get('patches') is not None else '–'} | "
                f"{m['wall']:.1f} | {fmt(pc['s_per_clip'], 3)} | {fmt(pc['cpu_per_clip'], 3)} | "
                f"{fmt(pc['steady_cpu_per_clip'], 3)} | {est}{fmt(pc['frames_per_clip'], 1)} | "
                f"{m.get('seeks', '–') if m.get('seeks') is not None else '–'} | "
                f"{fmt(m.get('other_load'))} |")
    lines += ["", "dsgen's speed relative to each (× = how many times faster dsgen is; by CPU "
              "s per clip end to end, (steady state), and by wall clock):", "",
              "| video | clips/min | × today's dsgen: CPU (steady) / wall | × predecessor: CPU / "
              "wall | × bound: CPU (steady) / wall | × floor: CPU (steady) / wall | "
              "decode share of worker time | issue 10 targets |",
              "|---|---:|---|---|---|---|---:|---|"]
    for r in results:
        q = r["ratios"]

        def cell(key: str, steady: bool = True, q: dict[str, Any] = q) -> str:
            if f"{key}_cpu" not in q:
                return "–"
            s = f" ({fmt(q[f'{key}_steady_cpu'])})" if steady else ""
            return f"{fmt(q[f'{key}_cpu'])}{s} / {fmt(q[f'{key}_wall'])}"

        st = r["dsgen"]["stages"]
        share = (st.get("decode", 0.0) / sum(st.values())) if st else None
        lines.append(f"| {r['video']} | {r['density']:g} | {cell('baseline')} | "
                     f"{cell('predecessor', False)} | {cell('bound')} | {cell('floor')} | "
                     f"{fmt(100 * share, 0) + '%' if share is not None else '–'} | "
                     f"{targets(r)} |")
    lines += ["", "Start-up (seconds from `Engine.run()`; CPU of the process tree) and "
              "steady state:", "",
              "| video | clips/min | run | pool created | workers started | first worker "
              "call | probe wall / CPU | first task starts | first sample written | "
              "end to end s | steady s | steady clips/s |",
              "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for key in ("dsgen", "baseline"):
            if key not in r:
                continue
            m = r[key]
            s = m["startup"]
            ws = ", ".join(f"{w:.2f}" for w in s["workers_started"]) or "–"
            steady = m["steady"]["wall"]
            lines.append(
                f"| {r['video']} | {r['density']:g} | {LABELS[key]} | {fmt(s['pool_created'])} "
                f"| {ws} | {fmt(s['first_worker_call'])} | {fmt(s['probe_wall'])} / "
                f"{fmt(s['probe_cpu'])} | {fmt(s['first_task_start'])} | "
                f"{fmt(s['first_sample_written'])} | {m['wall']:.1f} | {fmt(steady, 1)} | "
                f"{fmt(m['clips'] / steady if steady else None)} |")
    names: list[str] = []
    for r in results:
        names += [k for k in r["dsgen"]["stages"] if k not in names]
    lines += ["", "dsgen worker stage seconds (sum over workers) and outcomes:", "",
              "| video | clips/min | run | " + " | ".join(names) + " | outcomes |",
              "|---|---:|---|" + "---:|" * len(names) + "---|"]
    for r in results:
        for key in ("dsgen", "baseline"):
            if key not in r:
                continue
            s = r[key]["stages"]
            tot = sum(s.values()) or 1.0
            cells = " | ".join(f"{s.get(k, 0.0):.1f} ({100 * s.get(k, 0.0) / tot:.0f}%)"
                               for k in names)
            oc = ", ".join(f"{k} {v}" for k, v in sorted(r[key]["outcomes"].items()))
            lines.append(f"| {r['video']} | {r['density']:g} | {LABELS[key]} | {cells} | {oc} |")
    return "\n".join(lines)


def machine_table(info: dict[str, str]) -> str:
    rows = [("CPU", f"{info.get('cpu', '')}, {info.get('cores', '')} cores"),
            ("RAM", info.get("ram", "")), ("OS", info.get("os", "")),
            ("Python", info.get("python", "")),
            ("PyAV", f"{info.get('pyav', '')} (bundled FFmpeg: {info.get('pyav_ffmpeg', '')})"),
            ("Pillow / numpy", f"{info.get('pillow', '')} / {info.get('numpy', '')}"),
            ("ffmpeg CLI (predecessor only)", info.get("ffmpeg_cli", "not used")),
            ("dsgen measured", info.get("dsgen", "")),
            ("today's dsgen (baseline)", info.get("baseline", "not run"))]
    return "\n".join(["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])
