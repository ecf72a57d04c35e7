"""Command line: `dsgen run | daemon | demo | config check | config import | migrate |
manifest | state check | state recover` (and `monitor`, `status` from monitor.py)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dsgen import __version__
from dsgen.config import MAX_WORKERS, Config, VideoCfg, load_config
from dsgen.errors import EXIT_ERROR, EXIT_OK, DsgenError, VideoError
from dsgen.statelock import StateLock

if TYPE_CHECKING:
    from dsgen.probe import QuickProbe  # PyAV: imported only where a header is read

# What `run` and `config check` say about a config that names nothing to extract.
NOTHING_TO_DO = ("no [[videos]] and no [[watch]] folders: there is nothing to extract",
                 "add [[videos]] tables or [[watch]] folders (see docs/config.md)")
# Header reads `config check` runs at once: they wait on the disk (a NAS) and in libav with
# the GIL released, so a few per core overlap (4 threads read H.264 headers 2.3× faster
# than one on 2 cores).
HEADER_THREADS = 8


def workers_arg(text: str) -> int:
    """`--workers N`: the config's range, 0 (one per core) to MAX_WORKERS."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= n <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"{n} is out of range: use 0 (one per CPU core) to {MAX_WORKERS}")
    return n


def _serve(args: argparse.Namespace, daemon: bool) -> int:
    """`dsgen run` / `dsgen daemon`: the engine with metrics, sd_notify and the chosen logs."""
    from dataclasses import replace

    cfg = load_config(args.config)
    if args.workers is not None:
        cfg = replace(cfg, workers=args.workers)
    lock = StateLock.acquire(cfg.state_dir)  # a second run is refused before anything starts
    try:
        return _serve_locked(args, cfg, daemon, lock)
    finally:
        lock.release()


def _serve_locked(args: argparse.Namespace, cfg: Config, daemon: bool, lock: StateLock
                  ) -> int:
    """The engine and its companions, the state dir locked."""
    from dsgen.engine import Engine
    from dsgen.metrics import Metrics
    from dsgen.notify import Notifier
    from dsgen.report import Reporter

    fmt = args.log_format or ("json" if daemon else "text")
    reporter = Reporter()
    if fmt != "text":
        from dsgen.logs import configure_logging, get_logger

        configure_logging("json" if fmt == "json" else "console", args.log_level)
        reporter = Reporter(log=get_logger("dsgen"))
    metrics = None
    if cfg.metrics.enabled:
        metrics = Metrics()
        try:
            port = metrics.start_http(cfg.metrics.port, cfg.metrics.address)
            reporter.line(f"✓ Metrics on http://{cfg.metrics.address}:{port}/metrics",
                          event="metrics_listening", address=cfg.metrics.address, port=port)
        except (OSError, UnicodeError, ValueError) as e:  # port taken, address unknown…
            reporter.warn("Metrics endpoint not started",
                          [f"Address: {cfg.metrics.address}:{cfg.metrics.port}", f"Error: {e}"],
                          ["Another process uses the port? Set [metrics] port or enabled = false"],
                          event="metrics_failed", error=str(e))
            metrics = None
    if not cfg.videos and not cfg.watch:
        reporter.warn("Nothing to extract", [f"Config: {cfg.source}", NOTHING_TO_DO[0]],
                      [NOTHING_TO_DO[1]], event="no_videos")
    # Workers must not inherit NOTIFY_SOCKET: only the main process speaks to systemd.
    notifier = Notifier(unset_environment=True)
    engine = Engine(cfg, reporter, daemon=daemon, metrics=metrics, notifier=notifier,
                    lock=lock)
    engine.install_signals()
    try:
        if not daemon and fmt == "text" and not args.no_tui and sys.stdout.isatty():
            from dsgen.tui import run_with_dashboard

            return run_with_dashboard(engine)
        return engine.run()
    finally:
        if metrics is not None:
            metrics.stop_http()


def _cmd_run(args: argparse.Namespace) -> int:
    return _serve(args, daemon=False)


def _cmd_daemon(args: argparse.Namespace) -> int:
    return _serve(args, daemon=True)


def _cmd_demo(args: argparse.Namespace) -> int:
    from dsgen.demo import run_demo

    return run_demo(Path(args.dir), workers=args.workers)


