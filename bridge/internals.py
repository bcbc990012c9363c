"""The private FiftyOne names this plugin relies on, all in one place.

FiftyOne has no public API for these. Each function wraps one private name
and ``tests/test_internals.py`` checks each against the installed FiftyOne,
so an upgrade that changes one fails loudly there rather than deep in a run.
"""

from bson import json_util

import fiftyone.core.odm as foo


def root_dataset(collection):
    """The dataset a collection (dataset or view of any kind) ultimately reads from."""
    return collection._root_dataset


def dataset_id(dataset):
    """The dataset's id, as a string."""
    return str(root_dataset(dataset)._doc.id)


def sample_collection_name(collection):
    """The MongoDB collection that holds the sample documents a collection reads."""
    return collection._dataset._sample_collection_name


def frame_collection_name(dataset):
    """The MongoDB collection that holds a video dataset's frame documents."""
    return dataset._frame_collection_name


def view_stages(collection):
    """The view's stages as JSON strings (no uuids), or None for a dataset."""
    import fiftyone.core.view as fov

    if isinstance(collection, fov.DatasetView):
        return [json_util.dumps(s) for s in collection._serialize(include_uuids=False)]
    return None


def build_view(dataset, stages):
    """The view of ``dataset`` with the JSON stages of :func:`view_stages` (the dataset for None)."""
    import fiftyone.core.view as fov

    if stages is None:
        return dataset
    return fov.DatasetView._build(dataset, [json_util.loads(s) for s in stages])


def run_docs(dataset):
    """``{key: run document}`` of a dataset's runs, without loading their config classes."""
    import fiftyone.core.runs as fors

    return fors.Run._get_run_docs(root_dataset(dataset))


def live_dataset_ids():
    """The ids (strings) of every dataset in the database."""
    return {str(doc["_id"]) for doc in foo.get_db_conn().datasets.find({}, {"_id": True})}
