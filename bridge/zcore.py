"""ZCore scores of a collection, as a run of this plugin."""

import math
import time
import uuid

import numpy as np

import fiftyone.core.fields as fof

from ..core import params
from ..core import zcore as core_zcore
from . import runs
from . import internals
from .commit import FieldWrite, commit, recover
from .progress import phases
from .reads import check_vector_fields, read_vectors
from .targets import target_of

DEFAULT_SCORE_FIELD = "zcore_score"


def compute_zcore_scores(
    collection,
    embeddings_field,
    *,
    score_field=DEFAULT_SCORE_FIELD,
    run_key=None,
    overwrite=False,
    standardize="auto",
    n_samples=core_zcore.DEFAULTS["n_samples"],
    sample_dim=core_zcore.DEFAULTS["sample_dim"],
    redundancy_nn=core_zcore.DEFAULTS["redundancy_nn"],
    redundancy_exp=core_zcore.DEFAULTS["redundancy_exp"],
    random_init=core_zcore.DEFAULTS["random_init"],
    seed=None,
    target_reliability=core_zcore.DEFAULTS["target_reliability"],
    time_budget=core_zcore.DEFAULTS["time_budget"],
    device="auto",
    num_threads=None,
    backend=core_zcore.DEFAULTS["backend"],
    ray_address=None,
    progress=None,
):
    """Scores the samples of a collection with ZCore and writes ``score_field``.

    ``embeddings_field`` is a vector field or a list of them (concatenated in
    order; with ``standardize="auto"`` each is centred and scaled by one
    scalar when there are several). ``backend="ray"`` runs the converging
    engine's pair visits on a Ray cluster (``ray_address``, else
    ``RAY_ADDRESS``, else a local Ray). The run is recorded under ``run_key``
    (default: the score field's name). Nothing is written until every score
    is computed; the field then holds this run's scores only (samples of the
    dataset outside the collection get None).

    Returns a summary dict (scored, skipped, seconds, reliability, warning, ...).
    """
    start = time.perf_counter()
    recover(internals.root_dataset(collection))
    target = target_of(collection, "compute_zcore_scores")
    fields = check_vector_fields(collection, embeddings_field)
    overwrite = params.boolean("overwrite", overwrite)
    runs.check_output_field(collection, score_field, runs.ZCORE, param="score_field", overwrite=overwrite,
                            run_key=run_key or score_field)
    run_key = runs.check_run_key(collection, run_key or score_field, runs.ZCORE)
    if standardize != "auto":
        standardize = params.boolean("standardize", standardize)
    checked = core_zcore.check_params(
        n_samples=n_samples, sample_dim=sample_dim, redundancy_nn=redundancy_nn, redundancy_exp=redundancy_exp,
        random_init=random_init, seed=seed, progress=progress, device=device, num_threads=num_threads,
        target_reliability=target_reliability, time_budget=time_budget, backend=backend, ray_address=ray_address,
    )
    report = phases(checked.pop("progress"))
    if collection.count() == 0:
        raise ValueError("The view is empty: select samples with embeddings before computing ZCore scores")

    standardized = len(fields) > 1 if standardize == "auto" else standardize
    table = read_vectors(collection, fields, standardize=standardized, columns=True, progress=report(0.0, 0.1))
    if len(table) < 3:
        raise ValueError(
            f"ZCore needs at least 3 samples with embeddings in '{', '.join(fields)}'; found {len(table)} "
            f"(skipped {len(table.missing_ids)} without); compute embeddings first"
        )
    result = core_zcore.zcore_run(table.vectors, progress=report(0.1, 0.95), **checked)
    del table.vectors

    reliability = None if math.isnan(result.reliability) else round(result.reliability, 4)
    summary = dict(
        scored=len(table.ids),
        skipped=len(table.missing_ids),
        seconds=None,
        reliability=reliability,
        reliability_note=_reliability_note(reliability),
        target_reliability=result.target_reliability,
        time_budget=checked["time_budget"] if result.target_reliability is not None else None,
        n_samples_used=result.n_samples,
        iterations_per_sample=round(result.n_samples / len(table.ids), 2),
        stopped_by=result.stopped_by,
        seed=result.seed,
        device=result.device,
        warning=result.warning,
    )
    config = runs.make_config(
        runs.ZCORE,
        embeddings_fields=fields,
        score_field=score_field,
        target_kind=target.kind,
        token=uuid.uuid4().hex,
        standardize=standardize,
        standardized=standardized,
        n_samples=checked["n_samples"],
        sample_dim=checked["sample_dim"],
        redundancy_nn=checked["redundancy_nn"],
        redundancy_exp=checked["redundancy_exp"],
        random_init=checked["random_init"],
        seed=result.seed,
        target_reliability=checked["target_reliability"],
        time_budget=checked["time_budget"],
    )
    ids = np.concatenate([table.ids, table.missing_ids])
    values = result.scores.astype(float).tolist() + [None] * len(table.missing_ids)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    commit(
        collection,
        run_key,
        config,
        dict(summary=summary),
        writes=[FieldWrite(score_field, ids, values, fof.FloatField)],
    )
    report(1.0, 1.0)(1.0)
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["run_key"] = run_key
    summary["score_field"] = score_field
    return summary


def _reliability_note(reliability):
    if reliability is None:
        return "Split-half reliability could not be measured (too few iterations or samples)."
    return (
        f"Split-half reliability {reliability:.2f}: the rank correlation of two independent halves of the "
        "iterations, corrected to the full run (1 = the ranking would not change with more iterations)."
    )
