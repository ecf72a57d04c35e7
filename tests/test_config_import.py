"""`dsgen config import`: the predecessor's JSON becomes TOML that loads as a dsgen Config."""

from __future__ import annotations

import copy
import datetime
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgen.config import PREDECESSOR_FORMATS, Config, FormatCfg, config_from_dict, load_config
from dsgen.config_import import ImportResult, import_file, import_predecessor
from dsgen.degrade import reproduce
from dsgen.degrade_config import (
    BUILTIN_TEMPLATES,
    BlurStage,
    ChromaStage,
    ColourStage,
    DegradationCfg,
    JpegStage,
    NoiseStage,
)
from dsgen.errors import ConfigError
from dsgen.import_v1 import V20_MIXES
from dsgen.manifest import gt_frames
from dsgen.state import State
from dsgen.writer import encode_png

SOURCE = "generator_config.json"


def v2_config() -> dict[str, Any]:
    """A realistic "Dataset Generator v2.0" config, as users have it (incl. a [H, W] size)."""
    return {
        "base_settings": {
            "base_frame_limit": 3000,
            "max_workers": 8,
            "val_percent": 0.0,
            "output_base_dir": "/mnt/data/dataset",
            "temp_dir": "/tmp/generator_temp",
            "status_file": "/mnt/data/dataset/.generator_status.json",
            "min_file_size": 10000,
            "scene_diff_threshold": 45,
            "max_retry_attempts": 10,
            "retry_skip_seconds": 60,
            "lr_versions": ["5frames", "7frames"],
        },
        "category_targets": {"general": 80000, "space": 55000, "toon": 30000},
        "format_config": {
            "general": {
                "small_540": {"gt_size": 540, "lr_size": 180, "probability": 0.45},
                "medium_169": {"gt_size": [405, 720], "lr_size": [135, 240], "probability": 0.35},
                "large_720": {"gt_size": 720, "lr_size": 240, "probability": 0.20},
            },
            "space": {
                "small_540": {"gt_size": 540, "lr_size": 180, "probability": 0.30},
                "xlarge_1440": {"gt_size": [1440, 810], "lr_size": [480, 270],
                                "probability": 0.45},
                "fullhd_1920": {"gt_size": [1920, 1080], "lr_size": [640, 360],
                                "probability": 0.25},
            },
            "toon": {
                "small_540": {"gt_size": [540, 540], "lr_size": [180, 180], "probability": 0.65},
                "medium_169": {"gt_size": [720, 405], "lr_size": [240, 135], "probability": 0.35},
            },
        },
        "videos": [
            {"name": "Planet Earth 2 - S01E04 - Deserts",
             "path": "/mnt/data/video/SerieUHD/Planet Earth 2/S01E04.mkv",
             "categories": {"general": 1.0}},
            {"name": "Avatar (2009)", "path": "/mnt/data/video/FilmeUHD/Avatar.mkv",
             "categories": {"general": 0.3, "space": 0.4, "toon": 0.3}, "priority": 1},
            {"name": "Spirited Away", "path": "/mnt/data/video/Anime/Spirited Away.mkv",
             "categories": {"toon": 1.0}},
        ],
    }


def load(result: ImportResult) -> Config:
    """The imported TOML, parsed and validated exactly as `dsgen` would."""
    return config_from_dict(tomllib.loads(result.toml), Path("x.toml"))


def notes_about(result: ImportResult, key: str) -> list[str]:
    """The notes that start with JSON path `key`."""
    return [n for n in result.notes if n.startswith(f"{key}:")]


def test_v2_config_round_trips_into_the_predecessors_dataset() -> None:
    """A real v2.0 config loads as a Config with the predecessor's formats, targets and mixes."""
    result = import_predecessor(v2_config(), SOURCE)
    cfg = load(result)

    assert cfg.formats == PREDECESSOR_FORMATS  # sizes, ×3, folder names, [405, 720] swapped
    assert cfg.format("medium_169") == FormatCfg("medium_169", 720, 405, 3, "Patches_Medium169")
    assert [(c.name, c.target, c.path) for c in cfg.categories] == [
        ("general", 80000, "Universal/Mastermodell/Learn"),
        ("space", 55000, "Space/SpaceModel/Learn"),
        ("toon", 30000, "Toon/ToonModel/Learn"),
    ]
    assert cfg.category("general").formats == (
        ("small_540", 0.45), ("medium_169", 0.35), ("large_720", 0.20))
    assert cfg.category("space").formats == (
        ("small_540", 0.30), ("xlarge_1440", 0.45), ("fullhd_1920", 0.25))
    assert cfg.category("toon").formats == (("small_540", 0.65), ("medium_169", 0.35))
    assert [(v.name, v.path, v.categories) for v in cfg.videos] == [
        ("Planet Earth 2 - S01E04 - Deserts",
         Path("/mnt/data/video/SerieUHD/Planet Earth 2/S01E04.mkv"), (("general", 1.0),)),
        ("Avatar (2009)", Path("/mnt/data/video/FilmeUHD/Avatar.mkv"),
         (("general", 0.3), ("space", 0.4), ("toon", 0.3))),
        ("Spirited Away", Path("/mnt/data/video/Anime/Spirited Away.mkv"), (("toon", 1.0),)),
    ]
    assert cfg.output_root == Path("/mnt/data/dataset")
    assert cfg.state_dir == Path("/mnt/data/dataset/.dsgen-state")
    assert cfg.status_file == ".generator_status.json"
    assert cfg.workers == 8
    e = cfg.extraction
    # The predecessor's first-vs-last difference is another scale: dsgen's default stays.
    assert (e.scene_cut_threshold, e.max_attempts, e.retry_skip_seconds, e.lr_stacks) == (
        20.0, 10, 60.0, (5, 7))
    assert "not imported" in notes_about(result, "base_settings.scene_diff_threshold")[0]
    assert all(c.val_target == 0 for c in cfg.categories)  # val_percent 0: no split

    # Weight 1.0 stays an inline table, as the predecessor wrote it.
    assert tomllib.loads(result.toml)["videos"][0]["categories"] == {"general": 1.0}
    # Every conversion decision is told: the swap, dropped keys, the new state_dir, priority.
    assert "height-first" in notes_about(result, "format_config.general.medium_169.gt_size")[0]
    assert notes_about(result, "format_config.general.medium_169.lr_size")
    assert not notes_about(result, "format_config.toon.medium_169.gt_size")  # already W×H
    for key in ("base_frame_limit", "min_file_size", "val_percent", "temp_dir",
                "retry_skip_seconds", "status_file"):
        assert notes_about(result, f"base_settings.{key}"), key
    assert notes_about(result, "state_dir")
    assert notes_about(result, "videos[1].priority")


def test_val_percent_becomes_every_categorys_validation_fraction() -> None:
    """The predecessor's val_percent (never filled: its Val/GT stayed empty) asks for a
    validation share: each category gets it as [validation] fraction, on top of its target."""
    raw = v2_config()
    raw["base_settings"]["val_percent"] = 5
    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    assert [(c.name, c.target, c.validation.fraction, c.val_target) for c in cfg.categories] == [
        ("general", 80000, 0.05, 4000), ("space", 55000, 0.05, 2750),
        ("toon", 30000, 0.05, 1500)]
    assert "on top of the target" in notes_about(result, "base_settings.val_percent")[0]


