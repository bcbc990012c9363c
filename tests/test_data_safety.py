"""Data safety (issue 11): runs the FiftyOne way, atomic results, nothing of the user's touched.

Every test uses a real dataset in the tests' own MongoDB. Each defect of the
issue has a test here (embeddings ones are in test_embeddings_operator.py).
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

from conftest import PLUGIN_NAME
from harness import fast_dataset, labelled

ZCORE = f"{PLUGIN_NAME}/compute_zcore_scores"
MIMIC = f"{PLUGIN_NAME}/compute_mimic_scores"
SAVE = f"{PLUGIN_NAME}/save_coreset_view"


@pytest.fixture(scope="module")
def ops(fo):
    import fiftyone.operators as foo

    return {name: foo.get_operator(f"{PLUGIN_NAME}/{name}") for name in (
        "compute_zcore_scores", "compute_mimic_scores", "save_coreset_view", "compute_coreset_order")}


# -- 1. frames and patches views --------------------------------------------------------


@pytest.fixture
def video(fo):
    dataset = fo.Dataset(f"coreset-video-{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(0)
    for v in range(3):
        sample = fo.Sample(filepath=f"/nonexistent/video_{v}.mp4")
        for f in range(1, 9):
            sample.frames[f] = fo.Frame(
                filepath=f"/nonexistent/video_{v}_{f}.png",
                emb=rng.normal(size=8).astype(np.float32),
                ground_truth=fo.Classification(label=str((v + f) % 2)),
            )
        dataset.add_sample(sample)
    yield dataset
    dataset.delete()


def test_zcore_on_a_frames_view_stores_scores_on_the_frames(fo, ops, video):
    frames = video.to_frames()
    result = ops["compute_zcore_scores"](frames, "emb", n_samples=3000, seed=0)
    assert result["scored"] == 24
    assert video.get_field("zcore_score") is None  # nothing at the video (sample) level
    fresh = video.to_frames()
    assert fresh.count("zcore_score") == 24
    assert sorted(video.values("frames.zcore_score", unwind=True)) == sorted(fresh.values("zcore_score"))
    assert len(video.load_run_view("zcore_score")) == 24
    video.delete_run("zcore_score")
    assert video.get_frame_field_schema().get("zcore_score") is None


def test_mimic_on_a_frames_view_stores_scores_on_the_frames(fo, ops, video):
    frames = video.to_frames()
    frames.take(8, seed=0).tag_samples("trusted")
    with pytest.raises(ValueError, match="frames have no tags"):
        ops["compute_mimic_scores"](frames, "emb", "ground_truth", trusted_tag="trusted", issue_tag="label_issue")
    result = ops["compute_mimic_scores"](frames, "emb", "ground_truth", trusted_tag="trusted", seed=0)
    assert result["scored"] == 24
    fresh = video.to_frames()
    assert fresh.count("mimic_score") == 24
    assert sorted(video.values("frames.mimic_score", unwind=True)) == sorted(fresh.values("mimic_score"))


@pytest.mark.parametrize("name", ["compute_zcore_scores", "compute_mimic_scores"])
def test_a_patches_view_is_refused_up_front(fo, ops, make_dataset, name):
    dataset = make_dataset(6)
    dataset.set_values("ground_truth", [fo.Classification(label="a") for _ in range(6)])
    dataset.set_values(
        "boxes",
        [fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0.1, 0.1, 0.2, 0.2])]) for _ in range(6)],
    )
    patches = dataset.to_patches("boxes")
    with pytest.raises(ValueError, match="patches view"):
        if name == "compute_zcore_scores":
            ops[name](patches, "emb")
        else:
            ops[name](patches, "emb", "ground_truth", trusted_tag="x")
    assert not dataset.list_runs() and dataset.get_field("zcore_score") is None


def test_a_grouped_dataset_is_refused_with_advice(fo, ops):
    dataset = fo.Dataset(f"coreset-group-{uuid.uuid4().hex[:8]}")
    dataset.add_group_field("group", default="left")
    group = fo.Group()
    dataset.add_samples([fo.Sample(filepath="/x/l.png", group=group.element("left")),
                         fo.Sample(filepath="/x/r.png", group=group.element("right"))])
    try:
        with pytest.raises(ValueError, match="select_group_slices"):
            ops["compute_zcore_scores"](dataset, "emb")
    finally:
        dataset.delete()


# -- 3. tags the user owns ------------------------------------------------------------------


def test_an_issue_tag_the_user_uses_is_added_and_their_tags_stay(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    dataset.take(20, seed=2).tag_samples("train")
    mine = set(dataset.match_tags("train").values("id"))
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="train")
    flagged = set(dataset.match({"mimic_score": {"$lt": 0}}).values("id"))
    assert set(dataset.match_tags("train").values("id")) == mine | flagged
    dataset.delete_run("mimic_score")
    assert set(dataset.match_tags("train").values("id")) == mine


def test_the_trusted_tag_is_refused_as_issue_tag(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    before = dataset.count_sample_tags()
    with pytest.raises(ValueError, match="is the trusted_tag"):
        ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="trusted")
    assert dataset.count_sample_tags() == before
    assert dataset.get_field("mimic_score") is None and not dataset.list_runs()


def test_the_plugins_own_issue_tag_moves_to_the_new_flags_only(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    dataset.take(10, seed=3).tag_samples("keep_me")
    first = ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted",
                                        issue_tag="label_issue", seed=0)
    assert dataset.match_tags("label_issue").count() == first["flagged"]
    # flip some labels: the rerun flags other samples; the tag follows, others' tags stay
    flip = dataset.take(12, seed=4)
    flip.set_values("ground_truth.label", [str((int(v) + 1) % 3) for v in flip.values("ground_truth.label")])
    second = ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted",
                                         issue_tag="label_issue", seed=0)
    flagged = set(dataset.match({"mimic_score": {"$lt": 0}}).values("id"))
    assert set(dataset.match_tags("label_issue").values("id")) == flagged and len(flagged) == second["flagged"]
    assert dataset.match_tags("keep_me").count() == 10 and dataset.match_tags("trusted").count() == 15
    dataset.delete_run("mimic_score")  # cleanup removes the run's field and its tag, nothing else
    assert dataset.get_field("mimic_score") is None
    assert "label_issue" not in dataset.count_sample_tags()
    assert dataset.match_tags("keep_me").count() == 10


# -- 4. fields the user owns ----------------------------------------------------------------------


def test_a_user_field_is_refused_unless_overwrite(fo, ops, make_dataset):
    dataset = make_dataset(20)
    dataset.set_values("confidence", [0.25] * 20)
    with pytest.raises(ValueError, match="was not written by compute_zcore_scores"):
        ops["compute_zcore_scores"](dataset, "emb", score_field="confidence", n_samples=500)
    assert dataset.values("confidence") == [0.25] * 20
    ops["compute_zcore_scores"](dataset, "emb", score_field="confidence", n_samples=500, overwrite=True)
    assert dataset.values("confidence") != [0.25] * 20


def test_one_methods_field_is_refused_to_another(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=500, seed=0)
    before = dataset.values("zcore_score")
    with pytest.raises(ValueError, match="holds the output of compute_zcore_scores"):
        ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", score_field="zcore_score")
    assert dataset.values("zcore_score") == before
    assert dataset.get_run_info("zcore_score").config.method == "coreset_zcore"


# -- 5. failures after the write ----------------------------------------------------------------------


def test_a_refused_rerun_keeps_the_old_scores_and_run_record(fo, ops, make_dataset):
    dataset = make_dataset(20)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=500, seed=1)
    before = dataset.values("zcore_score")
    with pytest.raises(ValueError, match="seed"):
        ops["compute_zcore_scores"](dataset, "emb", n_samples=500, seed=2**63)
    with pytest.raises(ValueError, match="run_key"):
        ops["compute_zcore_scores"](dataset, "emb", n_samples=500, run_key="sp ace")
    assert dataset.values("zcore_score") == before
    assert dataset.get_run_info("zcore_score").config.seed == 1


def test_a_failure_inside_the_computation_writes_nothing(fo, ops, make_dataset):
    dataset = make_dataset(20)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=500, seed=1)
    before = dataset.values("zcore_score")

    def explode(fraction):
        if fraction > 0.5:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        ops["compute_zcore_scores"](dataset, "emb", n_samples=50_000, seed=2, progress=explode)
    assert dataset.values("zcore_score") == before
    assert dataset.get_run_info("zcore_score").config.seed == 1


# -- 6. kill -9 while writing ------------------------------------------------------------------------------


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from harness import plugin_package
    plugin_package()
    import fiftyone as fo
    from coreset_curation import bridge
    dataset = fo.load_dataset({name!r})
    print("start", flush=True)
    bridge.compute_zcore_scores(dataset, "emb", n_samples={iterations}, seed=int(sys.argv[1]))
    print("done", flush=True)
    """
)


