"""This plugin's runs, recorded with FiftyOne's runs API.

Every method (embeddings, ZCore, mimic, coreset order, saved coreset view) is
a run on the collection it was computed on, with its own config class (the
parameters) and results (the summary), so ``dataset.list_runs()``,
``get_run_info``, ``load_run_view``, ``rename_run`` and ``delete_run`` work.
``delete_run`` calls the run's ``cleanup``, which removes the fields (and
tags, saved views) the run wrote.

The config classes live in ``coreset_curation.bridge.runs``: a process that
has loaded the plugin (the App, ``foo.get_operator``, ``foo.execute_operator``)
resolves them; elsewhere FiftyOne falls back to its generic run class, which
can list and read the records but not clean up their fields (it logs why).
"""

import logging

from bson import json_util

import fiftyone.core.fields as fof
import fiftyone.core.runs as fors

from . import internals, tags
from .commit import is_saved_as
from .targets import target_of

logger = logging.getLogger(__name__)

PLUGIN = "@coreset/curation"
EMBEDDINGS = "coreset_embeddings"
ZCORE = "coreset_zcore"
MIMIC = "coreset_mimic"
ORDER = "coreset_order"
VIEW = "coreset_view"
TAG = "coreset_tag"
DUPLICATES = "coreset_duplicates"
METHOD_LABELS = {
    EMBEDDINGS: "compute_embeddings",
    ZCORE: "compute_zcore_scores",
    MIMIC: "compute_mimic_scores",
    ORDER: "a coreset order",
    VIEW: "save_coreset_view",
    TAG: "tag_coreset",
    DUPLICATES: "find_near_duplicates",
}
_BUILTIN = {"id", "_id", "filepath", "tags", "metadata", "created_at", "last_modified_at", "frames", "media_type"}


class _PluginRunConfig(fors.RunConfig):
    """Config of one of this plugin's runs; ``OUTPUTS`` name its output-field parameters."""

    METHOD = None
    OUTPUTS = ()
    INPUTS = ()

    def __init__(self, **kwargs):
        kwargs.pop("method", None)
        kwargs.setdefault("plugin", PLUGIN)
        super().__init__(method=self.METHOD, **kwargs)

    def output_fields(self):
        return [getattr(self, name) for name in self.OUTPUTS if getattr(self, name, None)]

    def input_fields(self):
        fields = []
        for name in self.INPUTS:
            value = getattr(self, name, None)
            fields += [value] if isinstance(value, str) else list(value or [])
        return fields


class _PluginRun(fors.Run):
    """Removes the run's output fields on ``delete_run``."""

    def get_fields(self, samples, key):
        return self.config.output_fields() + self.config.input_fields()

    def cleanup(self, samples, key):
        view = fors.Run.load_run_view(samples, key)
        target = target_of(view, patches=True)
        others = set()
        for other_key, doc in raw_runs(samples).items():
            if other_key != key and doc.config.get("plugin") == PLUGIN:
                others.update(_outputs(doc.config))
        for name in self.config.output_fields():
            if name in others:
                logger.warning("Run '%s': field '%s' is also written by another run; kept", key, name)
                continue
            target.delete(name)
        self._cleanup_extra(samples, key, target)

    def _cleanup_extra(self, samples, key, target):
        pass


class EmbeddingsRunConfig(_PluginRunConfig):
    METHOD = EMBEDDINGS
    OUTPUTS = ("embeddings_field",)


class EmbeddingsRun(_PluginRun):
    pass


class ZCoreRunConfig(_PluginRunConfig):
    METHOD = ZCORE
    OUTPUTS = ("score_field",)
    INPUTS = ("embeddings_fields",)


class ZCoreRun(_PluginRun):
    pass


class MimicRunConfig(_PluginRunConfig):
    METHOD = MIMIC
    OUTPUTS = ("score_field",)
    INPUTS = ("embeddings_field", "label_field")


class _TaggingRun(_PluginRun):
    """Removes the tags the run added, from the samples it added them to (:mod:`.tags`)."""

    def _cleanup_extra(self, samples, key, target):
        token = getattr(self.config, "token", None)
        if token:
            tags.release(target.root, token)


class MimicRun(_TaggingRun):
    pass


class CoresetOrderRunConfig(_PluginRunConfig):
    METHOD = ORDER
    OUTPUTS = ("rank_field",)
    INPUTS = ("score_field", "embeddings_fields", "stratify_by")


class CoresetOrderRun(_PluginRun):
    def cleanup(self, samples, key):
        views = sorted(
            c.get("view_name") for _, c, _ in plugin_runs(samples, VIEW, rank_field=self.config.rank_field)
        )
        if views:  # FiftyOne logs this and keeps the field
            raise ValueError(
                f"rank field '{self.config.rank_field}' is frozen by the saved coreset view(s) {views}; "
                "delete those runs first to remove it"
            )
        super().cleanup(samples, key)


