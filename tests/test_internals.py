"""The private FiftyOne names the plugin uses: each wrapper of bridge/internals.py against the installed
FiftyOne on real datasets, and a scan that no other plugin module uses a private FiftyOne name.

A FiftyOne upgrade that renames or changes one of these names fails here, by name.
"""

import ast
import importlib
import inspect
import uuid

import numpy as np
import pytest

from harness import ROOT, plugin_package

PLUGIN_FILES = sorted([ROOT / "__init__.py", *ROOT.glob("bridge/*.py"), *ROOT.glob("operators/*.py"),
                       *ROOT.glob("panels/*.py")])
INTERNALS = ROOT / "bridge" / "internals.py"
MONGO_KEYS = {"_id"}  # a document key of MongoDB, not a Python name


@pytest.fixture(scope="module")
def internals(bridge):
    return importlib.import_module(bridge.__name__ + ".internals")


@pytest.fixture
def images(fo, make_dataset):
    """Six images with a Classification, a Detections field and vectors."""
    dataset = make_dataset(6)
    dataset.set_values("ground_truth", [fo.Classification(label="ab"[i % 2]) for i in range(6)])
    dataset.set_values("boxes", [fo.Detections(detections=[
        fo.Detection(label="x", bounding_box=[0.1, 0.1, 0.2, 0.2]) for _ in range(i % 3 + 1)]) for i in range(6)])
    return dataset


@pytest.fixture
def video(fo):
    """Three videos of eight frames each."""
    dataset = fo.Dataset(f"coreset-internals-{uuid.uuid4().hex[:8]}")
    for v in range(3):
        sample = fo.Sample(filepath=f"/nonexistent/video_{v}.mp4")
        for f in range(1, 9):
            sample.frames[f] = fo.Frame(filepath=f"/nonexistent/video_{v}_{f}.png", emb=np.zeros(4, np.float32))
        dataset.add_sample(sample)
    yield dataset
    dataset.delete()


def _db():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()


def test_root_dataset(internals, images, video):
    for collection in (images, images.limit(2), images.to_patches("boxes").limit(1)):
        assert internals.root_dataset(collection) is images
    assert internals.root_dataset(video.to_frames()) is video


def test_backing_dataset(internals, images, video):
    assert internals.backing_dataset(images) is images
    assert internals.backing_dataset(images.limit(2)) is images
    frames = internals.backing_dataset(video.to_frames())
    assert frames is not video and frames.media_type == "image" and len(frames) == 24


def test_dataset_id(internals, images):
    doc = _db().datasets.find_one({"name": images.name})
    assert internals.dataset_id(images) == internals.dataset_id(images.limit(1)) == str(doc["_id"])


def test_sample_collection_name(internals, images, video):
    assert _db()[internals.sample_collection_name(images)].count_documents({}) == 6
    assert internals.sample_collection_name(images.limit(1)) == internals.sample_collection_name(images)
    frames = _db()[internals.sample_collection_name(video.to_frames())]
    assert frames.count_documents({}) == 24 and frames.find_one()["filepath"].endswith(".png")


def test_frame_collection_name(internals, video):
    frames = _db()[internals.frame_collection_name(video)]
    assert frames.count_documents({}) == 24 and "frame_number" in frames.find_one()


def test_view_kind_flags(fo, internals, images, video):
    clips = video.to_clips([[(1, 3)], [(2, 4)], [(1, 8)]])
    kinds = {"patches": images.to_patches("boxes"), "frames": video.to_frames(), "clips": clips,
             "dynamic_groups": images.group_by("ground_truth.label")}
    for kind, collection in kinds.items():
        flags = {k: getattr(internals, f"is_{k}")(collection) for k in kinds}
        assert flags == {k: k == kind for k in kinds}, kind
    for plain in (images, images.limit(2), video):
        assert not any(getattr(internals, f"is_{k}")(plain) for k in kinds)


def test_own_stages(internals, images):
    assert internals.own_stages(images) == []
    assert [type(s).__name__ for s in internals.own_stages(images.match_tags("x").limit(3))] == ["MatchTags", "Limit"]
    assert [type(s).__name__ for s in internals.own_stages(images.limit(3).to_patches("boxes").skip(1))] == ["Skip"]


def test_stage_dicts_and_back(internals, images):
    view = images.match_tags("x", bool=False).limit(3)
    dicts = internals.stage_dicts(view)
    assert [d["_cls"].rsplit(".", 1)[-1] for d in dicts] == ["MatchTags", "Limit"]
    assert not any("_uuid" in d for d in dicts)
    assert all(d.get("_uuid") for d in internals.stage_dicts(view, include_uuids=True))
    assert internals.stage_dicts(images) is None
    rebuilt = internals.view_of_stage_dicts(images, dicts)
    assert rebuilt == view and rebuilt.values("id") == view.values("id")


def test_view_stages_and_build_view(internals, images):
    view = images.skip(1).limit(2)
    assert internals.build_view(images, internals.view_stages(view)).values("id") == view.values("id")
    assert internals.view_stages(images) is None and internals.build_view(images, None) is images


def test_db_field(internals, images):
    assert internals.db_field(images, "id") == "_id"
    assert internals.db_field(images, "ground_truth.id") == "ground_truth._id"
    assert internals.db_field(images, "emb") == "emb"


def test_aggregate(internals, images):
    view = images.skip(2)
    docs = list(internals.aggregate(view, [{"$project": {"filepath": True}}]))
    assert [str(d["_id"]) for d in docs] == view.values("id")
    assert [d["filepath"] for d in docs] == view.values("filepath")