def test_kill_9_while_writing_200k_scores_leaves_all_old_or_all_new(fo, bridge, tmp_path):
    from coreset_curation.core import zcore as core_zcore

    n, iterations = 200_000, 2000
    vectors = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    dataset = fast_dataset(f"coreset-kill-{uuid.uuid4().hex[:8]}", vectors)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=os.path.dirname(__file__), name=dataset.name, iterations=iterations))
    ids = dataset.values("id")

    def expected(seed):
        scores = core_zcore.zcore_run(vectors, n_samples=iterations, seed=seed).scores
        return dict(zip(ids, scores.astype(float).tolist()))

    def run(seed, kill_after=None):
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(script), str(seed)], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ))
        assert proc.stdout.readline().strip() == "start"
        if kill_after is None:
            proc.wait(timeout=600)
            assert proc.returncode == 0
            return time.monotonic() - start
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        return None

    try:
        duration = run(1)  # a complete run: the old values of every later attempt
        rng = np.random.default_rng(7)
        outcomes = []
        for attempt, seed in enumerate(range(2, 7)):
            dataset.reload()
            old = dict(zip(*dataset.values(["id", "zcore_score"])))
            old_seed = dataset.get_run_info("zcore_score").config.seed
            run(seed, kill_after=float(rng.uniform(0.2, 1.1)) * duration)
            bridge.recover(dataset)  # what the next plugin call on this dataset does first
            dataset.reload()
            now = dict(zip(*dataset.values(["id", "zcore_score"])))
            record_seed = dataset.get_run_info("zcore_score").config.seed
            if now == old:
                outcomes.append("old")
                assert record_seed == old_seed
            else:
                assert now == expected(seed), f"attempt {attempt}: the field mixes old and new values"
                assert record_seed == seed
                outcomes.append("new")
            assert not bridge.commit.pending_commits(dataset)
        print("outcomes after kill -9:", outcomes)
    finally:
        dataset.delete()