class CoresetViewRunConfig(_PluginRunConfig):
    METHOD = VIEW
    INPUTS = ("rank_field",)


class CoresetViewRun(_TaggingRun):
    def _cleanup_extra(self, samples, key, target):
        super()._cleanup_extra(samples, key, target)
        root = target.root
        if owns_saved_view(root, self.config.serialize()):
            root.delete_saved_view(self.config.view_name)


class CoresetTagRunConfig(_PluginRunConfig):
    METHOD = TAG
    INPUTS = ("rank_field",)


class CoresetTagRun(_TaggingRun):
    pass


class DuplicatesRunConfig(_PluginRunConfig):
    METHOD = DUPLICATES
    OUTPUTS = ("group_field", "representative_field")
    INPUTS = ("embeddings_fields",)


class DuplicatesRun(_PluginRun):
    pass


def owns_saved_view(dataset, config):
    """Whether the saved view named in a coreset view run's config is still the one that run saved."""
    name, query = config.get("view_name"), config.get("query")
    return bool(name) and query is not None and is_saved_as(dataset, name, dataset.match(json_util.loads(query)))


CONFIGS = {
    cls.METHOD: cls
    for cls in (EmbeddingsRunConfig, ZCoreRunConfig, MimicRunConfig, CoresetOrderRunConfig, CoresetViewRunConfig,
                CoresetTagRunConfig, DuplicatesRunConfig)
}


# -- reading run records without loading classes -----------------------------------


def raw_runs(dataset):
    """``{key: run document}`` of the dataset's runs (configs as plain dicts)."""
    return internals.run_docs(dataset)


def _outputs(config):
    cls = CONFIGS.get(config.get("method"))
    names = cls.OUTPUTS if cls else ("score_field", "embeddings_field", "rank_field")
    return [config[n] for n in names if config.get(n)]


def plugin_runs(dataset, method=None, **match):
    """``[(key, config dict, timestamp)]`` of this plugin's runs, newest first."""
    found = []
    for key, doc in raw_runs(dataset).items():
        config = doc.config or {}
        if config.get("plugin") != PLUGIN or (method and config.get("method") != method):
            continue
        if any(config.get(k) != v for k, v in match.items()):
            continue
        found.append((key, config, doc.timestamp))
    found.sort(key=lambda item: item[2] or 0, reverse=True)
    return found


def pinned_rank_fields(dataset):
    """Rank fields that saved coreset views match on: frozen, never rewritten."""
    return {c.get("rank_field") for _, c, _ in plugin_runs(dataset, VIEW)}


def owner_of(dataset, field_name, kind="samples"):
    """``(key, config dict)`` of the plugin run that wrote ``field_name``, or None."""
    for key, config, _ in plugin_runs(dataset):
        if field_name in _outputs(config) and config.get("target_kind", "samples") == kind:
            return key, config
    return None


# -- checks before anything is computed -------------------------------------------------


def check_field_name(name, param):
    """A plain field name (letters, digits, '_'; not built-in, no leading '_')."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") or name in _BUILTIN:
        raise ValueError(
            f"{param} must be a plain field name (letters, digits and '_', not starting with '_', "
            f"not a built-in field such as 'filepath'), got {name!r}"
        )
    return name


def check_output_field(collection, name, method, *, param, ftype=fof.FloatField, overwrite=False, run_key=None,
                       patches=False):
    """Refuses to write ``name`` unless it is new, this method's own output (of ``run_key``, if given), or ``overwrite``.

    With ``patches``, on a patches view ``name`` is an attribute of its labels. Returns the key of the run that
    owns the field now, or None.
    """
    check_field_name(name, param)
    target = target_of(collection, patches=patches)
    existing = target.get_field(name)
    owner = owner_of(target.root, name, target.kind)
    if owner is not None and owner[1].get("method") != method:
        raise ValueError(
            f"{param}: '{name}' holds the output of {METHOD_LABELS.get(owner[1].get('method'), 'another run')} "
            f"(run '{owner[0]}'); choose another name"
        )
    if owner is not None and run_key is not None and owner[0] != run_key:
        raise ValueError(
            f"{param}: '{name}' holds the output of run '{owner[0]}', not of run_key '{run_key}'; "
            f"choose another {param}, or pass run_key='{owner[0]}' to replace that run"
        )
    if existing is not None and not isinstance(existing, ftype):
        raise ValueError(
            f"{param}: field '{name}' already exists as a {type(existing).__name__}; choose another name "
            "or delete that field first"
        )
    if existing is not None and owner is None and not overwrite:
        raise ValueError(
            f"{param}: field '{name}' already exists and was not written by {METHOD_LABELS[method]}; "
            "choose another name, or pass overwrite=True to replace its values"
        )
    return owner[0] if owner else None


def check_run_key(collection, key, method, param="run_key"):
    """A run key that is a valid identifier and free, or this method's own."""
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"{param} must be a valid Python identifier (letters, digits, '_'), got {key!r}")
    docs = raw_runs(collection)
    if key in docs:
        config = docs[key].config or {}
        if config.get("plugin") != PLUGIN or config.get("method") != method:
            raise ValueError(
                f"{param}: a run '{key}' of another kind already exists on this dataset; "
                "choose another name or delete that run first"
            )
    return key


