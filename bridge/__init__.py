"""The one place that moves data between FiftyOne collections and arrays.

Operators and panels call these functions; ``core`` never sees FiftyOne.
"""

from .coresets import (
    SELECTION_MODES,
    ScoreTable,
    accuracy_curve,
    coreset_ids,
    load_scores,
    recorded_embeddings_field,
    resolve_selection,
    save_coreset_view,
    select_kept,
)
from .fields import (
    PLUGIN,
    EmbeddingTable,
    check_writable_field,
    classification_fields,
    load_embeddings,
    numeric_fields,
    plugin_score_fields,
    record_run,
    run_key_for,
    vector_fields,
    write_sample_values,
)
from .embeddings import (
    DEFAULT_EMBEDDINGS_FIELD,
    EMBEDDINGS_METHOD,
    compute_embeddings,
    embeddings_model_identity,
)
from .maps import EmbeddingMap, embedding_map
from .mimic import MIMIC_METHOD, REFERENCES as MIMIC_REFERENCES, compute_mimic_scores
from .zcore import ZCORE_METHOD, compute_zcore_scores
