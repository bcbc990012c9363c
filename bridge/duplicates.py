"""Near-duplicate groups of a collection, as a run of this plugin."""

import time
import uuid

import numpy as np

import fiftyone.core.fields as fof

from ..core import duplicates as core_duplicates
from ..core import params
from . import internals, runs
from .commit import FieldWrite, commit, recover
from .progress import phases
from .reads import check_vector_fields, read_vectors
from .targets import is_vector_field, target_of

DEFAULT_GROUP_FIELD = "near_dup_group"
DEFAULT_REPRESENTATIVE_FIELD = "near_dup_representative"


def find_near_duplicates(
    collection,
    embeddings_field,
    *,
    radius=None,
    group_field=DEFAULT_GROUP_FIELD,
    representative_field=DEFAULT_REPRESENTATIVE_FIELD,
    run_key=None,
    overwrite=False,
    num_threads=None,
    progress=None,
):
    """Finds groups of near-duplicates in a collection and writes, per sample, its group and whether it is kept.

    Two samples are near-duplicates when their embeddings are closer than
    ``radius`` (None: the automatic radius of :mod:`..core.duplicates`, 0.2 x
    the median distance to the 10th neighbour); a group is a connected set of
    such pairs. ``group_field`` gets the group id (0, 1, ...; None for a
    sample without near-duplicates), ``representative_field`` True for the
    one sample kept of each group (its first in the collection's order) and
    for samples without near-duplicates, False for the extra copies (None
    for samples without an embedding). On a patches view both are attributes
    of the objects' labels. The run is recorded under ``run_key`` (default:
    ``group_field``); nothing is written until the groups are computed.

    Returns a summary dict (groups, copies, radius, samples, skipped, seconds, ...).
    """
    start = time.perf_counter()
    recover(internals.root_dataset(collection))
    target = target_of(collection, "find_near_duplicates", patches=True)
    fields = check_vector_fields(collection, embeddings_field)
    overwrite = params.boolean("overwrite", overwrite)
    checked = core_duplicates.check_params(radius=radius, num_threads=num_threads, progress=progress)
    run_key = run_key or group_field
    runs.check_output_field(collection, group_field, runs.DUPLICATES, param="group_field", ftype=fof.IntField,
                            overwrite=overwrite, run_key=run_key, patches=True)
    runs.check_output_field(collection, representative_field, runs.DUPLICATES, param="representative_field",
                            ftype=fof.BooleanField, overwrite=overwrite, run_key=run_key, patches=True)
    if representative_field == group_field:
        raise ValueError(f"representative_field: '{representative_field}' is also the group_field; choose another name")
    run_key = runs.check_run_key(collection, run_key, runs.DUPLICATES)
    report = phases(checked.pop("progress"))
    if collection.count() == 0:
        raise ValueError("The view is empty: select samples with embeddings before finding near-duplicates")

    table = read_vectors(collection, fields, progress=report(0.0, 0.2))
    if checked["radius"] is None and len(table) <= core_duplicates.REFERENCE_NEIGHBOR:
        raise ValueError(
            f"radius: the automatic radius needs more than {core_duplicates.REFERENCE_NEIGHBOR} samples with "
            f"embeddings in '{', '.join(fields)}', found {len(table)}; pass a radius or compute embeddings first"
        )
    result = core_duplicates.near_duplicate_groups(table.vectors, progress=report(0.2, 0.9), **checked)
    del table.vectors

    summary = dict(
        groups=result.num_groups,
        copies=result.num_copies,
        in_groups=int((result.groups >= 0).sum()),
        radius=round(result.radius, 6),
        radius_rule="automatic" if checked["radius"] is None else "given",
        samples=len(table.ids),
        skipped=len(table.missing_ids),
        seconds=None,
    )
    config = runs.make_config(
        runs.DUPLICATES,
        embeddings_fields=fields,
        group_field=group_field,
        representative_field=representative_field,
        target_kind=target.kind,
        patches_field=getattr(collection, "patches_field", None) if target.kind == "patches" else None,
        radius=checked["radius"],
        radius_used=result.radius,
        groups=summary["groups"],  # also here: the panel reads run configs, not results
        copies=summary["copies"],
        token=uuid.uuid4().hex,
    )
    ids = np.concatenate([table.ids, table.missing_ids])
    none = [None] * len(table.missing_ids)
    groups = [None if g < 0 else g for g in result.groups.tolist()] + none
    representative = result.representative.tolist() + none
    summary["seconds"] = round(time.perf_counter() - start, 3)
    commit(
        collection,
        run_key,
        config,
        dict(summary=summary),
        writes=[
            FieldWrite(group_field, ids, groups, fof.IntField),
            FieldWrite(representative_field, ids, representative, fof.BooleanField),
        ],
    )
    report(1.0, 1.0)(1.0)
    summary.update(seconds=round(time.perf_counter() - start, 3), run_key=run_key, group_field=group_field,
                   representative_field=representative_field, target_kind=target.kind)
    summary["message"] = describe(summary)
    return summary


def describe(summary):
    """One line: how many groups and extra copies, at which radius."""
    return (
        f"{summary['groups']:,} near-duplicate groups, {summary['copies']:,} extra copies "
        f"({summary['in_groups']:,} of {summary['samples']:,} samples in groups; "
        f"{summary['radius_rule']} radius {summary['radius']:.4g})"
    )


_GEOMETRY = {"bounding_box", "mask", "points", "closed", "filled"}


def duplicates_vector_fields(collection):
    """Vector fields a near-duplicate search can read: sample fields, and on a patches view its labels' vectors."""
    schema = collection.get_field_schema(flat=True)
    patches = getattr(collection, "patches_field", None)
    return sorted(
        name for name, field in schema.items()
        if is_vector_field(field) and ("." not in name or (patches and name.startswith(patches + ".")
                                                           and name.rsplit(".", 1)[1] not in _GEOMETRY))
    )


def duplicate_runs(collection):
    """``[(run key, config dict)]`` of the sample-level near-duplicate runs of the collection's dataset, newest first."""
    found = runs.plugin_runs(internals.root_dataset(collection), runs.DUPLICATES)
    return [(key, config) for key, config, _ in found if config.get("target_kind") == "samples"]


def duplicates_view(collection, group_field):
    """The samples of ``collection`` that are in a near-duplicate group, groups side by side, representative first."""
    from fiftyone import ViewField as F

    return collection.match(F(group_field) != None).sort_by(  # noqa: E711 - a MongoDB expression
        [(group_field, 1), (_representative_of(collection, group_field), -1)])


def _representative_of(collection, group_field):
    for _, config in duplicate_runs(collection):
        if config.get("group_field") == group_field:
            return config.get("representative_field")
    return group_field