def test_toml_layout_is_header_top_extraction_formats_categories_videos() -> None:
    """The TOML starts with a header naming the source, then sections in the documented order."""
    result = import_predecessor(v2_config(), "C:\\Users\\me\\generator_config.json",
                                today=datetime.date(2024, 5, 1))
    lines = result.toml.splitlines()
    assert lines[0].startswith("# dsgen configuration imported from ")
    assert "C:\\Users\\me\\generator_config.json" in lines[0] and "2024-05-01" in lines[0]
    def first(prefix: str) -> int:
        return next(i for i, x in enumerate(lines) if x.startswith(prefix))

    def last(prefix: str) -> int:
        return max(i for i, x in enumerate(lines) if x.startswith(prefix))

    assert all(x.startswith("#") for x in lines[:first("output_root =")] if x)
    assert last("workers =") < first("[extraction]") < first("[formats.")
    assert last("[formats.") < first("[categories.") < last("[categories.") < first("[[videos]]")
    # Deterministic for a given date: the same JSON gives the same file.
    again = import_predecessor(v2_config(), "C:\\Users\\me\\generator_config.json",
                               today=datetime.date(2024, 5, 1))
    assert again == result


def test_467_videos_convert_with_every_name_and_path_preserved() -> None:
    """A 467-video list converts and keeps every name and path byte for byte (its speed is
    measured by bench/bench_library.py's `config check` column, not timed here)."""
    raw = v2_config()
    tricky = ['Film "Quoted"', "Back\\slash\\name", "Ümläut – 千と千尋の神隠し 🎬",
              "Tab\there", "New\nline", "It's 'single'", "Trailing space ", "[[videos]]",
              "a = 1 # not a key"]
    videos = []
    for i in range(467):
        name = f"{tricky[i % len(tricky)]} #{i}"
        if i % 3 == 0:
            path = f"D:\\Filme\\UHD\\{name.replace(chr(10), ' ')}.mkv"
        elif i % 3 == 1:
            path = f"/mnt/data/video/{name}/It's \"here\".mkv"
        else:
            path = f"\\\\nas\\share\\Série {i}\\film.mkv"
        videos.append({"name": name, "path": path,
                       "categories": {"general": 0.5, "space": 1.0} if i % 2 else {"toon": 1.0},
                       "priority": i % 5})
    raw["videos"] = videos

    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    doc = tomllib.loads(result.toml)["videos"]
    assert [(v["name"], v["path"]) for v in doc] == [(v["name"], v["path"]) for v in videos]
    assert [v.name for v in cfg.videos] == [v["name"] for v in videos]
    assert cfg.videos[1].categories == (("general", 0.5), ("space", 1.0))
    # Priority and Windows paths are told once, by index range, not 467 times.
    assert notes_about(result, "videos[0-466].priority")
    assert len([n for n in result.notes if "Windows path" in n]) == 1


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(codec="utf-8"), min_size=1).filter(str.strip),
       st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1)
       .filter(lambda p: p.strip() and not p.startswith("~")))
def test_any_text_survives_toml_escaping(name: str, path: str) -> None:
    """Whatever unicode a name or path holds, the TOML reads it back unchanged."""
    raw = v2_config()
    raw["videos"] = [{"name": name, "path": path, "categories": {"general": 1.0}}]
    result = import_predecessor(raw, name)  # the source lands in the header comment
    doc = tomllib.loads(result.toml)
    assert (doc["videos"][0]["name"], doc["videos"][0]["path"]) == (name, path)
    load(result)


def test_unknown_keys_are_noted_by_json_path() -> None:
    """Every key the importer does not know yields a note naming its JSON path."""
    raw = v2_config()
    raw["version"] = "2.0"
    raw["base_settings"]["use_gpu"] = True
    raw["format_config"]["toon"]["small_540"]["crop_mode"] = "center"
    raw["videos"][2]["duration"] = 7500
    raw["videos"][0]["duration"] = 3100
    raw["format_config"]["anime"] = {"small_540": {"gt_size": 540, "lr_size": 180,
                                                   "probability": 1.0}}
    result = import_predecessor(raw, SOURCE)
    load(result)
    for key in ("version", "base_settings.use_gpu", "format_config.toon.small_540.crop_mode",
                "videos[0,2].duration", "format_config.anime"):
        assert notes_about(result, key), key


def test_inconsistent_scale_is_an_error_naming_the_key() -> None:
    """LR sizes that are not GT / one integer scale on both axes are rejected at lr_size."""
    raw = v2_config()
    raw["format_config"]["space"]["fullhd_1920"]["lr_size"] = [640, 540]
    with pytest.raises(ConfigError) as err:
        import_predecessor(raw, SOURCE)
    assert err.value.key == "format_config.space.fullhd_1920.lr_size"
    assert err.value.file == SOURCE

    raw["format_config"]["space"]["fullhd_1920"]["lr_size"] = [500, 281]  # not a whole scale
    with pytest.raises(ConfigError, match=r"fullhd_1920\.lr_size"):
        import_predecessor(raw, SOURCE)


def test_one_format_with_two_sizes_is_an_error_naming_both_keys() -> None:
    """The same format name with different sizes in two categories names both places."""
    raw = v2_config()
    raw["format_config"]["toon"]["small_540"] = {"gt_size": 600, "lr_size": 200,
                                                 "probability": 0.65}
    with pytest.raises(ConfigError) as err:
        import_predecessor(raw, SOURCE)
    assert "format_config.toon.small_540" in err.value.key
    assert "format_config.general.small_540" in str(err.value)


def test_video_in_an_unknown_category_is_an_error() -> None:
    """A video feeding a category that has no target is rejected, naming the key."""
    raw = v2_config()
    raw["videos"][1]["categories"]["spaec"] = 0.5
    with pytest.raises(ConfigError) as err:
        import_predecessor(raw, SOURCE)
    assert err.value.key == "videos[1].categories.spaec"
    assert "space" in str(err.value)  # the close match is suggested


