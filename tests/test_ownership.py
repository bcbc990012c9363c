"""Data safety, round 2 (issue 20): tags are data, tags are owned per sample, views by name, exact orders.

Every test uses a real dataset in the tests' own MongoDB, through the
operator call (``foo.get_operator(uri)(...)``) and, where the path differs,
``foo.execute_operator``.
"""

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import labelled

SAVE = f"{PLUGIN_NAME}/save_coreset_view"
MIMIC = f"{PLUGIN_NAME}/compute_mimic_scores"


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in (
        "compute_mimic_scores", "save_coreset_view", "compute_coreset_order")}


@pytest.fixture(scope="module")
def foo(fo):
    import fiftyone.operators as foo

    return foo


def _scored(make_dataset, n=40, seed=5):
    dataset = make_dataset(n)
    dataset.set_values("score", np.random.default_rng(seed).random(n).tolist())
    return dataset


def _labelled(make_dataset, n=60, seed=0):
    dataset = labelled(make_dataset, n, seed=seed)
    # a third of the labels wrong, so some samples are flagged
    wrong = dataset.match_tags("trusted", bool=False).take(20, seed=2)
    wrong.set_values("ground_truth.label", [str((int(v) + 1) % 3) for v in wrong.values("ground_truth.label")])
    return dataset


def _top_ids(dataset, kept):
    scores = dataset.values("score")
    return set(np.asarray(dataset.values("id"))[np.argsort(scores)[::-1][:kept]])


def _tagged(dataset, tag):
    return set(dataset.match_tags(tag).values("id"))


# -- 1. tags are data, never expressions ---------------------------------------------------------


TAGS = ["$filepath", "$$ROOT", "$$REMOVE", "a.b", "é" * 300, "标签 ✓", "$", "{x}"]


@pytest.mark.parametrize("tag", TAGS)
def test_a_save_tag_is_stored_as_written(fo, ops, make_dataset, tag):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag=tag)
    assert dataset.count_sample_tags() == {tag: 20}
    assert _tagged(dataset, tag) == _top_ids(dataset, 20)
    dataset.delete_run("coreset_view_core")
    assert dataset.count_sample_tags() == {}
    # nothing left to replay: another run on the dataset works
    ops["save_coreset_view"](dataset, "score", 0.25, "again", selection="top")


@pytest.mark.parametrize("tag", ["$filepath", "$$ROOT", "a.b"])
def test_an_issue_tag_is_stored_as_written_from_the_operator_and_execute_operator(fo, ops, foo, make_dataset, tag):
    dataset = _labelled(make_dataset)
    summary = ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag=tag,
                                          seed=0)
    flagged = set(dataset.match({"mimic_score": {"$lt": 0}}).values("id"))
    assert summary["flagged"] == len(flagged) > 0
    assert dataset.count_sample_tags() == {"trusted": 15, tag: len(flagged)} and _tagged(dataset, tag) == flagged
    other = _labelled(make_dataset, seed=1)
    result = foo.execute_operator(MIMIC, ctx=dict(view=other.view(), params=dict(
        embeddings_field="emb", label_field="ground_truth", trusted_tag="trusted", issue_tag=tag, seed=0)))
    assert result.error is None
    assert _tagged(other, tag) == set(other.match({"mimic_score": {"$lt": 0}}).values("id"))


def test_an_empty_or_non_string_tag(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "blank", selection="top", tag="  ")
    assert dataset.count_sample_tags() == {}
    with pytest.raises(ValueError, match="^tag must be a tag name"):
        ops["save_coreset_view"](dataset, "score", 0.5, "bad", selection="top", tag=7)
    with pytest.raises(ValueError, match="^tag must be at most 1000"):
        ops["save_coreset_view"](dataset, "score", 0.5, "bad", selection="top", tag="x" * 1001)
    assert not dataset.has_saved_view("bad")


# -- 2. ownership per sample ---------------------------------------------------------------------