def _summary(cfg: Config) -> list[str]:

    lines = [f"config: {cfg.source}", f"output_root: {cfg.output_root}",
             f"state_dir: {cfg.state_dir}",
             f"workers: {cfg.worker_count}, seed: {cfg.seed}, layout: {cfg.layout}, "
             f"PNG level {cfg.png_compression}, LR filter {cfg.extraction.lr_filter}"]
    if cfg.layout == "stacked":
        aliases = ", ".join(f"{n} → LR_{k}frames" for n, k in cfg.lr_aliases) or "none"
        folders = (f"bucket folders of {cfg.bucket_size}" if cfg.bucket_size
                   else "flat folders")
        lines.append(f"files: {folders}, LR aliases: {aliases}")
    lines.append(f"formats ({len(cfg.formats)}):")
    for f in cfg.formats:
        lw, lh = f.lr_size
        lines.append(f"  {f.name:<14} GT {f.width}×{f.height} → LR {lw}×{lh} (×{f.scale}) "
                     f"{f.mode:<6} → {f.dir}")
    lines.append(f"categories ({len(cfg.categories)}):")
    for c in cfg.categories:
        mix = ", ".join(f"{n} {w:g}" for n, w in c.formats)
        lines.append(f"  {c.name:<14} target {c.target:>9,}  → {c.path}  [{mix}]")
        val = c.validation
        if c.val_target:
            source = (f"held-out videos {', '.join(val.videos)}" if val.videos else
                      f"held-out time ranges, guard {val.guard_seconds:g} s")
            vmix = ", ".join(f"{n} {w:g}" for n, w in c.val_formats)
            lines.append(f"  {'':<14} validation {c.val_target:>5,}  → {c.path}/{val.dir}  "
                         f"[{vmix}] from {source}")
        else:
            lines.append(f"  {'':<14} no validation split: trainers that read {val.dir}/GT "
                         f"need [categories.{c.name}.validation]")
    total, found, problems = 0.0, 0, []
    for v, q in zip(cfg.videos, _headers(cfg), strict=True):
        if isinstance(q, VideoError):
            problems.append(f"  ⚠ {v.name}: {v.path}: {q.reason}")
        else:
            total += q.duration_s
            found += 1
    lines.append(f"videos: {len(cfg.videos)} configured, {found} readable, total duration "
                 f"{total / 3600:.2f} h")
    lines.extend(problems)
    for w in cfg.watch:
        cats = ", ".join(c for c, _ in w.categories)
        there = "" if w.path.is_dir() else "  ⚠ folder not found"
        lines.append(f"watch: {w.path} → {cats} ({'recursive' if w.recursive else 'top level'}, "
                     f"{'polling' if w.poll else 'inotify'}){there}")
    if cfg.metrics.enabled:
        lines.append(f"metrics: http://{cfg.metrics.address}:{cfg.metrics.port}/metrics")
    if not cfg.videos and not cfg.watch:
        lines.append(f"⚠ {NOTHING_TO_DO[0]}\n  → {NOTHING_TO_DO[1]}")
    return lines


def _headers(cfg: Config) -> list[QuickProbe | VideoError]:
    """Each configured video's header: as the state recorded it for a file unchanged since
    (same size and mtime), else read — several at once (the reads wait for the disk and
    for libav, which lets other threads run)."""
    from concurrent.futures import ThreadPoolExecutor

    from dsgen.library import check_regular_file, unchanged_header
    from dsgen.probe import quick_probe
    from dsgen.state import State

    rows = {}
    if (cfg.state_dir / "dsgen.sqlite3").exists():
        with contextlib.suppress(DsgenError, sqlite3.Error):
            st = State(cfg.state_dir, readonly=True)
            try:
                rows = {r.name: r for r in st.videos(probes=False)}
            finally:
                st.close()

    def one(v: VideoCfg) -> QuickProbe | VideoError:
        try:
            check_regular_file(v.path)
            return unchanged_header(v, rows.get(v.name)) or quick_probe(v.path)
        except VideoError as e:
            return e
    with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
        return list(pool.map(one, cfg.videos))


def _cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    for line in _summary(cfg):
        print(line)
    print("✓ config is valid")
    return EXIT_OK


def _cmd_config_import(args: argparse.Namespace) -> int:
    from dsgen.config_import import import_file

    result = import_file(Path(args.file), Path(args.templates) if args.templates else None)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(result.toml)
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from dsgen.migrate import migrate

    cfg = load_config(args.config)
    # Moving files under a running dsgen would lose samples: one writer per state dir.
    lock = None if args.dry_run else StateLock.acquire(cfg.state_dir)
    try:
        report = migrate(cfg, dry_run=args.dry_run)
    finally:
        if lock is not None:
            lock.release()
    for line in report.lines(args.dry_run):
        print(line)
    if report.old == report.new and not report.samples:
        print("✓ nothing to move: the files are already named as the config asks")
    elif not args.dry_run:
        print(f"✓ the dataset is now named {report.new.describe()}")
    return EXIT_ERROR if report.missing else EXIT_OK


def _cmd_manifest(args: argparse.Namespace) -> int:
    from dsgen.manifest import manifest_records
    from dsgen.state import State, check_damage_mark

    cfg = load_config(args.config)
    check_damage_mark(cfg.state_dir)
    st = State(cfg.state_dir, readonly=True)
    n = 0
    with contextlib.ExitStack() as stack:
        stack.callback(st.close)
        st.check_quick()  # an export of every sample: damage anywhere must not pass unseen
        out = (stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output
               else sys.stdout)
        for rec in manifest_records(cfg, st):
            out.write(json.dumps(rec, sort_keys=True) + "\n")
            n += 1
    print(f"{n} samples", file=sys.stderr)
    return EXIT_OK


