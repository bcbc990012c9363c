"""The one place that moves data between FiftyOne collections and arrays.

Operators and panels call these functions; ``core`` never sees FiftyOne.
"""

from .commit import recover
from .coresets import (
    DEFAULT_SELECTION,
    CoresetOrder,
    EMBEDDING_SELECTIONS,
    KEEP,
    SELECTIONS,
    accuracy_curve,
    check_view_name,
    compute_coreset_order,
    coreset_order,
    coreset_views,
    find_order,
    kept_view,
    order_view,
    order_for,
    pruned_view,
    rank_field_name,
    unpinned_rank_field,
    recorded_embeddings_fields,
    resolve_selection,
    save_coreset_view,
    score_fingerprint,
    store_order,
    tag_coreset,
    view_run_key,
)
from .duplicates import (
    DEFAULT_GROUP_FIELD,
    DEFAULT_REPRESENTATIVE_FIELD,
    duplicate_runs,
    duplicates_vector_fields,
    duplicates_view,
    find_near_duplicates,
)
from .embeddings import (
    DEFAULT_EMBEDDINGS_FIELD,
    compute_embeddings,
    embeddings_model_identity,
)
from .fields import classification_fields, default_score_field, fields_version, score_fields, vector_fields
from .maps import MAP_POINTS, EmbeddingMap, embedding_map
from .mimic import DEFAULT_SCORE_FIELD as DEFAULT_MIMIC_FIELD
from .mimic import REFERENCES as MIMIC_REFERENCES
from .mimic import compute_mimic_scores
from .reads import read_columns, read_vectors
from .runs import (DUPLICATES, EMBEDDINGS, MIMIC, ORDER, PLUGIN, TAG, VIEW, ZCORE, check_deletion,
                   check_output_field, delete_runs, describe_run, run_table)
from .targets import check_collection, takes_collection, target_of
from .zcore import DEFAULT_SCORE_FIELD as DEFAULT_ZCORE_FIELD
from .zcore import compute_zcore_scores

# Every entry point that takes a collection first refuses anything else (a dataset's name, None) with one sentence.
_ENTRY_POINTS = (
    "accuracy_curve", "check_output_field", "check_view_name", "classification_fields", "compute_coreset_order",
    "coreset_order", "order_view", "store_order",
    "compute_embeddings", "coreset_views", "check_deletion", "delete_runs", "run_table", "score_fingerprint", "tag_coreset",
    "compute_mimic_scores", "compute_zcore_scores", "default_score_field", "embedding_map",
    "embeddings_model_identity", "fields_version", "find_near_duplicates", "duplicates_vector_fields",
    "duplicate_runs", "duplicates_view", "find_order", "kept_view", "order_for", "pruned_view",
    "read_columns", "read_vectors",
    "recorded_embeddings_fields", "recover", "resolve_selection", "save_coreset_view", "score_fields", "target_of",
    "unpinned_rank_field", "vector_fields",
)
globals().update({name: takes_collection(globals()[name]) for name in _ENTRY_POINTS})
