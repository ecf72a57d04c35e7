"""dsgen.config: `load_config` builds the frozen Config or fails with a ConfigError that says
where (file and key path), what (the bad value) and how to fix it.

Every test writes a real TOML file and loads it with `load_config`, as `dsgen run` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsgen.config import (
    PREDECESSOR_FORMATS,
    CategoryCfg,
    Config,
    DiskCfg,
    ExtractionCfg,
    FormatCfg,
    QualityCfg,
    VideoCfg,
    WatchCfg,
    load_config,
    slugify,
)
from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    CODECS,
    STAGE_TYPES,
    BlurStage,
    CodecStage,
    DegradationCfg,
    NoiseStage,
)
from dsgen.errors import EXIT_ERROR, ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "etc" / "dsgen.toml"
DOCS = REPO / "docs" / "config.md"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --------------------------------------------------------------------------- TOML helpers


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k)


def _val(v: Any) -> str:
    """A TOML value (inline tables for dicts); JSON string escapes are valid TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(doc: dict[str, Any]) -> str:
    """Top-level scalars, then [tables] (their sub-tables inline), then [[arrays of tables]]."""
    lines = [f"{_key(k)} = {_val(v)}" for k, v in doc.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                 and all(isinstance(x, dict) for x in v))]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]"] + [f"{_key(a)} = {_val(b)}" for a, b in v.items()]
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines += ["", f"[[{_key(k)}]]"] + [f"{_key(a)} = {_val(b)}"
                                                     for a, b in item.items()]
    return "\n".join(lines) + "\n"


def base_doc() -> dict[str, Any]:
    """A small valid config touching every section."""
    return {
        "output_root": "out",
        "state_dir": "state",
        "seed": 7,
        "extraction": {"frames_per_clip": 7, "lr_stacks": [5, 7],
                       "quality": {"black_level": 10.0}},
        "disk": {"min_free_gb": 1.0},
        "formats": {
            "small_540": {"width": 540, "height": 540, "scale": 3, "dir": "Patches"},
            "big": {"width": 1920, "height": 1080},
        },
        "categories": {
            "general": {"target": 10, "path": "General/Learn",
                        "formats": {"small_540": 0.7, "big": 0.3},
                        "degradations": {"mine": 0.5, "none": 0.5},
                        "format_degradations": {"big": {"toon_sd": 1.0}}},
            "toon": {"target": 5, "formats": ["small_540"]},
        },
        "degradations": {
            "mine": {"description": "test", "stages": [
                {"kind": "blur", "probability": 0.5, "sigma": [0.3, 0.9]},
                {"kind": "codec", "codecs": {"h264": 1.0, "mpeg2": 0.5}, "crf": [25, 30]},
            ]},
        },
        "videos": [
            {"name": "Film A", "path": "videos/a.mkv", "categories": {"general": 2.0, "toon": 1}},
            {"name": "Film B", "path": "/abs/b.mkv", "categories": ["general"]},
        ],
    }


def write(tmp: Path, doc: dict[str, Any] | str, name: str = "dsgen.toml") -> Path:
    path = tmp / name
    path.write_text(doc if isinstance(doc, str) else to_toml(doc), encoding="utf-8")
    return path


def load_error(tmp: Path, doc: dict[str, Any] | str) -> tuple[ConfigError, Path]:
    path = write(tmp, doc)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value, path


def set_in(doc: dict[str, Any], keys: tuple[Any, ...], value: Any) -> dict[str, Any]:
    node: Any = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return doc


def del_in(doc: dict[str, Any], keys: tuple[Any, ...]) -> dict[str, Any]:
    node: Any = doc
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return doc


# --------------------------------------------------------------------------- valid files


def test_example_config_loads_with_documented_values() -> None:
    """etc/dsgen.toml loads; its 5 formats, 3 categories and 2 videos come out as written, and
    every setting it spells out equals the code default (it says "keys left out take the
    defaults shown here")."""
    cfg = load_config(EXAMPLE)
    assert cfg.source == EXAMPLE
    assert [f.name for f in cfg.formats] == [f.name for f in PREDECESSOR_FORMATS]
    assert cfg.formats == PREDECESSOR_FORMATS
    assert [(c.name, c.target) for c in cfg.categories] == [
        ("general", 80000), ("space", 55000), ("toon", 30000)]
    assert cfg.category("general").formats == (
        ("small_540", 0.45), ("medium_169", 0.35), ("large_720", 0.20))
    assert cfg.category("space").path == "Space/SpaceModel/Learn"
    assert [v.name for v in cfg.videos] == ["Planet Earth 2 - S01E04 - Deserts", "Avatar (2009)"]
    assert cfg.videos[0].categories == (("general", 1.0),)
    assert cfg.videos[1].slug == "Avatar_2009"
    defaults = Config(source=EXAMPLE, output_root=cfg.output_root, state_dir=cfg.state_dir)
    for f in dataclasses.fields(Config):
        if f.name not in ("source", "formats", "categories", "videos", "watch", "degradations"):
            assert getattr(cfg, f.name) == getattr(defaults, f.name), f.name
    # Its degradation example: the built-ins plus one template, used by the toon category.
    assert [t.name for t in cfg.degradations] == [t.name for t in BUILTIN_TEMPLATES] + [
        "web_h264"]
    assert cfg.category("toon").degradations == (
        ("toon_sd", 0.4), ("web_h264", 0.2), ("none", 0.4))
    assert cfg.category("general").degradations == (("none", 1.0),)
    # The example's watched folder spells out every WatchCfg default but path/categories.
    (w,) = cfg.watch
    assert w.categories == (("general", 1.0),)
    assert w == dataclasses.replace(WatchCfg(path=w.path), categories=w.categories)