# -- 8. saved coreset views -------------------------------------------------------------------------------------


def _scored(make_dataset, n=40):
    dataset = make_dataset(n)
    dataset.set_values("score", np.random.default_rng(5).random(n).tolist())
    return dataset


def test_a_refused_save_leaves_no_tags(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="kept")
    with pytest.raises(ValueError, match="already exists"):
        ops["save_coreset_view"](dataset, "score", 0.2, "core", selection="top", tag="kept2")
    assert "kept2" not in dataset.count_sample_tags()


def test_an_overwrite_moves_the_tag_instead_of_leaving_stale_ones(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="kept")
    ops["save_coreset_view"](dataset, "score", 0.9, "core", selection="top", tag="kept", overwrite=True)
    view = dataset.load_saved_view("core")
    assert len(view) == 4
    assert set(dataset.match_tags("kept").values("id")) == set(view.values("id"))


def test_a_tag_the_user_uses_stays_on_their_samples(fo, ops, make_dataset):
    dataset = _scored(make_dataset)
    dataset.limit(3).tag_samples("favourite")
    mine = set(dataset.limit(3).values("id"))
    ops["save_coreset_view"](dataset, "score", 0.5, "core", selection="top", tag="favourite")
    kept = set(dataset.load_saved_view("core").values("id"))
    assert set(dataset.match_tags("favourite").values("id")) == mine | kept
    dataset.delete_run("coreset_view_core")
    assert set(dataset.match_tags("favourite").values("id")) == mine