def _cmd_state_check(args: argparse.Namespace) -> int:
    from dsgen.statecheck import check

    cfg = load_config(args.config)
    report = check(cfg, files=not args.no_files)
    for line in report.lines:
        print(line)
    if report.healthy:
        print("✓ the state is whole")
        return EXIT_OK
    if report.damaged:
        print(f"→ rebuild it with: dsgen state recover --config {args.config}")
    else:
        print(f"→ dsgen state recover --config {args.config} makes their slots pending: the "
              "next run redoes them with the same bytes")
    return EXIT_ERROR


def _cmd_state_recover(args: argparse.Namespace) -> int:
    from dsgen.statecheck import recover

    cfg = load_config(args.config)
    rec = recover(cfg, force=args.force)
    for line in rec.lines:
        print(line)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    p = argparse.ArgumentParser(prog="dsgen", description=(
        "Turn a library of long videos into video super-resolution training datasets."))
    p.add_argument("--version", action="version", version=f"dsgen {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    for name, func, text in (
            ("run", _cmd_run, "extract in the foreground until every category reaches its target"),
            ("daemon", _cmd_daemon, "run as a service: never exit on completion, pick up new "
                                    "videos and config changes")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--config", "-c", required=True, help="TOML config file")
        cmd.add_argument("--workers", type=workers_arg,
                         help=f"override the config's workers (0 = one per core, up to "
                              f"{MAX_WORKERS})")
        cmd.add_argument("--log-format", choices=("text", "json", "console"),
                         help="text: plain lines (run's default); json: one JSON event per "
                              "line (daemon's default, for journald); console: structured, "
                              "for humans")
        cmd.add_argument("--log-level", default="info",
                         choices=("debug", "info", "warning", "error"))
        cmd.add_argument("--no-tui", action="store_true",
                         help="plain lines instead of the live dashboard (automatic when "
                              "stdout is not a terminal)")
        cmd.set_defaults(func=func)

    demo = sub.add_parser("demo", help="make synthetic videos and run the full pipeline on them")
    demo.add_argument("dir", nargs="?", default="./dsgen-demo", help="work dir (./dsgen-demo)")
    demo.add_argument("--workers", type=workers_arg, default=0,
                      help=f"worker processes (0 = one per core, up to {MAX_WORKERS})")
    demo.set_defaults(func=_cmd_demo)

    cfg = sub.add_parser("config", help="check or import configuration")
    csub = cfg.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a config and print a summary")
    check.add_argument("file")
    check.set_defaults(func=_cmd_config_check)
    imp = csub.add_parser("import", help="convert the predecessor's generator_config.json or "
                                         "generator_config_v2.json (any generation)")
    imp.add_argument("file")
    imp.add_argument("--templates", metavar="FILE",
                     help="the templates.json of a V2 config with format templates (default: "
                          "the one beside FILE)")
    imp.set_defaults(func=_cmd_config_import)

    from dsgen.monitor import add_parsers as add_monitor_parsers

    add_monitor_parsers(sub)  # `dsgen monitor`, `dsgen status`

    mig = sub.add_parser("migrate", help="move a written dataset to the config's bucket_size "
                                         "and lr_aliases (e.g. from per-video folders to flat)")
    mig.add_argument("--config", "-c", required=True)
    mig.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    mig.set_defaults(func=_cmd_migrate)

    man = sub.add_parser("manifest", help="export per-sample provenance as JSON lines")
    man.add_argument("--config", "-c", required=True)
    man.add_argument("--output", "-o", help="file to write (default: stdout)")
    man.set_defaults(func=_cmd_manifest)

    state = sub.add_parser("state", help="check the state database, or rebuild a damaged one "
                                         "(docs/state.md)")
    ssub = state.add_subparsers(dest="state_command", required=True)
    chk = ssub.add_parser("check", help="integrity of the database, its backups and journal, "
                                        "and of every recorded sample's files")
    chk.add_argument("--config", "-c", required=True)
    chk.add_argument("--no-files", action="store_true",
                     help="skip reading the recorded files (a large dataset takes a while)")
    chk.set_defaults(func=_cmd_state_check)
    rcv = ssub.add_parser("recover", help="rebuild the database from its backup, journal and "
                                          "what the damaged file still gives (stop dsgen first)")
    rcv.add_argument("--config", "-c", required=True)
    rcv.add_argument("--force", action="store_true",
                     help="rebuild even when the database passes its integrity check")
    rcv.set_defaults(func=_cmd_state_recover)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dsgen` console script."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
    except DsgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except sqlite3.DatabaseError as e:  # met while iterating rows: the same message
        from dsgen.state import translate

        err = translate(e, "the state database")
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())