def test_valid_config_values_and_types(tmp_path: Path) -> None:
    """Values are converted to their declared types (int weights → float, lists → tuples),
    defaults fill what is left out (format dir = name, category path = name)."""
    cfg = load_config(write(tmp_path, base_doc()))
    assert cfg.seed == 7
    assert cfg.extraction.lr_stacks == (5, 7)
    assert cfg.extraction.quality == QualityCfg(black_level=10.0)
    assert cfg.disk == DiskCfg(min_free_gb=1.0)
    assert cfg.format("big") == FormatCfg("big", 1920, 1080, 3, "big", "crop")
    assert cfg.format("small_540").lr_size == (180, 180)
    assert cfg.category("toon") == CategoryCfg("toon", 5, "toon", (("small_540", 1.0),))
    assert cfg.category("general").formats == (("small_540", 0.7), ("big", 0.3))
    a = cfg.videos[0]
    assert a.categories == (("general", 2.0), ("toon", 1.0))
    assert all(isinstance(w, float) for _, w in a.categories)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 2  # type: ignore[misc]


def test_relative_paths_resolve_against_the_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """output_root, state_dir and video paths written relative are resolved against the folder
    of the config file, not the working directory; absolute paths are kept."""
    conf_dir = tmp_path / "conf" / "sub"
    conf_dir.mkdir(parents=True)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(conf_dir, base_doc())
    rel = Path("..") / "conf" / "sub" / "dsgen.toml"  # loaded through a relative path too
    for p in (path, rel):
        cfg = load_config(p)
        assert cfg.output_root == conf_dir.resolve() / "out"
        assert cfg.state_dir == conf_dir.resolve() / "state"
        assert cfg.videos[0].path == conf_dir.resolve() / "videos" / "a.mkv"
        assert cfg.videos[1].path == Path("/abs/b.mkv")
        assert cfg.status_path == cfg.output_root / ".generator_status.json"


def test_list_and_table_categories_are_equivalent(tmp_path: Path) -> None:
    """`categories = ["a", "b"]` means weight 1.0 each, the same as `{ a = 1, b = 1.0 }`."""
    d1 = base_doc()
    d1["videos"][0]["categories"] = ["general", "toon"]
    d2 = base_doc()
    d2["videos"][0]["categories"] = {"general": 1, "toon": 1.0}
    c1 = load_config(write(tmp_path, d1, "a.toml"))
    c2 = load_config(write(tmp_path, d2, "b.toml"))
    assert c1.videos == c2.videos
    assert c1.videos[0].categories == (("general", 1.0), ("toon", 1.0))


