"""What a collection's results are written to: sample documents, or frames.

A run writes one value per sample of its target collection:

* a dataset or a view of one (including ``select_group_slices`` views):
  a sample field of the dataset;
* a frames view (``to_frames``): a frame field of the video dataset, and the
  same field on the frames view's own collection, so the values are read back
  by a fresh ``to_frames()`` and by the view itself;
* a patches view (``to_patches``), for the runs that take one
  (``target_of(..., patches=True)``): an attribute of the labels the patches
  come from, on the source dataset (``ground_truth.detections.<name>``) and
  on the patches view's own collection (``ground_truth.<name>``).

Other patches runs, clips, grouped and dynamic-group collections are refused
up front with a sentence that says what to run instead.
"""

import functools
from dataclasses import dataclass

import fiftyone.core.collections as foc
import fiftyone.core.fields as fof

from . import internals

@dataclass
class Target:
    """Where a run on ``collection`` writes: collections and schema owners."""

    collection: object
    kind: str  # "samples", "frames" or "patches"

    @property
    def root(self):
        return internals.root_dataset(self.collection)

    @property
    def label_root(self):
        """Patches: the path of the labels on the source samples (``ground_truth.detections``, or ``ground_truth``)."""
        return internals.label_path(internals.patches_source(self.collection), self.collection.patches_field)

    @property
    def label_list(self):
        """Patches: whether the source samples hold a list of labels (Detections) rather than one (Detection)."""
        return self.label_root != self.collection.patches_field

    def path(self, name):
        """The schema path of output field ``name``: itself, or for patches the label attribute on the source."""
        return f"{self.label_root}.{name}" if self.kind == "patches" else name

    @property
    def merge_collections(self):
        """The MongoDB collections that hold one document per target sample."""
        if self.kind == "frames":
            return [internals.sample_collection_name(self.collection), internals.frame_collection_name(self.root)]
        return [internals.sample_collection_name(self.root)]

    def get_field(self, name):
        """The existing output field ``name`` (frame field for frames targets), or None."""
        if self.kind == "frames":
            return self.root.get_frame_field_schema(flat=True, include_private=True).get(name)
        return self.root.get_field_schema(flat=True, include_private=True).get(self.path(name))

    def declare(self, name, ftype, **kwargs):
        """Adds the output field to every schema that should list it (idempotent)."""
        if self.kind == "frames":
            if self.get_field(name) is None:
                self.root.add_frame_field(name, ftype, **kwargs)
            frames_dataset = internals.backing_dataset(self.collection)
            if frames_dataset.get_field(name) is None:
                frames_dataset.add_sample_field(name, ftype, **kwargs)
        elif self.kind == "patches":
            if self.get_field(name) is None:
                self.root.add_sample_field(self.path(name), ftype, **kwargs)
            patches_dataset = internals.backing_dataset(self.collection)
            own = f"{self.collection.patches_field}.{name}"
            if patches_dataset.get_field(own) is None:
                patches_dataset.add_sample_field(own, ftype, **kwargs)
        elif self.get_field(name) is None:
            self.root.add_sample_field(name, ftype, **kwargs)

    def delete(self, name):
        """Removes an output field from every schema and document."""
        if self.kind == "frames":
            if self.get_field(name) is not None:
                self.root.delete_frame_field(name)
            frames_dataset = internals.backing_dataset(self.collection)
            if frames_dataset.get_field(name) is not None:
                frames_dataset.delete_sample_field(name)
        elif self.kind == "patches":
            if self.get_field(name) is not None:
                self.root.delete_sample_field(self.path(name))
            patches_dataset = internals.backing_dataset(self.collection)
            own = f"{self.collection.patches_field}.{name}"
            if patches_dataset.get_field(own) is not None:
                patches_dataset.delete_sample_field(own)
        elif self.get_field(name) is not None:
            self.root.delete_sample_field(name)

    def reload(self):
        self.root.reload()
        if self.kind in ("frames", "patches"):
            internals.backing_dataset(self.collection).reload()


def check_collection(value, name="sample_collection"):
    """``value`` if it is a FiftyOne dataset or view, else a ValueError saying how to get one."""
    if isinstance(value, foc.SampleCollection):
        return value
    hint = f"load it with fo.load_dataset({value!r})" if isinstance(value, str) else "pass a dataset or a view of one"
    raise ValueError(f"{name} must be a FiftyOne dataset or view, got {value!r:.100}; {hint}")


def takes_collection(function):
    """``function`` with its first argument (the collection) checked by :func:`check_collection`."""

    @functools.wraps(function)
    def checked(collection, *args, **kwargs):
        return function(check_collection(collection), *args, **kwargs)

    return checked


def target_of(collection, what="this operation", *, patches=False):
    """The :class:`Target` of ``collection``, or a ValueError saying what to do instead.

    A patches view is a target only with ``patches`` (its objects' labels get the values).
    """
    if internals.is_patches(collection) and patches:
        if internals.is_frames(internals.patches_source(collection)) or "." in collection.patches_field:
            raise ValueError(
                f"{what} runs on patches of a top-level label field of images; this patches view is of "
                f"'{collection.patches_field}'{' of video frames' if internals.is_frames(internals.patches_source(collection)) else ''}"
            )
        return Target(collection, "patches")
    if internals.is_patches(collection):
        raise ValueError(
            f"{what} writes one value per sample and this is a patches view (one sample per object); "
            "object-level scores are not supported yet: run it on the images (the dataset or a view of it)"
        )
    if internals.is_clips(collection):
        raise ValueError(
            f"{what} does not run on clips views; run it on frames instead: "
            "dataset.to_frames(sample_frames=True), or on the videos' sample-level embeddings"
        )
    if internals.is_dynamic_groups(collection):
        raise ValueError(
            f"{what} does not run on a dynamic groups view (group_by); run it on the flat view before group_by"
        )
    if collection.media_type == "group":
        raise ValueError(
            f"{what} needs a flat collection and this one is grouped: pick the slices to score, e.g. "
            "dataset.select_group_slices(media_type='image')"
        )
    if internals.is_frames(collection):
        return Target(collection, "frames")
    return Target(collection, "samples")


def is_vector_field(field):
    """Whether a schema field can hold embedding vectors."""
    return isinstance(field, (fof.VectorField, fof.ArrayField)) or (
        isinstance(field, fof.ListField) and isinstance(field.field, (fof.FloatField, fof.IntField))
    )