def test_concurrent_saves_of_one_name_cannot_both_succeed(fo, ops, make_dataset):
    dataset = _scored(make_dataset, 200)
    ops["compute_coreset_order"](dataset, "score", selection="top")
    outcomes = []

    def save(rate):
        try:
            ops["save_coreset_view"](fo.load_dataset(dataset.name), "score", rate, "same", selection="top")
            outcomes.append("saved")
        except ValueError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=save, args=(rate,)) for rate in (0.3, 0.6, 0.9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("saved") == 1, outcomes
    dataset.reload()
    assert dataset.list_saved_views().count("same") == 1


def test_a_saved_coreset_is_frozen_when_the_scores_change(fo, ops, make_dataset):
    dataset = _scored(make_dataset, 50)
    base = dataset.match(fo.ViewField("score") > 0.2).sort_by("score", reverse=True)
    ops["save_coreset_view"](base, "score", 0.5, "frozen", selection="top")
    before = sorted(dataset.load_saved_view("frozen").values("id"))
    dataset.set_values("score", np.random.default_rng(99).random(50).tolist())
    ops["save_coreset_view"](base, "score", 0.5, "fresh", selection="top")
    assert sorted(dataset.load_saved_view("frozen").values("id")) == before
    assert sorted(dataset.load_saved_view("fresh").values("id")) != before


# -- 9. cancellation -------------------------------------------------------------------------------------------------


def test_closing_the_app_run_stops_the_worker_and_writes_nothing(fo, make_dataset):
    from fiftyone.operators.executor import ExecutionContext, Executor
    import fiftyone.operators as foo

    dataset = make_dataset(3000, dim=32)
    request = dict(dataset_name=dataset.name, view=dataset.view()._serialize(),
                   params=dict(embeddings_field=["emb"], n_samples="2000000", advanced=True))
    ctx = ExecutionContext(request_params=request, executor=Executor(), operator_uri=ZCORE)
    stream = foo.get_operator(ZCORE).execute(ctx)
    deadline = time.monotonic() + 60
    for message in stream:  # wait until the computation is under way
        params = message.body.params
        if message.body.operator_uri == "set_progress" and params.get("progress", 0) > 0.01:
            break
        assert time.monotonic() < deadline
    started = time.monotonic()
    stream.close()  # what the App's cancel does to the generator
    assert time.monotonic() - started < 10
    assert not [t for t in threading.enumerate() if t.name.startswith("coreset-") and t.is_alive()]
    assert dataset.get_field("zcore_score") is None and not dataset.list_runs()


_INTERRUPTED = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from harness import plugin_package
    plugin_package()
    import fiftyone as fo
    import fiftyone.operators as foo
    dataset = fo.load_dataset({name!r})
    operator = foo.get_operator("@coreset/curation/compute_zcore_scores")
    print("start", flush=True)
    try:
        operator(dataset, "emb", n_samples=50_000_000, progress=lambda f: print("p", f, flush=True))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


def test_ctrl_c_in_the_sdk_stops_within_seconds_and_writes_nothing(fo, make_dataset, tmp_path):
    dataset = make_dataset(3000, dim=32)
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED.format(tests=os.path.dirname(__file__), name=dataset.name))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout.readline().strip() == "start"
    for line in proc.stdout:  # the computation is running
        if line.startswith("p ") and float(line.split()[1]) > 0.11:
            break
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "interrupted" in out and time.monotonic() - sent < 10
    dataset.reload()
    assert dataset.get_field("zcore_score") is None and not dataset.list_runs()


# -- 10. clear errors ---------------------------------------------------------------------------------------


