"""The predecessor's folder layouts, one per script generation, and which one a dataset has.

Each generation of the predecessor wrote its samples to other folders (category paths,
format folders, LR stack folder names). An imported config must point dsgen at the very
folders the user's dataset already has, so a run grows it: the importer lists the layouts
that could have written the file's generation, looks under the output folder for the one
whose folders exist, and otherwise takes the generation's usual one (with a note either way).
Sources: `utils/format_definitions.py`, `make_dataset_multi.py`, `make_dataset_v2_uhd.py`,
`make_dataset_v2_clean.py` in icebear74/ice_ki `dataset_generator_v2/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dsgen.import_base import Importer, is_windows, toml_string

# v2.0 (and make_dataset_multi.py later) category folders; other names got Cap/CapModel/Learn.
LEARN_PATHS: dict[str, str] = {
    "general": "Universal/Mastermodell/Learn",
    "space": "Space/SpaceModel/Learn",
    "toon": "Toon/ToonModel/Learn",
    "master": "Master/MasterModel/Learn",  # the master/universal era of format_definitions.py
    "universal": "Universal/UniversalModel/Learn",
}
# v2.0's format folders (utils/format_definitions.py FORMATS[...]['output_dir']).
V20_FORMAT_DIRS: dict[str, str] = {
    "small_540": "Patches", "medium_169": "Patches_Medium169", "large_720": "Patches_Large",
    "xlarge_1440": "Patches_XLarge169", "fullhd_1920": "Patches_FullHD",
}
# make_dataset_v2_uhd.py's flat structure mapped v2.0's names to size folders.
FLAT_FORMAT_DIRS: dict[str, str] = {"small_540": "540", "medium_169": "720_169",
                                    "large_720": "720"}
# Files per bucket folder (GT/0000/, GT/0001/, …) in the last V2 generation.
BUCKET_FILES = 10_000

# The first v2.0 script read FORMATS' (720, 405) as (height, width).
V20_SIZE_NOTE = ("the first v2.0 make_dataset_multi.py read its 16:9 sizes height-first: if "
                 "the GT files in Patches_Medium169 are 405×720 (portrait), they are from it; "
                 "dsgen writes the sizes imported here (e.g. 720×405), so keep such old files "
                 "apart from new ones when training")
# make_dataset_v2_uhd.py cut gt_size [a, b] as a rows × b columns.
UHD_SIZE_NOTE = ("make_dataset_v2_uhd.py read gt_size [a, b] as height a, width b: a format "
                 "written [720, 405] gave 405×720 (portrait) files; dsgen writes the sizes "
                 "imported here, so check an old file's size before mixing old and new")


def learn_path(cat: str) -> str:
    """make_dataset_multi.py's folder of category `cat`."""
    return LEARN_PATHS.get(cat, f"{cat.capitalize()}/{cat.capitalize()}Model/Learn")


@dataclass(frozen=True)
class Layout:
    """How one predecessor script named its folders."""

    writer: str  # the script (and era) that wrote this layout, for notes
    category_path: Callable[[str], str]
    format_dir: Callable[[str], str]
    stack_dirs: dict[int, str]  # k → the folder of the k-frame LR stacks, as it named them
    bucketed: bool = False
    size_note: str | None = None
    notes: tuple[str, ...] = field(default=())


def v1_layouts(categories: list[str], stacks_uhd: int) -> list[Layout]:
    """The layouts of `base_settings` configs, most likely first for these category names."""
    v20 = Layout("the first v2.0 make_dataset_multi.py", learn_path,
                 lambda f: V20_FORMAT_DIRS.get(f, f), {5: "LR_5frames", 7: "LR_7frames"},
                 size_note=V20_SIZE_NOTE)
    multi = Layout("make_dataset_multi.py (VSR++ folder names)", learn_path,
                   lambda f: V20_FORMAT_DIRS.get(f, f), {5: "LR", 7: "LR_7frames"})
    uhd = Layout("make_dataset_v2_uhd.py (flat structure)", lambda c: c,
                 lambda f: f"patches/{FLAT_FORMAT_DIRS.get(f, f)}",
                 {stacks_uhd: "LR_7frames" if stacks_uhd == 7 else "LR"}, size_note=UHD_SIZE_NOTE)
    if set(categories) <= {"general", "space", "toon"}:
        return [v20, multi, uhd]
    return [multi, uhd, v20]