def test_invalid_json_is_an_error_with_the_file_name(tmp_path: Path) -> None:
    """Broken JSON (and a missing file) raise ConfigError naming the file."""
    bad = tmp_path / "generator_config.json"
    bad.write_text('{"base_settings": {"max_workers": 8,}}', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        import_file(bad)
    assert err.value.file == str(bad) and str(bad) in str(err.value)
    assert "line 1" in str(err.value)

    with pytest.raises(ConfigError, match="not found"):
        import_file(tmp_path / "missing.json")
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a JSON object"):
        import_file(bad)


def test_import_file_reads_bom_json_and_notes_duplicate_keys(tmp_path: Path) -> None:
    """A file with a BOM imports; a key given twice is noted with its JSON path."""
    text = json.dumps(v2_config(), indent=2, ensure_ascii=False)
    text = text.replace('"max_workers": 8,', '"max_workers": 4, "max_workers": 8,')
    file = tmp_path / "generator_config.json"
    file.write_text("\ufeff" + text, encoding="utf-8")
    result = import_file(file)
    assert load(result).workers == 8  # the last value, as Python's json (the predecessor) read it
    assert notes_about(result, "base_settings.max_workers")[0].endswith("as the predecessor did")
    assert str(file) in result.toml.splitlines()[0]


def test_duplicate_video_names_become_unique() -> None:
    """Videos sharing a name get ' (2)', ' (3)' …, never colliding with an existing name."""
    raw = v2_config()
    base = raw["videos"][0]
    raw["videos"] = [dict(base, name=n) for n in ("A", "A", "A (2)", "A", "B")]
    result = import_predecessor(raw, SOURCE)
    assert [v.name for v in load(result).videos] == ["A", "A (3)", "A (2)", "A (4)", "B"]
    assert notes_about(result, "videos[1].name") and notes_about(result, "videos[3].name")


def test_status_file_outside_output_root_keeps_its_basename() -> None:
    """dsgen keeps the status file under output_root: inside → relative, outside → basename."""
    raw = v2_config()
    raw["base_settings"]["status_file"] = "/var/run/generator/status.json"
    result = import_predecessor(raw, SOURCE)
    assert load(result).status_file == "status.json"
    assert "outside the output folder" in notes_about(result, "base_settings.status_file")[0]

    raw["base_settings"]["output_base_dir"] = "D:\\Dataset"
    raw["base_settings"]["status_file"] = "D:\\Dataset\\logs\\.generator_status.json"
    result = import_predecessor(raw, SOURCE)
    doc = tomllib.loads(result.toml)
    assert doc["status_file"] == "logs/.generator_status.json"
    assert doc["output_root"] == "D:\\Dataset"
    assert doc["state_dir"] == "D:\\Dataset\\.dsgen-state"
    assert notes_about(result, "base_settings.output_base_dir")  # Windows path told


def test_retry_skip_is_kept_up_to_an_hour_then_capped() -> None:
    """retry_skip_seconds ≤ 3600 is kept as is; larger values are capped, with a note."""
    raw = v2_config()
    raw["base_settings"]["retry_skip_seconds"] = 7200
    result = import_predecessor(raw, SOURCE)
    assert load(result).extraction.retry_skip_seconds == 3600.0
    assert "capped" in notes_about(result, "base_settings.retry_skip_seconds")[0]


def test_sixteen_nine_sizes_are_decided_by_name_and_aspect() -> None:
    """Height-first pairs of 16:9 formats (by name or exact 9:16 aspect) are swapped and noted."""
    raw = v2_config()
    fc = raw["format_config"]
    fc["space"]["xlarge_1440"].update(gt_size=[810, 1440], lr_size=[270, 480])
    fc["space"]["custom_wide"] = {"gt_size": [288, 512], "lr_size": [144, 256],
                                  "probability": 0.1}
    fc["toon"]["portrait_crop"] = {"gt_size": [405, 720], "lr_size": [135, 240],
                                   "probability": 0.1}
    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    assert (cfg.format("xlarge_1440").width, cfg.format("xlarge_1440").height) == (1440, 810)
    assert (cfg.format("custom_wide").width, cfg.format("custom_wide").height) == (512, 288)
    assert cfg.format("custom_wide").scale == 2
    assert (cfg.format("portrait_crop").width, cfg.format("portrait_crop").height) == (405, 720)
    assert "as written" in notes_about(result, "format_config.toon.portrait_crop.gt_size")[0]
    assert notes_about(result, "format_config.space.xlarge_1440.gt_size")


def test_master_universal_files_get_the_folders_of_their_era() -> None:
    """A master/universal file (and a custom category) gets make_dataset_multi.py's folders of
    that time: Master/MasterModel/Learn, Universal/UniversalModel/Learn, Cap/CapModel/Learn."""
    raw = v2_config()
    raw["category_targets"] = {"master": 10, "universal": 20, "anime": 5}
    fc = raw["format_config"]
    fc["master"] = fc["universal"] = fc["anime"] = copy.deepcopy(fc["toon"])
    for v in raw["videos"]:
        v["categories"] = {"anime": 1.0}
    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    assert [c.path for c in cfg.categories] == ["Master/MasterModel/Learn",
                                                "Universal/UniversalModel/Learn",
                                                "Anime/AnimeModel/Learn"]
    # That script wrote the 5-frame stacks to LR/: the note says how to join the folders.
    assert any("into LR/; dsgen writes them into LR_5frames/" in n
               for n in notes_about(result, "extraction.lr_stacks"))


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda r: r["base_settings"].pop("output_base_dir"), "base_settings.output_base_dir"),
    (lambda r: r["base_settings"].update(lr_versions=["6frames"]), "base_settings.lr_versions[0]"),
    (lambda r: r["base_settings"].update(scene_diff_threshold=float("nan")),
     "base_settings.scene_diff_threshold"),
    (lambda r: r["videos"][0].pop("path"), "videos[0].path"),
    (lambda r: r["videos"][2].update(path="~no-such-user-here/film.mkv"), "videos[2].path"),
    (lambda r: r["videos"][1]["categories"].update(space=-1), "videos[1].categories.space"),
    (lambda r: r.update(videos={"a": 1}), "videos"),
    (lambda r: r["category_targets"].update(general="many"), "category_targets.general"),
])
def test_structurally_bad_values_are_errors_naming_the_key(mutate: Any, key: str) -> None:
    """Values dsgen cannot take raise ConfigError with the JSON key, never a traceback."""
    raw = v2_config()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        import_predecessor(raw, SOURCE)
    assert err.value.key == key


def test_a_category_without_format_config_takes_the_predecessors_built_in_mix() -> None:
    """The predecessor fell back to its built-in mix for a category missing in format_config
    (make_dataset_multi.py); the import does the same and says so."""
    raw = v2_config()
    raw["format_config"].pop("toon")
    result = import_predecessor(raw, SOURCE)
    assert load(result).category("toon").formats == V20_MIXES["toon"]
    assert "built-in mix" in notes_about(result, "format_config.toon")[0]


# -- every generation through the real CLI ---------------------------------------------------

def dsgen(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `dsgen` command, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dsgen.cli", *args], capture_output=True,
                          text=True, timeout=120)


def cli_import(tmp: Path, raw: dict[str, Any], *extra: str, name: str = SOURCE
               ) -> tuple[Config, list[str], str]:
    """`dsgen config import` of `raw` written as JSON; `dsgen config check` must accept the
    TOML. Returns the loaded config, the notes (stderr) and the TOML."""
    js = tmp / name
    js.write_text(json.dumps(raw, indent=2, ensure_ascii=False), encoding="utf-8")
    r = dsgen("config", "import", str(js), *extra)
    assert r.returncode == 0, r.stderr
    toml = tmp / "imported.toml"
    toml.write_text(r.stdout, encoding="utf-8")
    check = dsgen("config", "check", str(toml))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "✓ config is valid" in check.stdout
    notes = [line.removeprefix("note: ") for line in r.stderr.splitlines()
             if line.startswith("note: ")]
    assert len(notes) == len(r.stderr.splitlines())  # nothing but notes on stderr
    return load_config(toml), notes, r.stdout


def noted(notes: list[str], key: str) -> str:
    """The note about JSON key `key` (its head may list several keys); fails if none."""
    for n in notes:
        head = n.split(": ", 1)[0]
        if key == head or key in head.split(", "):
            return n
    raise AssertionError(f"no note about {key}: {notes}")


def first_generation(out: str) -> dict[str, Any]:
    """The earliest generator_config.json: base_settings and videos, nothing else (the
    predecessor took targets, formats and mixes from its built-ins)."""
    return {
        "base_settings": {
            "base_frame_limit": 3000, "max_workers": 12, "val_percent": 0.0,
            "output_base_dir": out, "temp_dir": "/tmp/generator_temp",
            "status_file": f"{out}/.generator_status.json", "min_file_size": 10000,
            "scene_diff_threshold": 45, "max_retry_attempts": 10, "retry_skip_seconds": 60,
            "lr_versions": ["5frames", "7frames"],
        },
        "videos": [
            {"name": "Planet Earth II - Islands",
             "path": "/mnt/data/video/SerieUHD/Planet Earth II/S01E01.mkv",
             "categories": {"general": 1.0}},
            {"name": "Star Trek Beyond",
             "path": "/mnt/data/video/filme/UHD/Star Trek Beyond (2016)/Star Trek Beyond.mkv",
             "categories": {"general": 0.5, "space": 1.0}, "priority": 1},
            {"name": "Shrek", "path": "/mnt/data/video/filme/UHD/Shrek/Shrek.mkv",
             "categories": {"toon": 1.0, "general": 0.2}},
        ],
    }