def test_a_tag_the_user_put_on_samples_before_survives_rerun_resave_and_delete(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    top = sorted(_top_ids(dataset, 20))
    mine = set(top[:5]) | set(dataset.match({"score": {"$lt": 0.1}}).values("id"))  # some kept, some pruned
    dataset.select(sorted(mine)).tag_samples("review")
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="review")
    assert _tagged(dataset, "review") == mine | _top_ids(dataset, 20)
    ops["save_coreset_view"](dataset, "score", 0.9, "core", selection="top", tag="review", overwrite=True)
    assert _tagged(dataset, "review") == mine | _top_ids(dataset, 4)
    dataset.delete_run("coreset_view_core")
    assert _tagged(dataset, "review") == mine


def test_a_tag_the_user_adds_after_the_run_on_other_samples_stays(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="kept")
    later = set(dataset.match({"score": {"$lt": 0.3}}).values("id"))  # pruned samples, tagged by hand
    dataset.select(sorted(later)).tag_samples("kept")
    ops["save_coreset_view"](dataset, "score", 0.8, "core", selection="top", tag="kept", overwrite=True)
    assert _tagged(dataset, "kept") == later | _top_ids(dataset, 8)
    dataset.delete_run("coreset_view_core")
    assert _tagged(dataset, "kept") == later


def test_a_changed_tag_name_releases_the_old_tag(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="old")
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="new", overwrite=True)
    assert dataset.count_sample_tags() == {"new": 20}
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", overwrite=True)
    assert dataset.count_sample_tags() == {}


def test_a_mimic_rerun_with_another_tag_releases_the_old_one(fo, ops, make_dataset):
    dataset = _labelled(make_dataset)
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="issue_a", seed=0)
    assert dataset.count_sample_tags().get("issue_a")
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="issue_b", seed=0)
    flagged = set(dataset.match({"mimic_score": {"$lt": 0}}).values("id"))
    assert "issue_a" not in dataset.count_sample_tags() and _tagged(dataset, "issue_b") == flagged


def test_two_mimic_runs_sharing_a_tag_do_not_remove_each_others(fo, ops, make_dataset):
    dataset = _labelled(make_dataset)
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="issue",
                                score_field="mimic_a", seed=0)
    a = set(dataset.match({"mimic_a": {"$lt": 0}}).values("id"))
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="issue",
                                score_field="mimic_b", seed=1, method="proj")
    b = set(dataset.match({"mimic_b": {"$lt": 0}}).values("id"))
    assert _tagged(dataset, "issue") == a | b
    dataset.delete_run("mimic_a")
    assert _tagged(dataset, "issue") == b
    dataset.delete_run("mimic_b")
    assert "issue" not in dataset.count_sample_tags()


def test_a_mimic_rerun_keeps_the_tag_a_coreset_save_put_on_the_same_samples(fo, ops, make_dataset):
    dataset = _labelled(make_dataset)
    dataset.set_values("score", np.random.default_rng(3).random(len(dataset)).tolist())
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="check")
    saved = _tagged(dataset, "check")
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="check", seed=0)
    flagged = set(dataset.match({"mimic_score": {"$lt": 0}}).values("id"))
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag=None, seed=0)
    assert _tagged(dataset, "check") == saved
    dataset.delete_run("coreset_view_core")
    assert "check" not in dataset.count_sample_tags() and flagged


def test_the_panels_tag_kept_is_a_run_that_can_be_undone(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset)
    dataset.limit(2).tag_samples("mine")
    summary = ops["compute_coreset_order"](dataset, "score", selection="top")
    done = bridge.tag_coreset(dataset, summary["rank_field"], "mine", prune_rate=0.5)
    assert done["kept"] == 20 and _tagged(dataset, "mine") == _top_ids(dataset, 20) | set(dataset.limit(2).values("id"))
    assert done["run_key"] in dataset.list_runs()
    dataset.delete_run(done["run_key"])
    assert _tagged(dataset, "mine") == set(dataset.limit(2).values("id"))