def test_an_empty_npy_head_gets_a_clear_error(fo, ops, make_dataset, tmp_path):
    dataset = labelled(make_dataset)
    path = tmp_path / "empty.npy"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty or not a .npy array file"):
        ops["compute_mimic_scores"](dataset, "emb", "ground_truth", reference="checkpoint", checkpoint_path=str(path))


def test_numpy_scalars_and_numeric_strings_are_accepted(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=np.int64(400), redundancy_exp=np.float32(4),
                                seed="7", random_init="false")
    assert dataset.get_run_info("zcore_score").config.random_init is False
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", epochs=np.int32(3),
                                lr="0.3", seed=np.uint64(5))
    assert dataset.get_run_info("mimic_score").config.epochs == 3


def test_standardize_false_as_a_string_means_false(fo, ops, make_dataset):
    dataset = make_dataset(30)
    dataset.set_values("emb2", list(np.random.default_rng(2).normal(size=(30, 3)).astype(np.float32)))
    ops["compute_zcore_scores"](dataset, ["emb", "emb2"], standardize="false", n_samples=300)
    assert dataset.get_run_info("zcore_score").config.standardized is False


def test_prune_rate_029_keeps_71_of_100(fo, ops, make_dataset):
    dataset = _scored(make_dataset, 100)
    result = ops["save_coreset_view"](dataset, "score", 0.29, "c29", selection="top")
    assert result["kept"] == 71 and len(dataset.load_saved_view("c29")) == 71


# -- runs the FiftyOne way ------------------------------------------------------------------------------------


def test_every_method_is_a_run_that_fiftyone_lists_renames_and_deletes(fo, ops, make_dataset):
    dataset = labelled(make_dataset)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=500, seed=0)
    ops["compute_mimic_scores"](dataset, "emb", "ground_truth", trusted_tag="trusted", issue_tag="label_issue")
    order = ops["compute_coreset_order"](dataset, "zcore_score", selection="top")
    ops["save_coreset_view"](dataset, "zcore_score", 0.5, "half", selection="top")
    keys = dataset.list_runs()
    assert {"zcore_score", "mimic_score", order["rank_field"], "coreset_view_half"} == set(keys)
    for key in keys:
        info = dataset.get_run_info(key)
        assert info.config.plugin == PLUGIN_NAME and info.config.method.startswith("coreset_")
        assert dataset.load_run_results(key).summary
        assert len(dataset.load_run_view(key)) == 60
    dataset.rename_run("zcore_score", "zcore_v1")
    assert dataset.get_run_info("zcore_v1").config.score_field == "zcore_score"
    assert "zcore_v1" in dataset.list_runs() and dataset.get_field("zcore_score") is not None
    dataset.delete_run(order["rank_field"])  # refused by its cleanup: a saved view is frozen on it
    assert dataset.get_field(order["rank_field"]) is not None and len(dataset.load_saved_view("half")) == 30
    ops["save_coreset_view"](dataset, "zcore_score", 0.8, "fifth", selection="top")
    dataset.delete_run("coreset_view_half")
    assert not dataset.has_saved_view("half") and len(dataset.load_saved_view("fifth")) == 12
    dataset.delete_run("zcore_v1")
    assert dataset.get_field("zcore_score") is None
    assert dataset.get_field("mimic_score") is not None


def test_a_fresh_process_resolves_the_run_records_and_cleans_up(fo, ops, make_dataset):
    """With the plugin installed as the package coreset_curation (scripts/setup.sh does it)."""
    dataset = make_dataset(20)
    ops["compute_zcore_scores"](dataset, "emb", n_samples=500)
    code = (
        "import fiftyone as fo;"
        f"d = fo.load_dataset({dataset.name!r});"
        "print(type(d.get_run_info('zcore_score').config).__name__);"
        "d.delete_run('zcore_score');"
        "print(d.get_field('zcore_score') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         check=True)
    assert out.stdout.split() == ["ZCoreRunConfig", "True"], out.stderr[-2000:]
