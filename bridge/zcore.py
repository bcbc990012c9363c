"""ZCore scores of a collection."""

import math
import time

from ..core import zcore as core_zcore
from .fields import check_writable_field, load_embeddings, record_run, run_key_for, write_sample_values

ZCORE_METHOD = "coreset_zcore"


def compute_zcore_scores(
    collection,
    embeddings_field,
    *,
    score_field="zcore_score",
    standardize="auto",
    n_samples=1_000_000,
    sample_dim=2,
    redundancy_nn=1000,
    redundancy_exp=4,
    random_init=True,
    seed=None,
    target_reliability=0.9,
    time_budget=None,
    device="auto",
    num_threads=None,
    progress=None,
):
    """Scores the samples of a collection with ZCore and writes ``score_field``.

    Returns a summary dict (scored, skipped, seconds, reliability, ...).
    """
    start = time.perf_counter()
    check_writable_field(collection, score_field)
    if len(collection) == 0:
        raise ValueError("The view is empty: select samples with embeddings before computing ZCore scores")
    table = load_embeddings(collection, embeddings_field, standardize=standardize)
    if len(table.ids) < 3:
        raise ValueError(
            f"ZCore needs at least 3 samples with embeddings in '{', '.join(table.fields)}'; "
            f"found {len(table.ids)} (skipped {len(table.missing_ids)} without). Compute embeddings first"
        )
    result = core_zcore.zcore_run(
        table.vectors,
        n_samples=n_samples,
        sample_dim=sample_dim,
        redundancy_nn=redundancy_nn,
        redundancy_exp=redundancy_exp,
        random_init=random_init,
        seed=seed,
        progress=progress,
        device=device,
        num_threads=num_threads,
        target_reliability=target_reliability,
        time_budget=time_budget,
    )
    values = dict(zip(table.ids, result.scores.tolist()))
    values.update(dict.fromkeys(table.missing_ids))
    write_sample_values(collection, score_field, values)
    summary = dict(
        scored=len(table.ids),
        skipped=len(table.missing_ids),
        seconds=round(time.perf_counter() - start, 3),
        reliability=None if math.isnan(result.reliability) else round(result.reliability, 4),
        n_samples_used=result.n_samples,
        stopped_by=result.stopped_by,
        seed=result.seed,
        device=result.device,
    )
    params = dict(
        embeddings_fields=table.fields,
        score_field=score_field,
        standardize=standardize,
        n_samples=n_samples,
        sample_dim=sample_dim,
        redundancy_nn=redundancy_nn,
        redundancy_exp=redundancy_exp,
        random_init=random_init,
        target_reliability=target_reliability,
        time_budget=time_budget,
        view_stages=[str(s) for s in getattr(collection, "_stages", [])],
    )
    record_run(collection, run_key_for(score_field), ZCORE_METHOD, params, summary)
    return summary
