"""`dsgen config import`: the predecessor's JSON becomes TOML that loads as a dsgen Config."""

from __future__ import annotations

import copy
import datetime
import json
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsgen.config import PREDECESSOR_FORMATS, Config, FormatCfg, config_from_dict
from dsgen.config_import import ImportResult, import_file, import_predecessor
from dsgen.errors import ConfigError

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
    assert (e.scene_cut_threshold, e.max_attempts, e.retry_skip_seconds, e.lr_stacks) == (
        45.0, 10, 60.0, (5, 7))

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


def test_467_videos_convert_fast_with_every_name_and_path_preserved() -> None:
    """A 467-video list converts in < 1 s and keeps every name and path byte for byte."""
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

    start = time.perf_counter()
    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    elapsed = time.perf_counter() - start

    assert elapsed < 1.0
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


def test_new_categories_and_folder_sharing() -> None:
    """master and universal both map to the predecessor's folder; the second gets its own."""
    raw = v2_config()
    raw["category_targets"] = {"master": 10, "universal": 20, "anime": 5}
    fc = raw["format_config"]
    fc["master"] = fc["universal"] = fc["anime"] = copy.deepcopy(fc["toon"])
    for v in raw["videos"]:
        v["categories"] = {"anime": 1.0}
    result = import_predecessor(raw, SOURCE)
    cfg = load(result)
    assert [c.path for c in cfg.categories] == ["Universal/Mastermodell/Learn", "universal",
                                                "anime"]
    assert notes_about(result, "category_targets.universal")


@pytest.mark.parametrize(("mutate", "key"), [
    (lambda r: r["base_settings"].pop("output_base_dir"), "base_settings.output_base_dir"),
    (lambda r: r["base_settings"].update(lr_versions=["6frames"]), "base_settings.lr_versions[0]"),
    (lambda r: r["base_settings"].update(scene_diff_threshold=float("nan")),
     "base_settings.scene_diff_threshold"),
    (lambda r: r["format_config"].pop("toon"), "format_config.toon"),
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