def test_first_generation_imports_with_the_predecessors_built_in_defaults(
        tmp_path: Path) -> None:
    """No category_targets/format_config: targets 80,000/55,000/30,000, the v2.0 mixes,
    formats and folders, each default and each dropped key told in a note."""
    cfg, notes, _ = cli_import(tmp_path, first_generation("/mnt/data/training/dataset"))
    assert [(c.name, c.target, c.path, c.formats) for c in cfg.categories] == [
        ("general", 80000, "Universal/Mastermodell/Learn", V20_MIXES["general"]),
        ("space", 55000, "Space/SpaceModel/Learn", V20_MIXES["space"]),
        ("toon", 30000, "Toon/ToonModel/Learn", V20_MIXES["toon"]),
    ]
    assert cfg.formats == PREDECESSOR_FORMATS  # sizes, ×3 and the Patches… folders
    assert cfg.extraction.lr_stacks == (5, 7) and cfg.workers == 12
    # What the predecessor really made per category: 3000 × the sum of each video's weights.
    assert "about 11,100" in noted(notes, "categories.general.target")
    for cat in ("space", "toon"):
        assert "built-in target" in noted(notes, f"categories.{cat}.target")
    for cat in ("general", "space", "toon"):
        assert "built-in mix" in noted(notes, f"format_config.{cat}")
    for key in ("base_frame_limit", "min_file_size", "temp_dir", "val_percent"):
        assert "not imported" in noted(notes, f"base_settings.{key}")
    assert "no priority" in noted(notes, "videos[1].priority")
    assert "portrait" in noted(notes, "(layout)")  # the first script's height-first sizes


def test_an_existing_dataset_decides_the_folders(tmp_path: Path) -> None:
    """When the output folder holds the predecessor's dataset, the import points dsgen at
    those folders: the later v2.0 script's LR/ (5 frames) is found and named in a note."""
    out = tmp_path / "dataset"
    for d in ("Patches/GT", "Patches/LR", "Patches/LR_7frames", "Patches_Medium169/GT"):
        (out / "Universal/Mastermodell/Learn" / d).mkdir(parents=True)
    cfg, notes, _ = cli_import(tmp_path, first_generation(str(out)))
    assert cfg.category("general").path == "Universal/Mastermodell/Learn"
    found = noted(notes, "base_settings.output_base_dir")
    assert "found the folders make_dataset_multi.py (VSR++ folder names) wrote" in found
    assert "rename the old LR/ folders to LR_5frames" in noted(notes, "extraction.lr_stacks")


def test_base_settings_generation_through_the_cli(tmp_path: Path) -> None:
    """A v2.0 file with category_targets and format_config: `config check` accepts the TOML;
    each base_settings key dsgen has no use for, and priority, gets its note."""
    cfg, notes, _ = cli_import(tmp_path, v2_config())
    assert [c.path for c in cfg.categories] == ["Universal/Mastermodell/Learn",
                                                "Space/SpaceModel/Learn", "Toon/ToonModel/Learn"]
    assert cfg.formats == PREDECESSOR_FORMATS
    for key in ("base_frame_limit", "min_file_size", "temp_dir", "val_percent"):
        assert "not imported" in noted(notes, f"base_settings.{key}")
    noted(notes, "videos[1].priority")