def test_label_path(internals, images):
    assert internals.label_path(images, "boxes") == "boxes.detections"
    assert internals.label_path(images, "boxes", "emb") == "boxes.detections.emb"
    assert internals.label_path(images, "ground_truth") == "ground_truth"


def test_patches_source(internals, images):
    source = images.limit(4)
    assert internals.patches_source(source.to_patches("boxes")) == source
    whole = internals.patches_source(images.to_patches("boxes"))
    assert whole == images.view() and whole.values("id") == images.values("id")


def test_sync_to_source(fo, internals, video):
    frames = video.to_frames()
    internals.backing_dataset(frames).add_sample_field("synced", fo.FloatField)
    _db()[internals.sample_collection_name(frames)].update_many({}, {"$set": {"synced": 1.0}})
    assert video.get_frame_field_schema().get("synced") is None
    internals.sync_to_source(frames, ["synced"])
    assert video.count("frames.synced") == 24


def test_torch_module(fo, internals):
    torch = pytest.importorskip("torch")
    import fiftyone.utils.torch as fout

    model = fout.TorchImageModel(fout.TorchImageModelConfig(dict(
        entrypoint_fcn="torchvision.models.resnet18", entrypoint_args=dict(weights=None), device="cpu")))
    assert isinstance(internals.torch_module(model), torch.nn.Module)
    assert internals.torch_module(object()) is None


def test_run_docs(bridge, internals, images):
    bridge.compute_zcore_scores(images, "emb", seed=0)
    docs = internals.run_docs(images.limit(1))
    assert list(docs) == images.list_runs() == ["zcore_score"]
    assert docs["zcore_score"]["config"]["method"] == bridge.ZCORE and docs["zcore_score"]["key"] == "zcore_score"


def test_live_dataset_ids(fo, internals, make_dataset):
    dataset = make_dataset(2)
    dataset_id = internals.dataset_id(dataset)
    assert dataset_id in internals.live_dataset_ids()
    dataset.delete()
    assert dataset_id not in internals.live_dataset_ids()


def test_every_wrapper_has_a_test(internals):
    wrappers = {n for n, f in vars(internals).items() if inspect.isfunction(f) and f.__module__ == internals.__name__}
    tested = "\n".join(n for n in globals() if n.startswith("test_"))
    assert [w for w in sorted(wrappers) if w not in tested and w not in _TESTED_TOGETHER] == []


_TESTED_TOGETHER = {"is_patches", "is_frames", "is_clips", "is_dynamic_groups", "view_of_stage_dicts"}


# -- the scan ---------------------------------------------------------------------------


def _own_names():
    """The members this repo defines: methods, class attributes and attributes it assigns (``x._y = ...``)."""
    names = set()
    for path in [*ROOT.glob("*.py"), *ROOT.glob("bridge/*.py"), *ROOT.glob("operators/*.py"),
                 *ROOT.glob("panels/*.py"), *ROOT.glob("core/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    names.update(t.id for t in ast.walk(item) if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)
                                 and not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return names


def _private(name):
    return name.startswith("_") and not name.startswith("__") and name not in MONGO_KEYS


def _own_modules(tree):
    """The names a file binds to this repo's own modules (relative imports)."""
    return {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
            for a in node.names}


def private_uses(path, own):
    """``(line, name)`` of each private name in ``path`` that is not this repo's own."""
    tree = ast.parse(path.read_text())
    modules, found = _own_modules(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own \
                and getattr(node.value, "id", None) not in modules:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"getattr", "hasattr", "setattr",
                                                                               "delattr"}:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _private(name.value) \
                    and name.value not in own:
                found.append((node.lineno, repr(name.value)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules_named = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            for module in modules_named:
                if module.startswith("fiftyone") and any(_private(p) for p in module.split(".")):
                    found.append((node.lineno, module))
            if getattr(node, "module", None) and node.module.startswith("fiftyone"):
                found += [(node.lineno, a.name) for a in node.names if _private(a.name)]
    return sorted(found)


def test_private_fiftyone_names_only_in_internals():
    own = _own_names()
    found = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in PLUGIN_FILES if p != INTERNALS
             for line, name in private_uses(p, own)]
    assert found == [], "private FiftyOne names outside bridge/internals.py (wrap them there):\n" + "\n".join(found)


def test_the_scan_finds_private_names(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import fiftyone.core._x\nfrom fiftyone.core.view import _y\nv._root_dataset\n"
                      "getattr(c, '_is_patches', False)\nd['_id']\nname + '_rank'\nself._controls\nview._serialize()\n"
                      "from ..core import mimic as core_mimic\ncore_mimic._method\n")
    names = [name for _, name in private_uses(sample, _own_names())]
    assert names == ["fiftyone.core._x", "_y", "_root_dataset", "'_is_patches'", "_serialize"]


def test_no_plugin_class_shadows_a_private_fiftyone_name():
    """Our private methods on subclasses of FiftyOne classes (panel, runs) do not override FiftyOne's."""
    package = plugin_package()
    clashes = []
    for module_name in ("bridge.runs", "panels.coreset_explorer", "operators.zcore", "operators.mimic",
                        "operators.embeddings", "operators.coreset_view"):
        module = importlib.import_module(f"{package.__name__}.{module_name}")
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            theirs = {n for base in cls.__mro__ if base.__module__.startswith("fiftyone") for n in vars(base)}
            clashes += [f"{cls.__name__}.{n}" for n in vars(cls) if _private(n) and n in theirs]
    assert clashes == []