def test_tags_that_share_a_slug_or_have_none_each_get_their_own_tag_run(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset)
    rank_field = ops["compute_coreset_order"](dataset, "score", selection="top")["rank_field"]
    keys = [bridge.tag_coreset(dataset, rank_field, tag, prune_rate=0.5)["run_key"] for tag in ("a b", "a-b", "$")]
    assert len(set(keys)) == 3 and keys[0] == "coreset_tag_a_b"
    assert dataset.count_sample_tags() == {"a b": 20, "a-b": 20, "$": 20}
    assert bridge.tag_coreset(dataset, rank_field, "a-b", prune_rate=0.9)["run_key"] == keys[1]  # the same run again
    assert dataset.count_sample_tags() == {"a b": 20, "a-b": 4, "$": 20}


# -- 3. saved views by name, never by slug ---------------------------------------------------------


def test_a_name_sharing_a_slug_with_a_users_view_is_refused(fo, ops, foo, make_dataset):
    dataset = _scored(make_dataset)
    dataset.save_view("My View", dataset.limit(3))
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="'my-view' and the existing saved view 'My View'"):
            ops["save_coreset_view"](dataset, "score", 0.5, "my-view", selection="top", overwrite=overwrite)
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="'my-view' and the existing saved view 'My View'"):
        foo.execute_operator(SAVE, ctx=dict(view=dataset.view(), params=dict(
            score_field="score", prune_rate=0.5, view_name="my-view", selection="top")))
    assert dataset.list_saved_views() == ["My View"] and len(dataset.load_saved_view("My View")) == 3


def test_two_coreset_views_whose_names_share_a_slug(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "Core Set", selection="top", tag="first")
    with pytest.raises(ValueError, match="'core-set' and the existing saved view 'Core Set'"):
        ops["save_coreset_view"](dataset, "score", 0.5, "core-set", selection="top", tag="second", overwrite=True)
    assert dataset.list_saved_views() == ["Core Set"] and dataset.count_sample_tags() == {"first": 20}


