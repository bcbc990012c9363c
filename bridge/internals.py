"""The private FiftyOne names this plugin relies on, all in one place.

FiftyOne has no public API for these. Each function wraps one private name
and ``tests/test_internals.py`` checks each against the installed FiftyOne,
so an upgrade that changes one fails loudly there rather than deep in a run.
No other module of the plugin uses a private FiftyOne name (that test scans them).
"""

from bson import json_util

import fiftyone.core.odm as foo
import fiftyone.core.view as fov


def root_dataset(collection):
    """The dataset a collection (dataset or view of any kind) ultimately reads from."""
    return collection._root_dataset


def backing_dataset(collection):
    """The dataset whose documents a collection iterates: the frames dataset of a frames view, else its own."""
    return collection._dataset


def dataset_id(dataset):
    """The dataset's id, as a string."""
    return str(root_dataset(dataset)._doc.id)


def sample_collection_name(collection):
    """The MongoDB collection that holds the sample documents a collection reads."""
    return backing_dataset(collection)._sample_collection_name


def frame_collection_name(dataset):
    """The MongoDB collection that holds a video dataset's frame documents."""
    return dataset._frame_collection_name


def is_patches(collection):
    """Whether the collection is a patches view (one sample per object)."""
    return getattr(collection, "_is_patches", False)


def is_frames(collection):
    """Whether the collection is a frames view of a video collection."""
    return getattr(collection, "_is_frames", False)


def is_clips(collection):
    """Whether the collection is a clips view of a video collection."""
    return getattr(collection, "_is_clips", False)


def is_dynamic_groups(collection):
    """Whether the collection is a dynamic groups view (``group_by``)."""
    return getattr(collection, "_is_dynamic_groups", False)


def own_stages(collection):
    """The view's own stages (after ``to_patches``/``to_frames`` for such a view); [] for a dataset."""
    return list(collection._stages) if isinstance(collection, fov.DatasetView) else []


def stage_dicts(collection, include_uuids=False):
    """The view's stages as dicts, the form FiftyOne saves views in; None for a dataset."""
    if isinstance(collection, fov.DatasetView):
        return collection._serialize(include_uuids=include_uuids)
    return None


def view_of_stage_dicts(dataset, dicts):
    """The view of ``dataset`` with the stage dicts of :func:`stage_dicts`."""
    return fov.DatasetView._build(dataset, dicts)


def view_stages(collection):
    """The view's stages as JSON strings (no uuids), or None for a dataset."""
    dicts = stage_dicts(collection)
    return None if dicts is None else [json_util.dumps(s) for s in dicts]


def build_view(dataset, stages):
    """The view of ``dataset`` with the JSON stages of :func:`view_stages` (the dataset for None)."""
    if stages is None:
        return dataset
    return view_of_stage_dicts(dataset, [json_util.loads(s) for s in stages])


def db_field(collection, path):
    """The database name of a field path (``id`` is ``_id``, a label's ``id`` is ``..._id``)."""
    return collection._handle_db_field(path)


def aggregate(collection, pipeline):
    """A cursor over the collection's documents with ``pipeline`` appended to the view's own."""
    return collection._aggregate(post_pipeline=pipeline)


def label_path(collection, field, subfield=None):
    """The path of a label field's labels (``boxes.detections`` for Detections), plus ``.subfield``."""
    return collection._get_label_field_path(field, subfield)[1]


def patches_source(view):
    """The collection a patches view was made from."""
    return view._source_collection


def sync_to_source(view, fields):
    """Copies ``fields`` of a frames or patches view back onto the collection it was made from."""
    view._sync_source(fields=fields)


def torch_module(model):
    """The torch module inside a FiftyOne model (``TorchImageModel``), or None."""
    return getattr(model, "_model", None)


def run_docs(dataset):
    """``{key: run document}`` of a dataset's runs, without loading their config classes."""
    import fiftyone.core.runs as fors

    return fors.Run._get_run_docs(root_dataset(dataset))


def live_dataset_ids():
    """The ids (strings) of every dataset in the database."""
    return {str(doc["_id"]) for doc in foo.get_db_conn().datasets.find({}, {"_id": True})}