def master_era(out: str) -> dict[str, Any]:
    """The last generator_config.json: master/universal/space/toon, [w, h] sizes."""
    def fmts(*spec: tuple[str, int, int, float]) -> dict[str, Any]:
        return {n: {"gt_size": [w, h], "lr_size": [w // 3, h // 3], "probability": p}
                for n, w, h, p in spec}

    return {
        "base_settings": {
            "base_frame_limit": 3000, "max_workers": 4, "val_percent": 0.0,
            "output_base_dir": out, "temp_dir": f"{out}/temp",
            "status_file": f"{out}/.generator_status.json", "min_file_size": 10000,
            "scene_diff_threshold": 45, "max_retry_attempts": 10, "retry_skip_seconds": 60,
            "lr_versions": ["5frames", "7frames"],
        },
        "category_targets": {"master": 300000, "universal": 350000, "space": 160000,
                             "toon": 90000},
        "format_config": {
            "master": fmts(("small_540", 540, 540, 0.5), ("medium_169", 720, 405, 0.35),
                           ("large_720", 720, 720, 0.15)),
            "universal": fmts(("small_540", 540, 540, 0.5), ("medium_169", 720, 405, 0.35),
                              ("large_720", 720, 720, 0.15)),
            "space": fmts(("small_540", 540, 540, 0.4), ("medium_169", 720, 405, 0.35),
                          ("large_720", 720, 720, 0.25)),
            "toon": fmts(("small_540", 540, 540, 0.65), ("medium_169", 720, 405, 0.35)),
        },
        "videos": [
            {"name": "Venom 2 - Let There Be Carnage",
             "path": "/mnt/data/video/filme/UHD/Venom 2/Venom 2.mkv",
             "categories": {"master": 0.25, "universal": 0.75}},
            {"name": "Avatar", "path": "/mnt/data/video/filme/UHD/Avatar (2009)/Avatar.mkv",
             "categories": {"master": 0.2, "universal": 0.2, "space": 0.3, "toon": 0.3}},
        ],
    }


def test_master_era_file_grows_a_flat_v2_dataset_found_on_disk(tmp_path: Path) -> None:
    """make_dataset_v2_uhd.py wrote <category>/patches/<size>/{GT,LR_7frames}: found on disk,
    the categories and formats point there and only the 7-frame stack is written."""
    out = tmp_path / "datasetNeu"
    for cat in ("master", "universal"):
        for d in ("540/GT", "540/LR_7frames", "720_169/GT"):
            (out / cat / "patches" / d).mkdir(parents=True)
    cfg, notes, _ = cli_import(tmp_path, master_era(str(out)))
    assert [c.path for c in cfg.categories] == ["master", "universal", "space", "toon"]
    assert [(f.name, f.dir) for f in cfg.formats] == [
        ("small_540", "patches/540"), ("medium_169", "patches/720_169"),
        ("large_720", "patches/720")]
    assert cfg.extraction.lr_stacks == (7,)
    assert "only the 7-frame stack" in noted(notes, "base_settings.lr_versions")
    assert "405×720 (portrait)" in noted(notes, "(layout)")  # that script read [h, w]
    # Without that dataset on disk: the folders of make_dataset_multi.py at that time.
    cfg, notes, _ = cli_import(tmp_path, master_era("/mnt/data/training/datasetNeu"))
    assert cfg.category("master").path == "Master/MasterModel/Learn"
    assert "make_dataset_v2_uhd.py (flat structure): master/patches/540/" in noted(
        notes, "base_settings.output_base_dir")


def v2_flat(root: str, video_dir: str) -> dict[str, Any]:
    """generator_config_v2.json as video_manager.py left it: output_patches, category_patches,
    list categories (some videos unassigned), processing, quality, source_dirs, comments."""
    return {
        "_comment_usage": "=== SIMPLIFIED CONFIG - Auto-scan, 2 Categories ===",
        "_comment_use_with": "make_dataset_v2_clean.py",
        "dataset_name": "master",
        "root_path": root,
        "source_dirs": [{"path": video_dir, "extensions": [".mkv", ".mp4", ".avi"]}],
        "videos": [
            {"name": "Das Fünfte Element", "path": f"{video_dir}/Das Fünfte Element.mkv",
             "categories": ["master", "universal", "space"]},
            {"name": "Arielle, die Meerjungfrau (2023)", "path": f"{video_dir}/Arielle.mkv",
             "categories": ["master", "toon"]},
            {"name": "Shining (1980)", "path": f"{video_dir}/Shining (1980).mkv",
             "categories": {}},
        ],
        "output_patches": {
            "720": {"gt_size": [720, 720], "scale": 3, "enabled": True, "weight": 25},
            "540": {"gt_size": [540, 540], "scale": 3, "enabled": True, "weight": 50},
            "720_169": {"gt_size": [720, 405], "scale": 3, "enabled": True, "weight": 25},
            "1080": {"gt_size": [1080, 1080], "scale": 3, "enabled": False, "weight": 0},
        },
        "processing": {"n_frames": 7, "scale": 3, "stride": 3, "min_scene_length": 21,
                       "scene_threshold": 30.0, "center_snap_seconds": 0.0},
        "quality": {"jpeg_quality": 95, "min_sharpness": 30.0, "blur_threshold": 100.0,
                    "min_variety_std": 8.0, "lr_degrade_prob": 0.6, "lr_dark_boost": True,
                    "lr_jpeg_quality_range": [72, 85], "lr_noise_sigma": [0.5, 2.0]},
        "workers": 8,
        "batch_size": 4,
        "validation": {"enabled": False, "note": "Validation GT is copied to val/720/GT/"},
        "random_seed": None,
        "ffmpeg_timeout": 120,
        "ffprobe_timeout": 60,
        "category_patches": {"master": 350000, "universal": 120000, "space": 100000,
                             "toon": 80000},
    }


def test_v2_output_patches_generation(tmp_path: Path) -> None:
    """root_path + output_patches + category_patches: folders <cat>/patches/<size>, one
    7-frame stack, the gates that exist in dsgen kept, a note for every other key."""
    cfg, notes, toml = cli_import(tmp_path, v2_flat("/mnt/data/training/datasetNeu",
                                                    "/mnt/data/video/filme/UHD"),
                                  name="generator_config_v2.json")
    assert [(c.name, c.target, c.path) for c in cfg.categories] == [
        ("master", 350000, "master"), ("universal", 120000, "universal"),
        ("space", 100000, "space"), ("toon", 80000, "toon")]
    assert cfg.category("master").formats == (("720", 25.0), ("540", 50.0), ("720_169", 25.0))
    assert [(f.name, f.width, f.height, f.scale, f.dir) for f in cfg.formats] == [
        ("720", 720, 720, 3, "patches/720"), ("540", 540, 540, 3, "patches/540"),
        ("720_169", 720, 405, 3, "patches/720_169")]
    e = cfg.extraction
    assert (e.lr_stacks, e.quality.crop_min_detail, e.quality.crop_min_std) == ((7,), 100.0, 8.0)
    assert cfg.output_root == Path("/mnt/data/training/datasetNeu") and cfg.workers == 8
    assert [v.name for v in cfg.videos] == ["Das Fünfte Element",
                                            "Arielle, die Meerjungfrau (2023)"]
    assert cfg.videos[1].categories == (("master", 1.0), ("toon", 1.0))
    assert cfg.watch == ()  # the source dir holds listed videos: written commented out
    assert "# [[watch]]" in toml and '# path = "/mnt/data/video/filme/UHD"' in toml
    assert "commented-out" in noted(notes, "source_dirs[0]")
    assert "skipped them" in noted(notes, "videos[2]")  # categories {}: not used before either
    assert "equal share" in noted(notes, "output_patches")
    assert "enabled: false" in noted(notes, "output_patches.1080")
    for key in ("_comment_usage", "_comment_use_with", "dataset_name", "batch_size",
                "validation", "random_seed", "ffmpeg_timeout", "ffprobe_timeout",
                "processing.stride", "processing.min_scene_length", "processing.scene_threshold",
                "processing.center_snap_seconds", "quality.jpeg_quality",
                "quality.min_sharpness", "quality.lr_degrade_prob", "quality.lr_dark_boost",
                "quality.lr_jpeg_quality_range", "quality.lr_noise_sigma"):
        noted(notes, key)


# The degradation templates icebear74/ice_ki ships in dataset_generator_v2/templates.json.
SHIPPED_DEGRADATIONS: dict[str, Any] = {
    "classic_sitcom_sd": {
        "description": "Classic SD sitcom / series look: VHS-era sharpness loss, analog "
                       "noise, warm color cast",
        "blur": {"sigma_range": [0.4, 1.2], "prob": 0.85},
        "compression": {"jpeg_quality_range": [55, 78], "prob": 0.90, "ringing_strength": 0.3},
        "noise": {"sigma_range": [2.0, 8.0], "prob": 0.80, "color_noise_prob": 0.4},
        "chroma": {"saturation_range": [0.85, 1.10], "chroma_bleed_prob": 0.35,
                   "chroma_bleed_strength": 0.2},
        "color": {"contrast_range": [0.90, 1.05], "brightness_range": [-0.02, 0.04],
                  "black_lift": 0.03, "gamma_range": [0.95, 1.10]}},
    "classic_scifi_sd": {
        "description": "Classic sci-fi SD: slightly over-sharpened, film grain, cool "
                       "desaturated look",
        "blur": {"sigma_range": [0.2, 0.8], "prob": 0.70},
        "compression": {"jpeg_quality_range": [62, 82], "prob": 0.80, "ringing_strength": 0.4},
        "noise": {"sigma_range": [1.5, 6.0], "prob": 0.75, "color_noise_prob": 0.25},
        "chroma": {"saturation_range": [0.75, 0.95], "chroma_bleed_prob": 0.20,
                   "chroma_bleed_strength": 0.1},
        "color": {"contrast_range": [0.95, 1.10], "brightness_range": [-0.03, 0.02],
                  "black_lift": 0.01, "gamma_range": [0.90, 1.05]}},
    "dvd_film_balanced": {
        "description": "Balanced DVD/film look: moderate compression, slight softening, "
                       "neutral color",
        "blur": {"sigma_range": [0.3, 0.9], "prob": 0.75},
        "compression": {"jpeg_quality_range": [65, 85], "prob": 0.85, "ringing_strength": 0.2},
        "noise": {"sigma_range": [1.0, 4.5], "prob": 0.65, "color_noise_prob": 0.20},
        "chroma": {"saturation_range": [0.90, 1.05], "chroma_bleed_prob": 0.15,
                   "chroma_bleed_strength": 0.08},
        "color": {"contrast_range": [0.95, 1.05], "brightness_range": [-0.02, 0.03],
                  "black_lift": 0.01, "gamma_range": [0.97, 1.03]}},
    "toon_sd": {
        "description": "Animated / cartoon SD: flat color loss, strong compression "
                       "artifacts, cel-like sharpness",
        "blur": {"sigma_range": [0.1, 0.6], "prob": 0.60},
        "compression": {"jpeg_quality_range": [50, 72], "prob": 0.95, "ringing_strength": 0.5},
        "noise": {"sigma_range": [0.5, 3.0], "prob": 0.50, "color_noise_prob": 0.15},
        "chroma": {"saturation_range": [0.80, 1.15], "chroma_bleed_prob": 0.40,
                   "chroma_bleed_strength": 0.25},
        "color": {"contrast_range": [0.92, 1.08], "brightness_range": [-0.01, 0.05],
                  "black_lift": 0.02, "gamma_range": [0.95, 1.08]}},
}


def templates_json() -> dict[str, Any]:
    """templates.json as the predecessor ships it: format templates and its four
    degradation templates."""
    return {
        "_format": "templates_v1",
        "_description": "Reusable format and degradation templates for dataset generation",
        "format_templates": {
            "960x540_169": {"gt_size": [960, 540], "scale": 3, "aspect_ratio": "16:9",
                            "description": "960x540 16:9 Landscape – standard resize target"},
            "720x540_43": {"gt_size": [720, 540], "scale": 3, "aspect_ratio": "4:3",
                           "description": "720x540 4:3 – classic TV ratio"},
            "720x720_11": {"gt_size": [720, 720], "scale": 3, "aspect_ratio": "1:1",
                           "description": "720x720 Square – detail crop"},
        },
        "degradation_templates": copy.deepcopy(SHIPPED_DEGRADATIONS),
    }


def v2_templates(root: str, video_dir: str, new_dir: str) -> dict[str, Any]:
    """generator_config_v2.json of the templates generation (create_default_config.py /
    utils/config_io.py keys), with forced_frames and priority on videos."""
    return {
        "_format": "generator_config_v2", "_version": "2.0",
        "root_path": root,
        "source_dirs": [{"path": video_dir, "extensions": [".mkv"]}, {"path": new_dir}],
        "videos": [
            {"name": "S01E01 - Fremde Neue Welt", "path": f"{video_dir}/S01E01.mkv",
             "categories": ["master", "space"], "forced_frames": 2000, "priority": 1},
            {"name": "Minions_t00", "path": f"{video_dir}/Minions_t00.mkv",
             "categories": ["master"]},
        ],
        "categories": {
            "master": {"target_total": 100000, "formats": [
                {"template": "960x540_169", "weight": 60, "source_mode": "resize",
                 "degradation_mix": {"dvd_film_balanced": 50, "classic_sitcom_sd": 50}},
                {"template": "720x720_11", "weight": 40, "source_mode": "crop",
                 "degradation_mix": {"dvd_film_balanced": 100}},
            ]},
            "space": {"target_total": 50000, "formats": [
                {"template": "960x540_169", "weight": 1, "source_mode": "crop",
                 "degradation_mix": {"classic_sitcom_sd": 1}},
            ]},
        },
        "processing": {"n_frames": 7, "min_scene_length": 21, "scene_threshold": 30.0,
                       "stride": 3, "scale": 3},
        "quality": {"blur_threshold": 80.0, "min_sharpness": 30.0, "jpeg_quality": 95},
        "workers": 8, "batch_size": 4, "random_seed": 42, "output_format": "bmp",
        "ffmpeg_timeout": 120, "ffprobe_timeout": 60,
    }


def test_v2_templates_generation(tmp_path: Path) -> None:
    """templates → [formats.*] with mode; folders <cat>/patches/<template>; source_dirs →
    [[watch]]; degradation mixes per category or format; forced_frames, output_format and
    the rest each noted."""
    new_dir = tmp_path / "new_videos"
    raw = v2_templates("/mnt/data/training/datasetNeu", "/mnt/data/video/SerieUHD",
                       str(new_dir))
    (tmp_path / "templates.json").write_text(json.dumps(templates_json()), encoding="utf-8")
    cfg, notes, toml = cli_import(tmp_path, raw, name="generator_config_v2.json")
    # 960x540_169 is used with both modes (in different categories): one format per mode.
    assert [(f.name, f.width, f.height, f.scale, f.dir, f.mode) for f in cfg.formats] == [
        ("960x540_169_resize", 960, 540, 3, "patches/960x540_169", "resize"),
        ("720x720_11", 720, 720, 3, "patches/720x720_11", "crop"),
        ("960x540_169_crop", 960, 540, 3, "patches/960x540_169", "crop")]
    assert [(c.name, c.target, c.path, c.formats) for c in cfg.categories] == [
        ("master", 100000, "master", (("960x540_169_resize", 60.0), ("720x720_11", 40.0))),
        ("space", 50000, "space", (("960x540_169_crop", 1.0),))]
    assert (cfg.seed, cfg.workers, cfg.extraction.lr_stacks) == (42, 8, (7,))
    assert cfg.extraction.quality.crop_min_detail == 80.0
    # The folder without listed videos is watched for real; the other one is commented out.
    assert [(w.path, w.categories) for w in cfg.watch] == [
        (new_dir, (("master", 1.0), ("space", 1.0)))]
    assert '# path = "/mnt/data/video/SerieUHD"' in toml
    assert "weight above 1" in noted(notes, "videos[0].forced_frames")
    assert "no priority" in noted(notes, "videos[0].priority")
    # The mixes: master's two formats draw different ones, space's one format its own.
    assert cfg.category("master").format_degradations == (
        ("960x540_169_resize", (("dvd_film_balanced", 50.0), ("classic_sitcom_sd", 50.0))),
        ("720x720_11", (("dvd_film_balanced", 100.0),)))
    assert cfg.category("space").degradations == (("classic_sitcom_sd", 1.0),)
    assert "PNG only" in noted(notes, "output_format")
    assert "bucket folders" in noted(notes, "(layout)")
    for key in ("_format", "_version", "batch_size", "ffmpeg_timeout", "ffprobe_timeout",
                "processing.stride", "processing.scene_threshold", "processing.min_scene_length",
                "quality.min_sharpness", "quality.jpeg_quality", "source_dirs[0]",
                "source_dirs[1]", "templates.json format_templates.720x720_11.aspect_ratio"):
        noted(notes, key)
    # A template used with two modes is described once, not once per format.
    assert sum("format_templates.960x540_169.aspect_ratio" in n for n in notes) == 1


def stage(template: DegradationCfg, kind: str) -> Any:
    """The one stage of `kind` in `template`."""
    (found,) = [s for s in template.stages if kind == s.KIND]
    return found


def test_v2_degradation_templates_and_mixes_carry_over(tmp_path: Path) -> None:
    """templates.json's degradation templates become [degradations.*] tables whose stages,
    ranges and probabilities are what the predecessor's sampler drew (a shipped template is
    dsgen's built-in of its name; an edited one replaces the built-in, with a note), and each
    format's degradation_mix its category's mix: the category's own when all its formats
    agree, per format otherwise. `dsgen config check` accepts the file."""
    raw = v2_templates("/mnt/data/training/datasetNeu", "/mnt/data/video/SerieUHD",
                       str(tmp_path / "new"))
    raw["categories"]["toon"] = {"target_total": 30000, "formats": [
        {"template": "720x540_43", "weight": 70, "source_mode": "crop",
         "degradation_mix": {"toon_sd": 80, "vhs_heavy": 20}},
        {"template": "720x720_11", "weight": 30, "source_mode": "crop",
         "degradation_mix": {"vhs_heavy": 1, "toon_sd": 4}}]}
    tmpl = templates_json()
    tmpl["degradation_templates"]["dvd_film_balanced"]["compression"][
        "jpeg_quality_range"] = [60, 80]  # the user's edit of a shipped template
    tmpl["degradation_templates"]["vhs_heavy"] = {
        "description": "worn VHS copy",
        "blur": {"sigma_range": [0.8, 2.4], "prob": 1.0},
        "compression": {"jpeg_quality_range": [35, 60], "prob": 1.0},
        "noise": {"sigma_range": [3.0, 10.0], "prob": 0.9, "color_noise_prob": 0.5},
        "color": {"contrast_range": [0.8, 0.9]}}
    (tmp_path / "templates.json").write_text(json.dumps(tmpl), encoding="utf-8")
    cfg, notes, toml = cli_import(tmp_path, raw, name="generator_config_v2.json")
    builtin = {t.name: t for t in BUILTIN_TEMPLATES}

    # A shipped template unchanged: stage for stage the predecessor's numbers, in its order.
    sitcom = cfg.degradation("classic_sitcom_sd")
    assert [s.KIND for s in sitcom.stages] == ["blur", "noise", "jpeg", "chroma", "colour"]
    blur, noise, jpeg, chroma, colour = sitcom.stages
    assert isinstance(blur, BlurStage) and isinstance(noise, NoiseStage)
    assert isinstance(jpeg, JpegStage) and isinstance(chroma, ChromaStage)
    assert isinstance(colour, ColourStage)
    assert (blur.probability, blur.kernels, blur.sigma, blur.kernel_size) == (
        0.85, (("iso", 1.0),), (0.4, 1.2), (7, 7))
    assert (noise.probability, noise.gaussian_probability, noise.gaussian_sigma,
            noise.grey_probability, noise.per) == (0.8, 1.0, (2.0, 8.0), 0.6, "clip")
    assert (jpeg.probability, jpeg.quality) == (0.9, (55, 78))
    assert (chroma.probability, chroma.saturation, chroma.bleed_probability,
            chroma.bleed_strength) == (1.0, (0.85, 1.1), 0.35, (0.2, 0.2))
    assert (colour.probability, colour.contrast, colour.brightness, colour.black_lift,
            colour.gamma) == (1.0, (0.9, 1.05), (-0.02, 0.04), (0.03, 0.03), (0.95, 1.1))
    assert sitcom == builtin["classic_sitcom_sd"]
    assert "same as dsgen's built-in" in noted(
        notes, "templates.json degradation_templates.classic_sitcom_sd")
    assert "[degradations.classic_sitcom_sd]" in toml  # written out all the same
    # An edited shipped template replaces the built-in of its name, and the note says so.
    dvd = cfg.degradation("dvd_film_balanced")
    assert stage(dvd, "jpeg").quality == (60, 80)
    assert dvd != builtin["dvd_film_balanced"]
    assert [s for s in dvd.stages if s.KIND != "jpeg"] == [
        s for s in builtin["dvd_film_balanced"].stages if s.KIND != "jpeg"]
    told = noted(notes, "templates.json degradation_templates.dvd_film_balanced")
    assert "replaces it" in told and "its jpeg stage differs" in told
    # The user's own template: only the sections it has; a 2⌈2σ⌉+1 kernel for σ up to 2.4.
    vhs = cfg.degradation("vhs_heavy")
    assert (vhs.description, [s.KIND for s in vhs.stages]) == (
        "worn VHS copy", ["blur", "noise", "jpeg", "colour"])
    assert (stage(vhs, "blur").sigma, stage(vhs, "blur").kernel_size) == ((0.8, 2.4), (11, 11))
    assert stage(vhs, "noise").grey_probability == 0.5
    assert (stage(vhs, "colour").contrast, stage(vhs, "colour").gamma,
            stage(vhs, "colour").black_lift) == ((0.8, 0.9), (1.0, 1.0), (0.0, 0.0))
    # Not carried over, each told: ringing_strength (its sampler never read it), a template
    # no mix draws (dsgen refuses unused templates).
    for name in ("classic_sitcom_sd", "dvd_film_balanced", "toon_sd"):
        assert "never read" in noted(
            notes, f"templates.json degradation_templates.{name}.compression.ringing_strength")
    assert "not written" in noted(notes, "templates.json degradation_templates.classic_scifi_sd")
    assert "[degradations.classic_scifi_sd]" not in toml
    assert "INTER_AREA" in noted(notes, "templates.json degradation_templates")

    # The mixes, weights as written: per format where they differ, else the category's.
    master, space, toon = (cfg.category(c) for c in ("master", "space", "toon"))
    assert master.degradations == (("none", 1.0),)
    assert master.degradation_mix("960x540_169_resize") == (
        ("dvd_film_balanced", 50.0), ("classic_sitcom_sd", 50.0))
    assert master.degradation_mix("720x720_11") == (("dvd_film_balanced", 100.0),)
    assert "per format" in noted(notes, "categories.master")
    assert (space.degradations, space.format_degradations) == (
        (("classic_sitcom_sd", 1.0),), ())
    assert (toon.degradations, toon.format_degradations) == (
        (("toon_sd", 80.0), ("vhs_heavy", 20.0)), ())  # 80:20 = 4:1
    assert toon.degradation_mix("720x720_11") == toon.degradations
    assert "same degradation_mix" in noted(notes, "categories.toon")


def sampler_case() -> tuple[dict[str, Any], dict[str, Any]]:
    """A V2 file and templates.json with values on the edges of what the predecessor's
    sampler did with them."""
    raw = v2_templates("/srv/ds", "/srv/videos", "/srv/new")
    raw["categories"] = {"c": {"target_total": 10, "formats": [
        {"template": "720x540_43", "weight": 1, "source_mode": "crop",
         "degradation_mix": {"soft": 3, "flat": 1, "none": 1, "spare": 0}},
        {"template": "720x720_11", "weight": 1, "source_mode": "crop"}]}}
    raw["videos"] = [{"name": "a", "path": "/srv/videos/a.mkv", "categories": ["c"]}]
    tmpl = templates_json()
    tmpl["degradation_templates"] = {
        "soft": {
            "blur": {"sigma_range": [0.0, 0.5], "prob": 0.8, "kernel": "box"},
            "compression": {"jpeg_quality_range": [90.7, 0], "prob": 1.5},
            "noise": {"sigma_range": [-2.0, 2.0], "prob": 0.5},
            "chroma": {"saturation_range": [1.0, 1.0], "chroma_bleed_prob": 0.5},
            "color": {},
            "sharpen": {"amount": 0.3}},
        "flat": {"description": "never applied", "blur": {"sigma_range": [0.5, 1.0]}},
        "none": {"compression": {"jpeg_quality_range": [30, 40], "prob": 1}},
        "spare": {"noise": {"prob": 1}},
    }
    return raw, tmpl


def test_degradation_templates_as_the_predecessors_sampler_read_them() -> None:
    """Each value means what it meant to the predecessor's sampler: prob ≥ 1 always and a
    missing prob never; σ drawn below its minimum (blur 0.1, noise 0) skipped, i.e. a smaller
    probability over the rest of the range; JPEG qualities truncated and clamped as OpenCV
    did; neutral or empty sections no stage; a template that changes nothing is `none`;
    `none` itself renamed; a format without a mix clean. Each change has a note."""
    raw, tmpl = sampler_case()
    result = import_predecessor(raw, SOURCE, templates=tmpl)
    cfg = load(result)
    soft = cfg.degradation("soft")
    assert [s.KIND for s in soft.stages] == ["blur", "noise", "jpeg"]
    blur, noise, jpeg = soft.stages
    assert blur.sigma == (0.1, 0.5) and blur.probability == pytest.approx(0.8 * 0.4 / 0.5)
    assert noise.gaussian_sigma == (0.0, 2.0) and noise.probability == pytest.approx(0.25)
    assert noise.grey_probability == 0.8  # color_noise_prob's default 0.2
    assert (jpeg.quality, jpeg.probability) == ((1, 90), 1.0)
    told = {k: noted(list(result.notes), f"templates.json degradation_templates.soft.{k}")
            for k in ("blur.sigma_range", "blur.kernel", "compression.prob",
                      "compression.jpeg_quality_range", "noise.sigma_range", "chroma",
                      "color", "sharpen")}
    assert "× 0.8" in told["blur.sigma_range"] and "unknown" in told["blur.kernel"]
    assert "always" in told["compression.prob"] and "never changes" in told["chroma"]
    assert "empty" in told["color"] and "unknown" in told["sharpen"]
    assert "cut the fractions" in told["compression.jpeg_quality_range"]
    assert cfg.degradation("none_predecessor").stages == (JpegStage(1.0, (30, 40)),)
    about_none = [n for n in result.notes
                  if n.startswith("templates.json degradation_templates.none: ")]
    assert any("dsgen's name for the clean LR" in n for n in about_none)
    assert "'none' (the clean LR) in its place" in noted(
        list(result.notes), "templates.json degradation_templates.flat")
    assert "not written" in noted(list(result.notes),
                                  "templates.json degradation_templates.spare")
    c = cfg.category("c")
    assert c.format_degradations == (
        ("720x540_43", (("soft", 3.0), ("none", 1.0), ("none_predecessor", 1.0))),
        ("720x720_11", (("none", 1.0),)))
    assert "weight 0" in noted(list(result.notes),
                               "categories.c.formats[0].degradation_mix.spare")
    assert "clean LR" in noted(list(result.notes), "categories.c.formats[1].degradation_mix")
    assert {t.name for t in cfg.degradations} >= {"soft", "none_predecessor"}
    assert not {"flat", "spare"} & {t.name for t in cfg.degradations}
    # A mix whose weights are all 0 is refused, as the predecessor's random.choices did.
    raw["categories"]["c"]["formats"][0]["degradation_mix"] = {"soft": 0}
    with pytest.raises(ConfigError, match="no weight above 0") as err:
        import_predecessor(raw, SOURCE, templates=sampler_case()[1])
    assert err.value.key == "categories.c.formats[0].degradation_mix"


@pytest.mark.parametrize(("template", "section", "key", "value", "says"), [
    ("soft", "blur", "sigma_range", [0.5, 30.0], "outside what dsgen takes"),
    ("soft", "noise", "sigma_range", 3.0, "[lo, hi] range"),
    ("soft", "compression", "prob", "often", "not a number"),
    ("none", "compression", "jpeg_quality_range", [30, math.inf], "finite"),
    ("soft", "chroma", "saturation_range", [0.5, 4.0], "outside what dsgen takes"),
    ("soft", "color", "black_lift", 0.9, "outside what dsgen takes"),
])
def test_a_degradation_value_dsgen_cannot_take_is_an_error_in_templates_json(
        template: str, section: str, key: str, value: Any, says: str) -> None:
    """A value dsgen cannot take is a ConfigError naming templates.json and the key, with
    the range dsgen takes."""
    raw, tmpl = sampler_case()
    tmpl["degradation_templates"][template][section][key] = value
    with pytest.raises(ConfigError) as err:
        import_predecessor(raw, SOURCE, templates=tmpl, templates_source="/x/templates.json")
    assert err.value.file == "/x/templates.json"
    assert err.value.key.startswith(f"degradation_templates.{template}.{section}.{key}")
    assert says in str(err.value) and "dsgen bug" not in str(err.value)


def test_an_imported_v2_config_runs_and_degrades_with_its_templates(
        tmp_path: Path, h264_cuts: tuple[Path, Any]) -> None:
    """The import of a V2 file + templates.json runs for real (`dsgen run`, a real encoded
    video): every sample's manifest `degradation` names a template its format's imported mix
    draws, with that template's stages, and its LR_7frames bytes are what `reproduce` makes
    of the line — the imported templates are what dsgen applied."""
    video, _ = h264_cuts
    raw: dict[str, Any] = {
        "root_path": str(tmp_path / "dataset"), "random_seed": 5, "workers": 1,
        "processing": {"n_frames": 7, "scale": 3},
        "videos": [{"name": "clip", "path": str(video), "categories": ["master"]}],
        "categories": {"master": {"target_total": 6, "formats": [
            {"template": "192x108_169", "weight": 1, "source_mode": "resize",
             "degradation_mix": {"classic_sitcom_sd": 1, "vhs_heavy": 1}},
            {"template": "96x96_11", "weight": 1, "source_mode": "crop",
             "degradation_mix": {"dvd_film_balanced": 1}}]}},
    }
    tmpl = templates_json()
    tmpl["format_templates"] = {"192x108_169": {"gt_size": [192, 108], "scale": 3},
                                "96x96_11": {"gt_size": [96, 96], "scale": 3}}
    tmpl["degradation_templates"]["vhs_heavy"] = {
        "compression": {"jpeg_quality_range": [20, 30], "prob": 1.0},
        "noise": {"sigma_range": [4.0, 6.0], "prob": 1.0}}
    (tmp_path / "templates.json").write_text(json.dumps(tmpl), encoding="utf-8")
    cfg, _, _ = cli_import(tmp_path, raw, name="generator_config_v2.json")
    cfg_path = tmp_path / "imported.toml"
    run = dsgen("run", "--config", str(cfg_path))
    assert run.returncode == 0, run.stdout + run.stderr
    subprocess.run([sys.executable, "-m", "dsgen.cli", "manifest", "--config", str(cfg_path),
                    "-o", str(tmp_path / "manifest.jsonl")], check=True, capture_output=True)
    lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {x["format"] for x in lines} == {"192x108_169", "96x96_11"}
    master = cfg.category("master")
    state = State(cfg.state_dir, readonly=True)
    try:
        for line in lines:
            deg = line["degradation"]
            drawn = dict(master.degradation_mix(line["format"]))
            assert deg["template"] in drawn, (line["format"], deg["template"])
            template = cfg.degradation(deg["template"])
            assert [s["kind"] for s in deg["stages"]] == [s.KIND for s in template.stages]
            lr = reproduce(line, gt_frames(cfg, state, line))
            png = encode_png(np.concatenate(lr), cfg.png_compression)
            assert png == (cfg.output_root / line["files"][1]).read_bytes()
    finally:
        state.close()
    # vhs_heavy's JPEG always applies: a degraded sample is not the clean LR.
    assert any(s["applied"] for x in lines for s in x["degradation"]["stages"])


def test_v2_templates_without_templates_json_says_which_file_to_pass(tmp_path: Path) -> None:
    """No templates.json beside the file: exit 2 naming templates.json and --templates;
    given with --templates from elsewhere, the import works."""
    js = tmp_path / "conf" / "generator_config_v2.json"
    js.parent.mkdir()
    js.write_text(json.dumps(v2_templates("/srv/ds", "/srv/v", "/srv/new")), encoding="utf-8")
    r = dsgen("config", "import", str(js))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "templates.json" in r.stderr and "--templates" in r.stderr
    assert r.stderr.startswith(f"error: {js}: categories.master.formats:")
    elsewhere = tmp_path / "tmpl.json"
    elsewhere.write_text(json.dumps(templates_json()), encoding="utf-8")
    r = dsgen("config", "import", str(js), "--templates", str(elsewhere))
    assert r.returncode == 0, r.stderr
    # A degradation template missing from templates.json is an error naming the key.
    bad = templates_json()
    del bad["degradation_templates"]["classic_sitcom_sd"]
    elsewhere.write_text(json.dumps(bad), encoding="utf-8")
    r = dsgen("config", "import", str(js), "--templates", str(elsewhere))
    assert r.returncode == 2
    assert "categories.master.formats[0].degradation_mix.classic_sitcom_sd" in r.stderr


def test_files_of_no_generation_are_refused_with_the_reason(tmp_path: Path) -> None:
    """A JSON with neither base_settings nor root_path, or the first clean prototype's
    `sizes`, is a ConfigError saying what the file is and what to do."""
    with pytest.raises(ConfigError, match="neither base_settings") as err:
        import_predecessor({"videos": []}, SOURCE)
    assert "generator_config_v2.json" in str(err.value)
    with pytest.raises(ConfigError, match="prototype") as err:
        import_predecessor({"root_path": "/x", "dataset_name": "m", "videos": ["/v/a.mkv"],
                            "sizes": {"720": {"width": 1280, "height": 720}}}, SOURCE)
    assert err.value.key == "sizes"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON document."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else ()
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


# Values that sit on the edges of what the importer checks, then anything JSON can hold.
TRICKY = [None, True, 0, -1, 2.5, 1e308, math.inf, math.nan, 10**20, "", "..", "/abs",
          "a/../b", "5frames", "resize", [], {}, [1], [[1]], ["a", ["b"]], [0, 0], [540, 540],
          {"general": 1.0}, {"x": [1]}]
JSON_VALUES = st.sampled_from(TRICKY) | st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)
GENERATIONS = {
    "first": first_generation("/srv/ds"),
    "configured": v2_config(),
    "master era": master_era("/srv/ds"),
    "v2 output_patches": v2_flat("/srv/ds", "/srv/videos"),
    "v2 templates": v2_templates("/srv/ds", "/srv/videos", "/srv/new"),
}


@pytest.mark.parametrize("generation", list(GENERATIONS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_bad_value_in_any_generation_is_a_config_error(generation: str,
                                                           data: st.DataObject) -> None:
    """Whatever value replaces whatever key of a real file of each generation, the import
    either gives TOML that loads or a ConfigError naming a key: never a crash."""
    raw = copy.deepcopy(GENERATIONS[generation])
    tmpl = templates_json() if generation == "v2 templates" else None
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(["config", "templates"] if tmpl else ["config"]))
        doc: Any = raw if target == "config" else tmpl
        paths = _paths(doc)
        if not paths:
            continue
        path = data.draw(st.sampled_from(paths))
        node = doc
        for k in path[:-1]:
            node = node[k]
        if data.draw(st.booleans()):
            node[path[-1]] = copy.deepcopy(data.draw(JSON_VALUES))
        elif isinstance(node, dict):
            del node[path[-1]]
        else:
            node.pop(path[-1])
    try:
        result = import_predecessor(raw, SOURCE, templates=tmpl)
    except ConfigError as e:
        assert e.key and "Traceback" not in str(e)
        assert "dsgen bug" not in str(e)  # the importer never writes TOML that fails to load
        return
    load(result)