def v2_layouts(n_frames: int, dataset_name: str | None) -> list[Layout]:
    """The layouts of `generator_config_v2.json` with output_patches (no templates)."""
    uhd = Layout("make_dataset_v2_uhd.py (V2 flat structure)", lambda c: c,
                 lambda f: f"patches/{f}", {n_frames: "LR_7frames" if n_frames == 7 else "LR"},
                 size_note=UHD_SIZE_NOTE)
    clean = Layout("make_dataset_v2_clean.py", lambda c: c, lambda f: f"patches/{f}",
                   {n_frames: "LR"}, notes=(
                       f"make_dataset_v2_clean.py wrote every video into {dataset_name!r} "
                       "(dataset_name), whatever its categories; the other categories get "
                       "folders of their own",) if dataset_name else ())
    return [uhd, clean]


def template_layout(n_frames: int) -> Layout:
    """The layout of the templates generation (utils/format_definitions.py, fully dynamic)."""
    return Layout("the templates generation (make_dataset_v2_uhd.py)", lambda c: c,
                  lambda f: f"patches/{f}", {n_frames: "LR" if n_frames == 5 else
                                             f"LR_{n_frames}frames"}, bucketed=True)


def _hits(root: Path, layout: Layout, wanted: dict[str, list[str]]) -> tuple[int, int]:
    """(GT folders, LR stack folders) of `layout` that exist under `root`."""
    gt = lr = 0
    for cat, fmts in wanted.items():
        for fmt in fmts:
            base = root / layout.category_path(cat) / layout.format_dir(fmt)
            gt += (base / "GT").is_dir()
            lr += sum((base / d).is_dir() for d in layout.stack_dirs.values())
    return gt, lr


def choose(imp: Importer, key: str, out_root: str, layouts: list[Layout],
           wanted: dict[str, list[str]]) -> Layout:
    """The layout whose folders exist under `out_root` (this machine), else the first."""
    root = Path(out_root).expanduser()
    found: list[tuple[tuple[int, int], int]] = []
    if is_windows(out_root):
        where = "is a Windows path (not looked into here)"
    elif not root.is_absolute():
        where = "is a relative path (not looked into)"
    elif not root.is_dir():
        where = "does not exist on this machine"
    else:
        where = "holds none of the predecessor's folders"
        found = [(_hits(root, lay, wanted), -i) for i, lay in enumerate(layouts)]
    best = max(found) if found else ((0, 0), 0)
    layout = layouts[-best[1]]
    others = "; ".join(f"{lay.writer}: {_example(lay, wanted)}" for lay in layouts
                       if lay is not layout)
    if best[0][0]:
        imp.note(key, f"found the folders {layout.writer} wrote under {toml_string(out_root)} "
                 f"(e.g. {_example(layout, wanted)}); categories and formats point at them, so "
                 "a run adds to that dataset")
    else:
        imp.note(key, f"{toml_string(out_root)} {where}: folders set as {layout.writer} wrote "
                 f"them (e.g. {_example(layout, wanted)})" +
                 (f". Other scripts of this generation wrote {others}: if your dataset looks "
                  "like that, change the category paths and format dirs" if others else ""))
    return layout


def _example(layout: Layout, wanted: dict[str, list[str]]) -> str:
    """One format folder of `layout`, e.g. 'master/patches/540/{GT, LR_7frames}'."""
    for cat, fmts in wanted.items():
        for fmt in fmts:
            return (f"{layout.category_path(cat)}/{layout.format_dir(fmt)}/"
                    "{" + ", ".join(["GT", *layout.stack_dirs.values()]) + "}")
    return "(no category)"


def layout_notes(imp: Importer, layout: Layout, stacks: tuple[int, ...]) -> None:
    """What differs between the old folders and what dsgen writes into them."""
    for k in stacks:
        old = layout.stack_dirs.get(k)
        if old is not None and old != f"LR_{k}frames":
            imp.note("extraction.lr_stacks", f"{layout.writer} wrote the {k}-frame LR stacks "
                     f"into {old}/; dsgen writes them into LR_{k}frames/ beside it: rename the "
                     f"old {old}/ folders to LR_{k}frames (or link them) so the trainer finds "
                     "old and new samples in one folder")
    if layout.bucketed:
        imp.note("(layout)", f"{layout.writer} put files into {BUCKET_FILES:,}-file bucket "
                 "folders (GT/0000/, GT/0001/, …, the same in LR); dsgen does not write into "
                 "those, so its files sit beside them: a trainer that lists GT/*.png without "
                 "descending into folders sees only one of the two sets")
    if layout.size_note:
        imp.note("(layout)", layout.size_note)
    for text in layout.notes:
        imp.note("(layout)", text)