def test_overwrite_never_replaces_a_users_view_of_the_same_name(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    dataset.save_view("keepers", dataset.limit(3))
    with pytest.raises(ValueError, match="did not create"):
        ops["save_coreset_view"](dataset, "score", 0.5, "keepers", selection="top", overwrite=True)
    assert len(dataset.load_saved_view("keepers")) == 3


def test_delete_run_leaves_a_users_view_that_took_the_name_since(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top")
    dataset.delete_saved_view("core")
    dataset.save_view("core", dataset.limit(3))  # the user's own view, same name
    with pytest.raises(ValueError, match="did not create"):
        ops["save_coreset_view"](dataset, "score", 0.2, "core", selection="top", overwrite=True)
    dataset.delete_run("coreset_view_core")
    assert len(dataset.load_saved_view("core")) == 3


# -- 4. an order is reused only while it is exact -------------------------------------------------------


def test_an_order_is_recomputed_after_samples_are_deleted(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset, 50)
    first = ops["compute_coreset_order"](dataset, "score", selection="top")
    dataset.delete_samples(dataset.limit(10))
    summary = ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top")
    assert summary["rank_field"] != first["rank_field"] or summary["kept"] == 20
    assert summary["kept"] == 20 and len(dataset.load_saved_view("core")) == 20
    assert set(dataset.load_saved_view("core").values("id")) == _top_ids(dataset, 20)


def test_an_order_is_recomputed_after_samples_are_added(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset, 40)
    ops["compute_coreset_order"](dataset, "score", selection="top")
    dataset.add_samples([fo.Sample(filepath=f"/nonexistent/new_{i}.png", score=2.0 + i) for i in range(4)])
    summary = ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top")
    assert summary["kept"] == 22 and set(dataset.load_saved_view("core").values("id")) == _top_ids(dataset, 22)


def test_an_order_is_recomputed_after_a_score_is_edited_by_hand(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset, 40)
    ops["compute_coreset_order"](dataset, "score", selection="top")
    low = dataset.sort_by("score").first()
    low["score"] = 10.0
    low.save()
    ops["save_coreset_view"](dataset, "score", 0.9, "core", selection="top")
    assert low.id in dataset.load_saved_view("core").values("id")
    assert bridge.find_order(dataset, "score", selection="top") is not None  # up to date again


def test_an_unchanged_order_is_reused(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset, 40)
    first = ops["compute_coreset_order"](dataset, "score", selection="top")
    dataset.limit(5).tag_samples("anything")  # tags do not change the scores
    rank_field, summary = bridge.order_for(dataset, "score", selection="top")
    assert summary["reused"] and rank_field == first["rank_field"]


def test_a_saved_view_that_lost_samples_is_reported_stale(fo, bridge, ops, make_dataset):
    dataset = _scored(make_dataset, 40)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top")
    assert bridge.coreset_views(dataset) == [
        dict(view_name="core", run_key="coreset_view_core", kept=20, count=20, stale=False)]
    dataset.delete_samples(dataset.load_saved_view("core").limit(3))
    assert bridge.coreset_views(dataset)[0] | {} == dict(
        view_name="core", run_key="coreset_view_core", kept=20, count=17, stale=True)


# -- 7. nothing left behind, nothing bricks -------------------------------------------------------------


def test_a_commit_that_fails_after_the_commit_point_is_given_up_once(fo, bridge, ops, make_dataset, monkeypatch):
    import importlib

    commit = importlib.import_module(bridge.__name__ + ".commit")
    dataset = _scored(make_dataset)
    original = commit._replace_run_record
    monkeypatch.setattr(commit, "_replace_run_record", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        ops["compute_coreset_order"](dataset, "score", selection="top")
    assert not [f for f in dataset.get_field_schema() if f.endswith("_rank")]  # the new field is gone
    monkeypatch.setattr(commit, "_replace_run_record", original)
    ops["compute_coreset_order"](dataset, "score", selection="top")
    monkeypatch.setattr(commit, "_replace_run_record", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="kept")
    monkeypatch.setattr(commit, "_replace_run_record", original)
    # the tag is released and the new view removed; nothing is replayed: the next run works
    assert dataset.count_sample_tags() == {} and not dataset.has_saved_view("core")
    assert [d["state"] for d in commit.pending_commits(dataset)] == ["failed", "failed"]
    assert bridge.recover(dataset) == 0
    summary = ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="kept")
    assert summary["kept"] == 20 and dataset.count_sample_tags() == {"kept": 20}


def test_journals_and_staging_of_a_deleted_dataset_are_cleaned(fo, bridge, make_dataset):
    import importlib

    commit = importlib.import_module(bridge.__name__ + ".commit")
    db = commit._db()
    gone = _scored(make_dataset)
    gone_id = str(gone._doc.id)
    db[commit.JOURNAL].insert_one(dict(_id="deadbeef", dataset_id=gone_id, state="applying", owner=None))
    db[f"{commit.STAGING}.deadbeef.0.0"].insert_one({"v": 1})
    db[f"{commit.STAGING}.orphan.0.0"].insert_one({"v": 1})  # staging with no journal entry
    db["coreset_curation.tag_owners"].insert_one({"_id": {"d": gone_id, "t": "x", "s": 1}, "runs": [], "user": 0})
    gone.delete()
    bridge.recover(_scored(make_dataset))
    assert db[commit.JOURNAL].count_documents({"dataset_id": gone_id}) == 0
    assert not [n for n in db.list_collection_names() if n.startswith(commit.STAGING)]
    assert db["coreset_curation.tag_owners"].count_documents({"_id.d": gone_id}) == 0