@pytest.mark.parametrize("formats", [None, {}])
def test_missing_or_empty_formats_give_the_predecessors_five(
        tmp_path: Path, formats: dict[str, Any] | None) -> None:
    """No [formats] table, or an empty one, gives the predecessor's 5 formats (names, sizes,
    folders), so categories can use them without defining anything."""
    doc = base_doc()
    del doc["formats"]
    del doc["categories"]["general"]["format_degradations"]
    doc["categories"]["general"]["formats"] = {"small_540": 1, "fullhd_1920": 1}
    doc["categories"]["toon"]["formats"] = ["medium_169", "large_720", "xlarge_1440"]
    text = to_toml(doc) + ("" if formats is None else "\n[formats]\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.formats == PREDECESSOR_FORMATS
    assert [(f.name, f.width, f.height, f.scale, f.dir) for f in cfg.formats] == [
        ("small_540", 540, 540, 3, "Patches"),
        ("medium_169", 720, 405, 3, "Patches_Medium169"),
        ("large_720", 720, 720, 3, "Patches_Large"),
        ("xlarge_1440", 1440, 810, 3, "Patches_XLarge169"),
        ("fullhd_1920", 1920, 1080, 3, "Patches_FullHD"),
    ]


def test_no_videos_is_valid(tmp_path: Path) -> None:
    """A config without [[videos]] loads (nothing to extract yet) with an empty video list."""
    doc = base_doc()
    del doc["videos"]
    assert load_config(write(tmp_path, doc)).videos == ()


# --------------------------------------------------------------------------- errors


def assert_good_error(err: ConfigError, path: Path, key: str, value: str | None,
                      fix: str | None = None) -> None:
    """The message names the file, the key path, the bad value (if there is one) and a fix."""
    text = str(err)
    assert err.exit_code == EXIT_ERROR
    assert err.key == key, text
    assert err.file == str(path)
    assert text.startswith(f"{path}: {key}: "), text
    if value is not None:
        assert value in err.message, text
    assert err.hint, text
    assert f"\n  → {err.hint}" in text
    if fix is not None:
        assert fix in err.hint, text


# (mutation of base_doc, expected key path, expected value text, expected fix text)
Mutation = tuple[tuple[Any, ...], Any]
D = ("degradations", "mine", "stages")  # the base document's template's stages
ERROR_CASES: list[tuple[str, list[Mutation], str, str | None, str | None]] = [
    # typos: unknown keys at every level, with "did you mean"
    ("top typo", [(("seeed",), 3)], "seeed", None, "did you mean 'seed'"),
    ("section typo", [(("extractoin",), {"max_attempts": 3})], "extractoin", None,
     "did you mean 'extraction'"),
    ("extraction typo", [(("extraction", "frames_per_clp"), 7)], "extraction.frames_per_clp",
     None, "did you mean 'frames_per_clip'"),
    ("quality typo", [(("extraction", "quality", "black_levl"), 1.0)],
     "extraction.quality.black_levl", None, "did you mean 'black_level'"),
    ("disk typo", [(("disk", "min_fre_gb"), 1.0)], "disk.min_fre_gb", None,
     "did you mean 'min_free_gb'"),
    ("format typo", [(("formats", "small_540", "widht"), 540)], "formats.small_540.widht",
     None, "did you mean 'width'"),
    ("category typo", [(("categories", "general", "targte"), 3)], "categories.general.targte",
     None, "did you mean 'target'"),
    ("video typo", [(("videos", 0, "pth"), "x.mkv")], "videos[0].pth", None,
     "did you mean 'path'"),
    ("unknown key no suggestion", [(("disk", "zzzz"), 1)], "disk.zzzz", None, "remove it"),
    ("source is not a key", [(("source",), "x.toml")], "source", None, "remove it"),
    ("name inside a format", [(("formats", "big", "name"), "x")], "formats.big.name", None,
     "format name"),
    ("quality at top level", [(("quality",), {"black_level": 1.0})], "quality", None, None),
    # wrong types
    ("int as string", [(("workers",), "4")], "workers", "'4'", "whole number"),
    ("float for int", [(("seed",), 1.5)], "seed", "1.5", "whole number"),
    ("bool for int", [(("extraction", "max_attempts"), True)], "extraction.max_attempts",
     "True", "whole number"),
    ("string for float", [(("disk", "min_free_gb"), "2GB")], "disk.min_free_gb", "'2GB'",
     "number"),
    ("number for string", [(("formats", "big", "dir"), 5)], "formats.big.dir", "5", "quote"),
    ("number for path", [(("state_dir",), 5)], "state_dir", "5", "path"),
    ("literal typo", [(("layout",), "stackd")], "layout", "'stackd'",
     "did you mean 'stacked'"),
    ("lr_filter typo", [(("extraction", "lr_filter"), "bicubc")], "extraction.lr_filter",
     "'bicubc'", "did you mean 'bicubic'"),
    ("mode typo", [(("formats", "big", "mode"), "crp")], "formats.big.mode", "'crp'",
     "crop"),
    ("list item type", [(("extraction", "lr_stacks"), [5, "7"])], "extraction.lr_stacks[1]",
     "'7'", "whole number"),
    ("scalar for list", [(("extraction", "lr_stacks"), 5)], "extraction.lr_stacks", "5",
     "list"),
    ("section not a table", [(("disk",), 5)], "disk", "5", "[disk]"),
    ("formats not a table", [(("formats",), 5)], "formats", "5", "[formats."),
    ("videos not a list", [(("videos",), "a.mkv")], "videos", "'a.mkv'", "[[videos]]"),
    # references
    ("unknown format", [(("categories", "general", "formats"), {"small_54": 1.0})],
     "categories.general.formats.small_54", "'small_54'", "did you mean 'small_540'"),
    ("unknown category", [(("videos", 1, "categories"), ["genral"])],
     "videos[1].categories.genral", "'genral'", "did you mean 'general'"),
    ("non-string in list", [(("videos", 0, "categories"), ["general", ["toon"]])],
     "videos[0].categories[1]", "['toon']", '["general"]'),
    ("empty mix", [(("categories", "toon", "formats"), [])], "categories.toon.formats", "[]",
     None),
    ("zero weight", [(("videos", 0, "categories"), {"general": 0})],
     "videos[0].categories.general", "0", "weight > 0"),
    ("negative weight", [(("categories", "general", "formats"), {"big": -1.0})],
     "categories.general.formats.big", "-1.0", "weight > 0"),
    ("infinite weight", [(("videos", 0, "categories"), {"general": math.inf})],
     "videos[0].categories.general", "inf", "weight > 0"),
    ("nan weight", [(("categories", "general", "formats"), {"big": math.nan})],
     "categories.general.formats.big", "nan", "weight > 0"),
    # videos
    ("duplicate name", [(("videos", 1, "name"), "Film A")], "videos[1].name", "'Film A'",
     "unique"),
    ("same slug", [(("videos", 1, "name"), "Film  A!")], "videos[1].name", "Film_A",
     "differ"),
    # formats
    ("width not divisible", [(("formats", "small_540", "width"), 541)],
     "formats.small_540.width", "541", "e.g. 540"),
    ("height not divisible", [(("formats", "big", "scale"), 4), (("formats", "big", "height"),
                                                                 1082)],
     "formats.big.height", "1082", "multiple of 4"),
    ("format too small", [(("formats", "big", "width"), 3), (("formats", "big", "scale"), 1)],
     "formats.big.width", "3", "from 8"),
    ("dir escapes", [(("formats", "big", "dir"), "../elsewhere")], "formats.big.dir",
     "'../elsewhere'", "relative"),
    ("dir absolute", [(("formats", "big", "dir"), "/tmp/x")], "formats.big.dir", "'/tmp/x'",
     "relative"),
    ("category path escapes", [(("categories", "toon", "path"), "a/../../b")],
     "categories.toon.path", "'a/../../b'", "relative"),
    ("category path absolute", [(("categories", "toon", "path"), "/srv/x")],
     "categories.toon.path", "'/srv/x'", "relative"),
    ("two categories, one folder", [(("categories", "toon", "path"), "General/./Learn/")],
     "categories.toon.path", "'General/./Learn/'", "own folder"),
    ("two formats, one folder", [(("formats", "big", "dir"), "Patches")],
     "categories.general.formats.big", "'Patches'", None),
    # extraction
    ("even frames_per_clip", [(("extraction", "frames_per_clip"), 6)],
     "extraction.frames_per_clip", "6", "odd"),
    ("tiny frames_per_clip", [(("extraction", "frames_per_clip"), 1),
                              (("extraction", "lr_stacks"), [1])],
     "extraction.frames_per_clip", "1", "odd"),
    ("lr_stacks > frames_per_clip", [(("extraction", "lr_stacks"), [5, 9])],
     "extraction.lr_stacks[1]", "9", "[5, 7]"),
    ("even lr stack", [(("extraction", "lr_stacks"), [4])], "extraction.lr_stacks[0]", "4",
     "odd"),
    ("duplicate lr stack", [(("extraction", "lr_stacks"), [5, 5])], "extraction.lr_stacks[1]",
     "5", None),
    ("no lr stack", [(("extraction", "lr_stacks"), [])], "extraction.lr_stacks", "[]", None),
    ("basicsr with 9 frames", [(("layout",), "basicsr"), (("extraction", "frames_per_clip"), 9)],
     "extraction.frames_per_clip", "9", "frames_per_clip = 7"),
    ("basicsr with 5 frames", [(("layout",), "basicsr"), (("extraction", "frames_per_clip"), 5),
                               (("extraction", "lr_stacks"), [5])],
     "extraction.frames_per_clip", "5", "frames_per_clip = 7"),
    ("range", [(("png_compression",), 12)], "png_compression", "12", "0 to 9"),
    ("negative seed", [(("seed",), -1)], "seed", "-1", "from 0"),
    ("nan threshold", [(("extraction", "scene_cut_threshold"), math.nan)],
     "extraction.scene_cut_threshold", "nan", None),
    ("negative quality", [(("extraction", "quality", "crop_min_std"), -1.0)],
     "extraction.quality.crop_min_std", "-1.0", None),
    ("inf disk", [(("disk", "check_seconds"), math.inf)], "disk.check_seconds", "inf", None),
    ("status file escapes", [(("status_file",), "../status.json")], "status_file",
     "'../status.json'", "relative"),
    ("empty status file", [(("status_file",), "")], "status_file", "''", None),
    ("negative target", [(("categories", "toon", "target"), -5)], "categories.toon.target",
     "-5", None),
    # degradation templates and mixes
    ("unknown template in a mix", [(("categories", "general", "degradations"),
                                    {"dvd_film_balancd": 1.0})],
     "categories.general.degradations.dvd_film_balancd", "'dvd_film_balancd'",
     "did you mean 'dvd_film_balanced'"),
    ("mix weights sum to 0", [(("categories", "general", "degradations"),
                               {"mine": 0, "none": 0.0})],
     "categories.general.degradations", "sum to 0", "weight > 0"),
    ("negative mix weight", [(("categories", "general", "degradations"), {"mine": -1})],
     "categories.general.degradations.mine", "-1", "≥ 0"),
    ("mix is not a table", [(("categories", "general", "degradations"), 3)],
     "categories.general.degradations", "3", "= 1.0"),
    ("override of an unknown format", [(("categories", "general", "format_degradations"),
                                        {"bigg": {"none": 1}})],
     "categories.general.format_degradations.bigg", "'bigg'", "did you mean 'big'"),
    ("override of a format the category lacks", [(("categories", "toon",
                                                   "format_degradations"),
                                                  {"big": {"none": 1}})],
     "categories.toon.format_degradations.big", "'big'", "category's formats"),
    ("override mix unknown template", [(("categories", "general", "format_degradations"),
                                        {"big": {"toon": 1}})],
     "categories.general.format_degradations.big.toon", "'toon'", "did you mean 'toon_sd'"),
    ("template named none", [(("degradations", "none"), {"stages": [{"kind": "blur"}]})],
     "degradations.none", "reserved", "another name"),
    ("template nobody uses", [(("degradations", "spare"), {"stages": [{"kind": "jpeg"}]})],
     "degradations.spare", "no category uses", "spare = 1.0"),
    ("template key typo", [(("degradations", "mine", "stagse"), [])],
     "degradations.mine.stagse", None, "did you mean 'stages'"),
    ("template without stages", [(("degradations", "mine", "stages"), [])],
     "degradations.mine.stages", "empty", "kind ="),
    ("template not a table", [(("degradations", "mine"), 3)], "degradations.mine", "3", None),
    ("stage not a table", [(D, [5])], "degradations.mine.stages[0]", "5", "table"),
    ("stage without kind", [((*D, 0), {"sigma": 1.0})], "degradations.mine.stages[0].kind",
     "missing", "blur"),
    ("unknown stage kind", [((*D, 0, "kind"), "blurr")], "degradations.mine.stages[0].kind",
     "'blurr'", "did you mean 'blur'"),
    ("key of another kind", [((*D, 0, "quality"), [50, 60])],
     "degradations.mine.stages[0].quality", None, "remove it"),
    ("probability above 1", [((*D, 0, "probability"), 1.5)],
     "degradations.mine.stages[0].probability", "1.5", "from 0 to 1"),
    ("sigma out of range", [((*D, 0, "sigma"), [0.2, 99])],
     "degradations.mine.stages[0].sigma[1]", "99", "from 0.05 to 20"),
    ("range lo > hi", [((*D, 0, "sigma"), [1.5, 0.2])], "degradations.mine.stages[0].sigma",
     "lo > hi", "[0.2, 1.5]"),
    ("range of three", [((*D, 0, "sigma"), [1, 2, 3])], "degradations.mine.stages[0].sigma",
     "[1, 2, 3]", "two numbers"),
    ("range of strings", [((*D, 0, "sigma"), ["a", "b"])],
     "degradations.mine.stages[0].sigma[0]", "'a'", "number"),
    ("nan sigma", [((*D, 0, "sigma"), math.nan)], "degradations.mine.stages[0].sigma", "nan",
     None),
    ("even kernel size", [((*D, 0, "kernel_size"), [8, 21])],
     "degradations.mine.stages[0].kernel_size", "8", "odd"),
    ("float kernel size", [((*D, 0, "kernel_size"), 7.0)],
     "degradations.mine.stages[0].kernel_size", "7.0", "integer"),
    ("unknown blur kernel", [((*D, 0, "kernels"), {"gauss": 1.0})],
     "degradations.mine.stages[0].kernels.gauss", "'gauss'", "use one of: iso"),
    ("kernel weights sum to 0", [((*D, 0, "kernels"), {"iso": 0, "sinc": 0})],
     "degradations.mine.stages[0].kernels", "sum to 0", None),
    ("unknown codec", [((*D, 1, "codecs"), {"vp9": 1.0})],
     "degradations.mine.stages[1].codecs.vp9", "'vp9'", "h264, hevc, mpeg2, mpeg4"),
    ("crf out of range", [((*D, 1, "crf"), [20, 60])], "degradations.mine.stages[1].crf[1]",
     "60", "from 0 to 51"),
    ("bitrate with crf", [((*D, 1, "bitrate_kbps"), [300, 900])],
     "degradations.mine.stages[1].bitrate_kbps", "crf", "one rate control"),
    ("preset typo", [((*D, 1, "preset"), "veryfst")], "degradations.mine.stages[1].preset",
     "'veryfst'", "did you mean 'veryfast'"),
    ("noise per typo", [((*D, 0), {"kind": "noise", "per": "frames"})],
     "degradations.mine.stages[0].per", "'frames'", "did you mean 'frame'"),
    ("write_clean_lr not a bool", [(("extraction", "write_clean_lr"), "yes")],
     "extraction.write_clean_lr", "'yes'", "true or false"),
]


@pytest.mark.parametrize(("mutations", "key", "value", "fix"),
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_errors_name_file_key_value_and_fix(tmp_path: Path, mutations: list[Mutation],
                                            key: str, value: str | None, fix: str | None) -> None:
    """Every bad value is a ConfigError (exit code 2) whose message names the file, the key
    path, the bad value and a fix (with "did you mean" for near-miss names)."""
    doc = base_doc()
    for keys, v in mutations:
        set_in(doc, keys, v)
    err, path = load_error(tmp_path, doc)
    assert_good_error(err, path, key, value, fix)


MISSING_CASES: list[tuple[tuple[Any, ...], str]] = [
    (("output_root",), "output_root"),
    (("state_dir",), "state_dir"),
    (("formats", "big", "width"), "formats.big.width"),
    (("formats", "small_540", "height"), "formats.small_540.height"),
    (("categories", "toon", "target"), "categories.toon.target"),
    (("categories", "toon", "formats"), "categories.toon.formats"),
    (("categories",), "categories"),
    (("videos", 0, "name"), "videos[0].name"),
    (("videos", 1, "path"), "videos[1].path"),
    (("videos", 1, "categories"), "videos[1].categories"),
]


@pytest.mark.parametrize(("keys", "key"), MISSING_CASES, ids=[c[1] for c in MISSING_CASES])
def test_missing_required_keys(tmp_path: Path, keys: tuple[Any, ...], key: str) -> None:
    """A required key left out is an error naming the key and what to add."""
    err, path = load_error(tmp_path, del_in(base_doc(), keys))
    assert_good_error(err, path, key, None, None)
    assert "missing" in err.message


def test_file_problems(tmp_path: Path) -> None:
    """A missing file, invalid UTF-8 and broken TOML syntax are ConfigErrors naming the file."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert_good_error(info.value, missing, "(file)", "not found", "--config")

    binary = tmp_path / "bin.toml"
    binary.write_bytes(b'output_root = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert_good_error(info.value, binary, "(file)", None, "UTF-8")

    err, path = load_error(tmp_path, 'output_root = "x"\n[formats\n')
    assert_good_error(err, path, "(syntax)", "line 2", "TOML syntax")


def test_unknown_home_user_is_an_error(tmp_path: Path) -> None:
    """`~nosuchuser/…` is reported as a bad path, not a crash."""
    err, path = load_error(tmp_path, set_in(base_doc(), ("output_root",),
                                            "~dsgen_no_such_user_x/data"))
    assert_good_error(err, path, "output_root", "~dsgen_no_such_user_x", "full path")


SECTIONS: dict[str, tuple[tuple[Any, ...], type[Any]]] = {
    "": ((), Config),
    "extraction": (("extraction",), ExtractionCfg),
    "extraction.quality": (("extraction", "quality"), QualityCfg),
    "disk": (("disk",), DiskCfg),
    "formats.big": (("formats", "big"), FormatCfg),
    "categories.toon": (("categories", "toon"), CategoryCfg),
    "videos[1]": (("videos", 1), VideoCfg),
    "degradations.mine": (("degradations", "mine"), DegradationCfg),
    "degradations.mine.stages[0]": (("degradations", "mine", "stages", 0), BlurStage),
    "degradations.mine.stages[1]": (("degradations", "mine", "stages", 1), CodecStage),
}
NOT_KEYS = {(Config, "source"), (FormatCfg, "name"), (CategoryCfg, "name"),
            (DegradationCfg, "name")}


def _keys_of(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if (cls, f.name) not in NOT_KEYS]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(sorted(SECTIONS)), data=st.data())
def test_any_one_letter_typo_is_rejected_with_a_suggestion(tmp_path: Path, section: str,
                                                           data: st.DataObject) -> None:
    """Whatever key is misspelt by one letter (dropped, doubled, swapped or replaced) at any
    level, loading fails on exactly that key path and suggests a real key of that table."""
    where, cls = SECTIONS[section]
    keys = _keys_of(cls)
    key = data.draw(st.sampled_from(keys))
    i = data.draw(st.integers(0, len(key) - 1))
    kind = data.draw(st.sampled_from(["drop", "double", "swap", "replace"]))
    if kind == "drop":
        typo = key[:i] + key[i + 1:]
    elif kind == "double":
        typo = key[:i] + key[i] + key[i:]
    elif kind == "swap" and i + 1 < len(key):
        typo = key[:i] + key[i + 1] + key[i] + key[i + 2:]
    else:
        typo = key[:i] + ("x" if key[i] != "x" else "q") + key[i + 1:]
    if typo in keys or typo == key or not typo or (cls is Config and typo == "source"):
        return
    doc = base_doc()
    set_in(doc, (*where, typo), 1)
    err, path = load_error(tmp_path, doc)
    full = f"{section}.{typo}" if section else typo
    assert_good_error(err, path, full, None, "did you mean '")
    suggested = re.search(r"did you mean '([^']+)'", err.hint or "")
    assert suggested and suggested[1] in keys


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.text(min_size=0, max_size=12), min_size=2, max_size=5))
def test_names_giving_the_same_file_names_are_rejected(names: list[str]) -> None:
    """Videos are accepted exactly when their names and slugs are all distinct; otherwise the
    error is on the first video whose name or slug repeats an earlier one."""
    from dsgen.config import config_from_dict

    doc = base_doc()
    doc["videos"] = [{"name": n, "path": f"v{i}.mkv", "categories": ["general"]}
                     for i, n in enumerate(names)]
    file = Path("/nonexistent/dsgen.toml")
    slugs = [slugify(n) for n in names]
    first_bad = next((i for i in range(len(names))
                      if names[i] in names[:i] or slugs[i] in slugs[:i]), None)
    if first_bad is None:
        cfg = config_from_dict(doc, file)
        assert [v.slug for v in cfg.videos] == slugs
        assert all(re.fullmatch(r"[0-9A-Za-z]+(_[0-9A-Za-z]+)*", s) for s in slugs)
    else:
        with pytest.raises(ConfigError) as info:
            config_from_dict(doc, file)
        assert info.value.key == f"videos[{first_bad}].name"


# --------------------------------------------------------------------------- docs


def _section_of(hint: Any) -> type[Any] | None:
    """The dataclass a field opens a section for: `X` or `tuple[X, ...]`, else None."""
    if dataclasses.is_dataclass(hint):
        return typing.cast(type[Any], hint)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args[1:] == (Ellipsis,) \
            and dataclasses.is_dataclass(args[0]):
        return typing.cast(type[Any], args[0])
    return None


def schema_sections() -> list[tuple[type[Any], list[str]]]:
    """Every config dataclass reachable from Config, with the headings its docs section may
    have: `[a.b]` for nested tables, `[x.<name>]` or `[[x]]` for tables of tables / arrays."""
    out: list[tuple[type[Any], list[str]]] = [(Config, ["## Top level"])]
    todo: list[tuple[type[Any], str]] = [(Config, "")]
    while todo:
        cls, prefix = todo.pop(0)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            sub = _section_of(hints[f.name])
            if sub is None:
                continue
            path = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(hints[f.name]):
                out.append((sub, [f"## `[{path}]`"]))
                todo.append((sub, path))
            else:
                out.append((sub, [f"## `[{path}.<name>]`", f"## `[[{path}]]`"]))
                todo.append((sub, f"{path}.<name>"))  # its tables: [categories.<name>.x]
    # Stages are a union (one dataclass per kind): each kind has a section of its own.
    out += [(cls, [f'## Stage `kind = "{kind}"`']) for kind, cls in STAGE_TYPES.items()]
    return out


def _doc_sections() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    parts = re.split(r"^(## .*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _renderings(value: Any) -> set[str]:
    """How a default may be written in the docs (`0.80` and `0.8` are the same float)."""
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, int):
        return {f"`{value}`"}
    if isinstance(value, float):
        return {f"`{value!r}`", f"`{value:.1f}`", f"`{value:.2f}`", f"`{value:g}`"}
    if isinstance(value, str):
        return {f'`"{value}"`'}
    if isinstance(value, tuple) and value and all(
            isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
        # a table: { name = weight, … } (weights as floats), { LR = 5 } (stack sizes)
        return {"`{ " + ", ".join(f"{k} = {w!r}" for k, w in value) + " }`"}
    if isinstance(value, tuple):
        # a tuple holds a list, or the pairs of a table (an empty table is `{}`)
        return {"`[" + ", ".join(json.dumps(v) for v in value) + "]`", *(() if value else
                                                                      ("`{}`",))}
    raise AssertionError(f"no rendering for {value!r}")


def test_docs_cover_the_seven_documented_sections() -> None:
    """The schema walk finds at least the sections the page was written with, and the
    degradation templates with every stage kind."""
    found = {cls for cls, _ in schema_sections()}
    assert {Config, ExtractionCfg, QualityCfg, DiskCfg, FormatCfg, CategoryCfg,
            VideoCfg, DegradationCfg, *STAGE_TYPES.values()} <= found


def test_docs_list_every_key_with_its_default() -> None:
    """Every key of every config dataclass (walked from Config with dataclasses.fields)
    appears in docs/config.md, in its own section's table, with the default as the code has
    it (`0.80` or `0.8` for floats); nested dataclasses are sections of their own."""
    sections = _doc_sections()
    for cls, headings in schema_sections():
        heading = next((h for h in headings if h in sections), None)
        assert heading is not None, f"docs/config.md has no section {headings[0]!r}"
        rows = [line for line in sections[heading].splitlines() if line.startswith("| `")]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if (cls, f.name) in NOT_KEYS or _section_of(hints[f.name]) is not None:
                continue  # not a user key, or a section checked on its own
            row = next((r for r in rows if f"`{f.name}`" in r.split("|")[1]), None)
            assert row is not None, f"{heading}: key `{f.name}` is not documented"
            default_cell = row.split("|")[2]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                assert "(required)" in default_cell, (f.name, row)
                continue
            value = f.default if f.default is not dataclasses.MISSING else \
                f.default_factory()  # type: ignore[misc]
            shown = any(r in default_cell for r in _renderings(value))
            if value in ("", ()):
                # an empty default is derived (the format/category name) or required in
                # practice (a video's categories)
                shown = shown or "name" in default_cell or "(required)" in default_cell
            assert shown, f"{heading}: `{f.name}` default {value!r} not shown in: {row}"


def test_docs_mention_the_predecessor_formats_by_name() -> None:
    """The page names the five formats an empty [formats] gives."""
    text = DOCS.read_text(encoding="utf-8")
    for f in PREDECESSOR_FORMATS:
        assert f"`{f.name}`" in text


def test_basicsr_layout_takes_only_seven_frame_clips(tmp_path: Path) -> None:
    """BasicSR's Vimeo90K datasets read im1–im7 with im4 as GT: layout = "basicsr" loads with
    7 frames per clip and is refused with 9 (saying why), while "stacked" takes 9."""
    doc = set_in(base_doc(), ("layout",), "basicsr")
    assert load_config(write(tmp_path, doc)).layout == "basicsr"
    set_in(doc, ("extraction", "frames_per_clip"), 9)
    err, _ = load_error(tmp_path, doc)
    assert "Vimeo90K" in err.message and "im4.png" in err.message
    set_in(doc, ("layout",), "stacked")
    assert load_config(write(tmp_path, doc)).extraction.frames_per_clip == 9


# --------------------------------------------------------------------------- degradations


def test_degradation_templates_and_mixes_load(tmp_path: Path) -> None:
    """[degradations.<name>] tables become typed stages (ranges as tuples, weights as
    pairs) after the built-ins; category mixes and per-format overrides are kept; a category
    without a mix is clean (`none`)."""
    cfg = load_config(write(tmp_path, base_doc()))
    names = [t.name for t in cfg.degradations]
    assert names == [t.name for t in BUILTIN_TEMPLATES] + ["mine"]
    mine = cfg.degradation("mine")
    assert mine == DegradationCfg("mine", "test", (
        BlurStage(probability=0.5, sigma=(0.3, 0.9)),
        CodecStage(codecs=(("h264", 1.0), ("mpeg2", 0.5)), crf=(25, 30))))
    general, toon = cfg.category("general"), cfg.category("toon")
    assert general.degradations == (("mine", 0.5), ("none", 0.5))
    assert general.degradation_mix("small_540") == (("mine", 0.5), ("none", 0.5))
    assert general.degradation_mix("big") == (("toon_sd", 1.0),)
    assert toon.degradations == (("none", 1.0),) and toon.format_degradations == ()
    assert not cfg.extraction.write_clean_lr


def test_degradation_values_single_numbers_lists_and_zero_weights(tmp_path: Path) -> None:
    """One number is a fixed range; a list of names is weight 1 each; a 0 weight is kept
    (never drawn) when another is positive; unused built-ins are no error."""
    doc = base_doc()
    doc["degradations"]["mine"]["stages"] = [
        {"kind": "noise", "gaussian_sigma": 4, "per": "frame"},
        {"kind": "blur", "kernels": {"iso": 1, "sinc": 0}, "kernel_size": 9},
        {"kind": "codec", "codecs": ["mpeg4"], "bitrate_kbps": [200, 800]}]
    doc["categories"]["general"]["degradations"] = ["mine", "none"]
    cfg = load_config(write(tmp_path, doc))
    noise, blur, codec = cfg.degradation("mine").stages
    assert isinstance(noise, NoiseStage) and noise.gaussian_sigma == (4.0, 4.0)
    assert noise.per == "frame"
    assert isinstance(blur, BlurStage) and blur.kernels == (("iso", 1.0), ("sinc", 0.0))
    assert blur.kernel_size == (9, 9)
    assert isinstance(codec, CodecStage) and codec.bitrate_kbps == (200, 800)
    assert cfg.category("general").degradations == (("mine", 1.0), ("none", 1.0))


def test_a_user_template_replaces_the_builtin_of_its_name(tmp_path: Path) -> None:
    """[degradations.toon_sd] replaces the built-in toon_sd in place (same position)."""
    doc = base_doc()
    doc["degradations"]["toon_sd"] = {"stages": [{"kind": "jpeg", "quality": 40}]}
    cfg = load_config(write(tmp_path, doc))
    assert [t.name for t in cfg.degradations][:len(BUILTIN_TEMPLATES)] == [
        t.name for t in BUILTIN_TEMPLATES]
    (stage,) = cfg.degradation("toon_sd").stages
    assert stage.KIND == "jpeg" and stage.quality == (40, 40)  # type: ignore[union-attr]


def test_builtins_carry_the_predecessors_numbers() -> None:
    """dvd_film_balanced is templates.json's, stage for stage: blur σ 0.3–0.9 at p 0.75,
    Gaussian noise σ 1–4.5 at p 0.65 with colour noise p 0.20 (grey 0.80), JPEG 65–85 at
    p 0.85, saturation 0.90–1.05 with bleed p 0.15 at 0.08, contrast 0.95–1.05, brightness
    −0.02–0.03, black lift 0.01, gamma 0.97–1.03; realbasicvsr has a codec stage."""
    t = next(t for t in BUILTIN_TEMPLATES if t.name == "dvd_film_balanced")
    blur, noise, jpeg, chroma, colour = t.stages
    assert (blur.probability, blur.sigma) == (0.75, (0.3, 0.9))  # type: ignore[union-attr]
    assert (noise.probability, noise.gaussian_sigma, noise.grey_probability,  # type: ignore
            noise.gaussian_probability) == (0.65, (1.0, 4.5), 0.8, 1.0)
    assert (jpeg.probability, jpeg.quality) == (0.85, (65, 85))  # type: ignore[union-attr]
    assert (chroma.saturation, chroma.bleed_probability,  # type: ignore[union-attr]
            chroma.bleed_strength) == ((0.9, 1.05), 0.15, (0.08, 0.08))
    assert (colour.contrast, colour.brightness, colour.black_lift,  # type: ignore
            colour.gamma) == ((0.95, 1.05), (-0.02, 0.03), (0.01, 0.01), (0.97, 1.03))
    rbv = next(t for t in BUILTIN_TEMPLATES if t.name == "realbasicvsr")
    assert sum(isinstance(s, CodecStage) for s in rbv.stages) == 2


@pytest.mark.parametrize("user", [True, False])
def test_a_codec_this_pyav_build_lacks_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: bool) -> None:
    """With h264 mapped to an encoder this PyAV build really lacks (libopenh264; PyAV is
    asked, not mocked), a used template drawing h264 is an error at load time: on the
    codec's key for a user template, on the mix entry for a built-in."""
    monkeypatch.setitem(CODECS, "h264", ("libopenh264", "h264"))
    doc = base_doc()
    if not user:
        del doc["degradations"]
        doc["categories"]["general"]["degradations"] = {"realbasicvsr": 1.0}
    err, path = load_error(tmp_path, doc)
    key = ("degradations.mine.stages[1].codecs.h264" if user
           else "categories.general.degradations.realbasicvsr")
    assert_good_error(err, path, key, "libopenh264", "h264")
    doc["categories"]["general"]["degradations"] = {"none": 1.0}
    doc.pop("degradations", None)
    load_config(write(tmp_path, doc))  # unused built-ins are not checked
