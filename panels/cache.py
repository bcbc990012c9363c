"""The one cache the plugin owns: sweep tables (orders held in memory), maps, and run-document reads.

Everything is keyed by dataset name first, so :func:`drop` forgets a dataset
(Refresh, a dataset change, a run deleted). Run-document reads (the score
fields offered, a score run's warning) are keyed on the dataset's fields
version too (:func:`bridge.fields_version`): a new field or run refreshes them.
"""

import threading
from collections import OrderedDict

from .. import bridge
from ..bridge import internals

#: sweep tables, maps and run reads kept (least recently used dropped first)
CACHE_SIZE = 32


class LRUCache:
    """Recently used values under tuple keys whose first item is the dataset name."""

    def __init__(self, size=CACHE_SIZE):
        self.size = size
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def __contains__(self, key):
        with self.lock:
            return key in self.entries

    def peek(self, key, default=None):
        """The value under ``key`` without building it, or ``default``."""
        with self.lock:
            return self.entries.get(key, default)

    def get(self, key, build):
        """The value under ``key``; built by ``build()`` and kept when missing (None is not kept)."""
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = build()
        if value is not None:
            self.put(key, value)
        return value

    def put(self, key, value):
        with self.lock:
            self.entries[key] = value
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def drop(self, dataset_name, kind=None):
        """Forgets a dataset's entries (of one ``kind``, the key's second item, if given)."""
        with self.lock:
            for key in [k for k in self.entries if k[0] == dataset_name and (kind is None or k[1] == kind)]:
                del self.entries[key]

    def clear(self):
        with self.lock:
            self.entries.clear()


CACHE = LRUCache()


def drop(dataset_name, kind=None):
    """Forgets what the panel holds for a dataset (everything, or one ``kind``: "order", "table", "map", "runs")."""
    CACHE.drop(dataset_name, kind)


def _stages(collection):
    return str(internals.stage_dicts(collection) or [])


def _runs_read(collection, what, build):
    dataset = internals.root_dataset(collection)
    key = (dataset.name, "runs", what, _stages(collection), bridge.fields_version(dataset))
    return CACHE.get(key, build)


def score_fields(collection):
    """:func:`bridge.score_fields`, read once per fields version."""
    return list(_runs_read(collection, "score_fields", lambda: tuple(bridge.score_fields(collection))))


def default_score_field(collection):
    """:func:`bridge.default_score_field`, read once per fields version."""
    return _runs_read(collection, "default_score_field", lambda: (bridge.default_score_field(collection),))[0]


def score_warning(collection, score_field):
    """The warning the run that wrote ``score_field`` recorded (ZCore reliability, mimic sanity), or None."""
    return _runs_read(collection, ("warning", score_field),
                      lambda: (_score_warning(collection, score_field),))[0]


def _score_warning(collection, score_field):
    from ..bridge import runs

    dataset = internals.root_dataset(collection)
    owner = runs.owner_of(dataset, score_field)
    if owner is None or owner[1].get("method") not in (runs.ZCORE, runs.MIMIC):
        return None
    try:
        summary = dataset.load_run_results(owner[0], load_view=False).summary
    except Exception:  # noqa: BLE001 - a run record of an older version: no warning to show
        return None
    return summary.get("warning") if summary else None