def make_config(method, **params):
    """The config object of a new run of ``method``."""
    return CONFIGS[method](**params)


# -- listing and deleting the plugin's runs ----------------------------------------------

_DELETE_ORDER = {VIEW: 0, TAG: 1, ORDER: 2, MIMIC: 3, ZCORE: 4, EMBEDDINGS: 5}


def run_table(dataset):
    """This plugin's runs with what deleting each removes: ``[dict(run_key, method, label, fields, saved_view,
    samples, timestamp)]``; ``samples``: how many samples hold its fields (or its saved view holds), newest first."""
    dataset = internals.root_dataset(dataset)
    rows = []
    for key, config, timestamp in plugin_runs(dataset):
        method = config.get("method")
        fields = [f for f in _outputs(config) if dataset.get_field(f) is not None]
        view = config.get("view_name") if method == VIEW and owns_saved_view(dataset, config) else None
        if view:
            samples = dataset.load_saved_view(view).count()
        elif fields:
            samples = dataset.exists(fields[0]).count()
        else:
            samples = config.get("kept")
        rows.append(dict(run_key=key, method=method, label=METHOD_LABELS.get(method, method), fields=fields,
                         saved_view=view, tag=config.get("tag") or config.get("issue_tag"), samples=samples,
                         timestamp=timestamp))
    return rows


def describe_run(row):
    """One line of :func:`run_table`: what the run is and what deleting it removes."""
    parts = [f"{row['run_key']} ({row['label']})"]
    if row["fields"]:
        parts.append("field " + ", ".join(f"'{f}'" for f in row["fields"]))
    if row["saved_view"]:
        parts.append(f"saved view '{row['saved_view']}'")
    if row["tag"] and row["method"] in (TAG, VIEW):
        parts.append(f"tag '{row['tag']}'")
    if row["samples"] is not None:
        parts.append(f"{row['samples']:,} samples")
    return " · ".join(parts)


def delete_runs(dataset, run_keys):
    """Deletes these runs of this plugin through their cleanup (fields, tags, saved views); returns a summary.

    Saved views and tags go first, then the orders they were frozen on, so a
    rank field is removed together with the views on it. An order that a saved
    view which is not deleted is frozen on is refused.
    """
    dataset = internals.root_dataset(dataset)
    keys, runs_ = check_deletion(dataset, run_keys)
    before = set(dataset.get_field_schema())
    views = set(dataset.list_saved_views())
    for key in sorted(keys, key=lambda k: _DELETE_ORDER.get(runs_[k].get("method"), 9)):
        dataset.delete_run(key)
    dataset.reload()
    return dict(deleted=len(keys), run_keys=sorted(keys),
                fields=sorted(before - set(dataset.get_field_schema())),
                saved_views=sorted(views - set(dataset.list_saved_views())))


def check_deletion(dataset, run_keys):
    """``(run keys, {key: config})`` if :func:`delete_runs` may delete these runs, else a ValueError saying why."""
    dataset = internals.root_dataset(dataset)
    keys = [run_keys] if isinstance(run_keys, str) else list(dict.fromkeys(run_keys or []))
    if not keys:
        raise ValueError("run_keys: choose at least one of this plugin's runs to delete")
    runs_ = {key: config for key, config, _ in plugin_runs(dataset)}
    unknown = [k for k in keys if k not in runs_]
    if unknown:
        raise ValueError(f"run_keys: {unknown} are not runs of this plugin on '{dataset.name}'; its runs: "
                         f"{sorted(runs_) or 'none'}")
    for key in keys:
        config = runs_[key]
        if config.get("method") == ORDER:
            pinned = sorted(k for k, c in runs_.items()
                            if c.get("method") == VIEW and c.get("rank_field") == config.get("rank_field"))
            kept = [k for k in pinned if k not in keys]
            if kept:
                raise ValueError(f"run_keys: '{key}' is the order the saved coreset view(s) {kept} are frozen on; "
                                 "choose those too, or keep the order")
    return keys, runs_
