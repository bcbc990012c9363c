"""Every operator run from its form in the real App, driven by headless Chromium.

One App server for the module, started with ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``
(so that Schedule is offered, as the README's "Run in the background" sets it up),
on 300 scikit-learn digits written as PNGs with PCA embeddings. Each test opens an
operator from the operator browser, fills its form, runs it, and checks what the
App shows (progress, the result view, the new field in the sidebar without a
reload, errors in one sentence) and what the database holds.

Needs the Debian ``chromium`` package; skipped without it.
"""

import re
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from app import PANEL, Browser, Clock, needs_chromium, served
from conftest import PLUGIN_NAME
from harness import TINY_CLIP, tiny_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

N = 300
TRUSTED = 60
ORCHESTRATORS = dict(FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS="true")
TINY = "coreset-test-tiny-browser"


# -- data -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """300 digit PNGs, their labels and 16-d PCA embeddings."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    data = load_digits()
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(data.images[:N]):
        path = folder / f"digit_{i:04d}.png"
        Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize((64, 64), Image.NEAREST).save(path)
        paths.append(str(path))
    vectors = PCA(n_components=16, random_state=0).fit_transform(data.data[:N] / 16.0).astype(np.float32)
    return paths, [str(t) for t in data.target[:N]], vectors


@pytest.fixture
def make_digits(fo, digit_files):
    """Builds persistent digit datasets (the App server is another process); deletes them after."""
    made = []

    def build(*, vectors=True, labels=True, trusted=0):
        paths, targets, pca = digit_files
        dataset = fo.Dataset(f"coreset-app-{uuid.uuid4().hex[:8]}", persistent=True)
        samples = []
        for i, path in enumerate(paths):
            sample = fo.Sample(filepath=path, tags=["trusted"] if i < trusted else [])
            if labels:
                sample["ground_truth"] = fo.Classification(label=targets[i])
            samples.append(sample)
        dataset.add_samples(samples, progress=False)
        if vectors:
            dataset.set_values("pca_embeddings", list(pca))
        made.append(dataset)
        return dataset

    yield build
    for dataset in made:
        if not dataset.deleted:
            dataset.delete()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random-init open_clip model of a tiny architecture, registered in the App's server too.

    The architecture is registered in this process with ``add_model_config``; the App's
    server process registers it through a one-file test plugin in the plugins dir.
    """
    import os
    import pathlib

    config, (checkpoint,) = tiny_clip(tmp_path_factory.mktemp("tiny_clip"), TINY)
    plugin = pathlib.Path(os.environ["FIFTYONE_PLUGINS_DIR"]) / "coreset-test-helpers"
    plugin.mkdir(exist_ok=True)
    (plugin / "fiftyone.yml").write_text(
        'name: "@coreset-test/helpers"\ntype: plugin\noperators:\n  - fail_during_run\n'
    )
    (plugin / "__init__.py").write_text(TEST_PLUGIN.format(config=config))
    return checkpoint


#: The App server's test helpers: the tiny architecture, and an operator whose run fails
#: with an unexpected error, through the plugin's own progress machinery.
TEST_PLUGIN = """
import open_clip

import fiftyone.operators as foo
import fiftyone.operators.types as types

open_clip.add_model_config({config!r})


class FailDuringRun(foo.Operator):
    @property
    def config(self):
        from coreset_curation.operators.progress import long_running_config

        config = long_running_config("fail_during_run", "Test: fail during a run", "Fails at 30%")
        config.default_choice_to_delegated = False
        return config

    def resolve_input(self, ctx):
        return types.Property(types.Object(), view=types.View(label="Test: fail during a run"))

    def execute(self, ctx):
        from coreset_curation.operators import progress

        def work(report):
            report(0.3)
            raise RuntimeError("the disk went away")

        return progress.run(ctx, work, label="Test run", outputs=lambda ctx, s: progress.summary_view("Done", (), s))


def register(plugin):
    plugin.register(FailDuringRun)
"""


# -- the App ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(fo, tiny_model):
    """The App's server (Schedule available) and one browser page, for the whole module."""
    from playwright.sync_api import sync_playwright

    home = fo.Dataset(f"coreset-app-home-{uuid.uuid4().hex[:6]}", persistent=True)
    try:
        with served(fo, home, **ORCHESTRATORS) as url, sync_playwright() as playwright:
            browser = Browser(playwright, url, Clock(600, "the operator browser tests"))
            try:
                yield browser
            finally:
                browser.close()
    finally:
        home.delete()


@pytest.fixture
def ui(app, tmp_path):
    """The module's browser with a budget of its own for one test; a screenshot if it fails."""
    app.clock = Clock(170)
    yield app
    if app.errors:
        print("page errors:", app.errors[-5:])


# -- ZCore -------------------------------------------------------------------------------


def test_zcore_from_its_form_shows_progress_then_the_summary_and_the_new_field(fo, ui, make_digits, tmp_path):
    dataset = make_digits()
    try:
        ui.open_dataset(dataset)
        assert not ui.sidebar_field("zcore_score").count()
        dialog = ui.open_operator("Compute ZCore scores", "zcore")
        assert ui.execute_button(dialog).inner_text().strip() == "Schedule"  # orchestrator set up: the default
        chosen = dialog.locator(".MuiChip-label").all_inner_texts()
        assert chosen == ["pca_embeddings"], chosen
        # the default run goes until reliable, within a time budget the form shows and lets you change
        assert ui.field(dialog, "Run length").input_value().startswith("auto"), "the default run length is auto"
        budget = ui.field(dialog, "Time budget (seconds)")
        assert float(budget.input_value()) == 300
        assert float(ui.field(dialog, "Target reliability").input_value()) == 0.97
        budget.fill("120")
        ui.field(dialog, "Seed").fill("0")
        ui.settle()
        ui.submit(dialog, "Execute")

        seen, text = ui.watch_progress(dialog, r"ZCore: (?:starting|\d+%)", r"Samples scored",
                                       shot="04-operator-progress.png")
        streamed = ui.streamed_progress()
        print("progress seen:", seen, "streamed:", streamed)
        # the run takes under a second here, at times too short to read the bar off the screen:
        # what the App was sent to show counts too (a percentage between 0 and 100)
        assert any(re.fullmatch(r"ZCore: [1-9]\d?%", str(label)) for label in seen + streamed), (seen, streamed)
        assert re.search(r"Samples scored:\s*300", text), text
        assert re.search(r"Skipped \(no embedding\):\s*0", text), text
        reached = float(re.search(r"Split-half reliability:\s*(0\.\d+)", text).group(1))
        print("reliability reached:", reached)
        assert reached >= 0.97, text
        assert re.search(r"Target reliability:\s*0\.97", text), text
        assert re.search(r"Time budget \(seconds\):\s*120", text), text
        assert re.search(r"Stopped by:\s*target_reliability", text), text
        assert "the rank correlation of two independent halves" in text
        assert "No value provided" not in text and "Traceback" not in text
        ui.shot("05-operator-result.png", dialog)
        # the App reloaded the dataset: the new field is in the sidebar, no page reload
        ui.sidebar_field("zcore_score").wait_for(timeout=ui.clock.ms(30))
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise

    dataset.reload()  # the App's server wrote the field
    scores = np.array(dataset.values("zcore_score"), dtype=float)
    assert len(scores) == N and np.isfinite(scores).all()
    # the same seed from the SDK gives the same scores (one set of defaults for the form and the SDK)
    import fiftyone.operators as foo

    again = make_digits()
    foo.get_operator(f"{PLUGIN_NAME}/compute_zcore_scores")(again, "pca_embeddings", seed=0, time_budget=120)
    np.testing.assert_allclose(np.array(again.values("zcore_score"), dtype=float), scores, rtol=1e-6)


def test_zcore_form_without_a_vector_field_says_what_to_do_and_cannot_run(ui, make_digits, tmp_path):
    dataset = make_digits(vectors=False)
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute ZCore scores", "zcore")
        dialog.get_by_text("No vector field", exact=True).wait_for(timeout=ui.clock.ms(30))
        assert "run 'Compute embeddings' first" in ui.text(dialog)
        ui.settle(2500)  # the App validates the form
        assert ui.execute_button(dialog).is_disabled()
        ui.shot("06-form-error.png", dialog)
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise


def test_a_bad_value_found_during_a_run_is_one_plain_sentence_and_nothing_is_written(ui, make_digits, tmp_path):
    dataset = make_digits()
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute ZCore scores", "zcore")
        ui.field(dialog, "Run length").fill("many", timeout=ui.clock.ms(30))
        ui.settle()
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"ZCore: \w+", r"did not run")
        assert "ZCore did not run" in text, text
        assert "n_samples must be an integer in [1, 1e+10] or 'auto', got 'many'" in text, text
        assert "Traceback" not in text and len(text.splitlines()) <= 6, text
        ui.shot("07-run-error.png", dialog)
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
    dataset.reload()
    assert not dataset.has_field("zcore_score")


# -- mimic -------------------------------------------------------------------------------


def test_mimic_from_the_form_tags_what_the_user_asked_and_shows_the_flagged_count(ui, make_digits, tmp_path):
    dataset = make_digits(trusted=TRUSTED)
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute mimic scores", "mimic")
        # the SDK's defaults: no trusted tag is guessed and no issue tag is written unless asked for
        dialog.get_by_text(re.compile("pick the tag of samples whose labels you checked")).wait_for(
            timeout=ui.clock.ms(30))
        ui.settle()
        assert ui.execute_button(dialog).is_disabled()
        dialog.locator("xpath=.//p[normalize-space()='Trusted tag']/following::*[@role='combobox'][1]").click(
            timeout=ui.clock.ms(30))
        ui.page.get_by_role("option", name="trusted", exact=True).click(timeout=ui.clock.ms(30))
        ui.field(dialog, "Tag likely label errors (score < 0)").fill("label_issue")
        ui.settle(2500)
        ui.submit(dialog, "Execute")
        seen, text = ui.watch_progress(dialog, r"Mimic: (?:starting|\d+%)", r"Samples scored")
        streamed = ui.streamed_progress()
        print("progress seen:", seen, "streamed:", streamed)
        # 300 samples take well under a second, too short to read the bar off the screen:
        # what the App was sent to show is checked instead
        assert any(re.fullmatch(r"Mimic: \d+%", str(label)) for label in streamed), streamed
        assert re.search(r"Samples scored:\s*300", text), text
        flagged = int(re.search(r"Likely label errors \(score < 0\):\s*(\d+)", text).group(1))
        assert "No value provided" not in text and "Traceback" not in text
        ui.sidebar_field("mimic_score").wait_for(timeout=ui.clock.ms(30))
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
    dataset.reload()
    scores = np.array(dataset.values("mimic_score"), dtype=float)
    assert np.isfinite(scores).all() and int((scores < 0).sum()) == flagged
    assert len(dataset.match_tags("label_issue")) == flagged


def test_mimic_without_any_tag_says_which_to_pick_and_cannot_run(ui, make_digits, tmp_path):
    dataset = make_digits()
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute mimic scores", "mimic")
        dialog.get_by_text(re.compile("pick the tag of samples whose labels you checked")).wait_for(
            timeout=ui.clock.ms(30)
        )
        assert "no sample has a tag yet" in ui.text(dialog)
        ui.settle(2500)
        assert ui.execute_button(dialog).is_disabled()
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise


def test_a_meaningless_mimic_reference_is_warned_about_in_the_result_and_next_to_the_panels_slider(
    ui, make_digits, tmp_path
):
    dataset = make_digits()
    head = tmp_path / "one_direction_head.npy"  # every class the same direction: one class always wins
    np.save(head, np.tile(np.random.default_rng(5).normal(size=(1, 16)), (10, 1)).astype(np.float32))
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute mimic scores", "mimic")
        dialog.locator("xpath=.//p[normalize-space()='Reference']/following::*[@role='combobox'][1]").click(
            timeout=ui.clock.ms(30))
        ui.page.get_by_role("option", name="checkpoint", exact=True).click(timeout=ui.clock.ms(30))
        ui.field(dialog, "Head file").fill(str(head))
        ui.settle(2500)
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Mimic: (?:starting|\d+%)", r"Samples scored")
        assert "Warning" in text and "near chance" in text, text
        ui.close_dialog()
        panel = ui.open_panel()  # the panel sweeps the mimic scores: the warning sits next to the slider
        panel.get_by_text("Check these scores", exact=True).wait_for(timeout=ui.clock.ms(60))
        assert "near chance" in ui.text(panel)
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise


# -- coreset order, saved view ------------------------------------------------------------


def test_coreset_order_then_save_view_default_to_the_zcore_score_and_save_what_the_sdk_saves(
    fo, ui, make_digits, tmp_path
):
    import fiftyone.operators as foo

    dataset = make_digits(trusted=TRUSTED)
    zcore = foo.get_operator(f"{PLUGIN_NAME}/compute_zcore_scores")
    zcore(dataset, "pca_embeddings", seed=0, n_samples=20000)
    foo.get_operator(f"{PLUGIN_NAME}/compute_mimic_scores")(
        dataset, "pca_embeddings", "ground_truth", trusted_tag="trusted", issue_tag=None
    )  # newer than the ZCore scores, and still not the default
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute coreset order", "coreset order")
        score_box = dialog.locator("xpath=.//p[normalize-space()='Score field']/following::*[@role='combobox'][1]")
        assert score_box.inner_text().strip() == "zcore_score"
        ui.settle()
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Coreset order: (?:starting|\d+%)", r"Samples ranked")
        assert re.search(r"Samples ranked:\s*300", text), text
        rank_field = re.search(r"Rank field:\s*(\w+)", text).group(1)
        ui.sidebar_field(rank_field).wait_for(timeout=ui.clock.ms(30))
        ui.close_dialog()

        dialog = ui.open_operator("Save coreset view", "save coreset")
        score_box = dialog.locator("xpath=.//p[normalize-space()='Score field']/following::*[@role='combobox'][1]")
        assert score_box.inner_text().strip() == "zcore_score"
        rate = ui.field(dialog, "Pruning rate (%)")
        assert rate.input_value() == "50"  # a percent you can type over, not "50.000000"
        rate.fill("70")
        ui.field(dialog, "Saved view name").fill("coreset-70")
        ui.settle(2500)
        assert "Required property" not in ui.text(dialog)
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Coreset view: (?:starting|\d+%)", r"Kept:")
        assert re.search(r"Kept:\s*90\b", text) and re.search(r"Pruned:\s*210\b", text), text
        assert re.search(r"Saved view:\s*coreset-70", text), text
        ui.shot("08-saved-view-result.png", dialog)
        ui.close_dialog()

        # a taken name is refused in the form, before anything runs
        dialog = ui.open_operator("Save coreset view", "save coreset")
        ui.field(dialog, "Saved view name").fill("coreset-70")
        dialog.get_by_text(re.compile("a saved coreset view named 'coreset-70' already exists")).wait_for(
            timeout=ui.clock.ms(30))
        ui.settle()
        assert ui.execute_button(dialog).is_disabled()
        # so is a name that FiftyOne would store under the same URL name (it would replace that view)
        ui.field(dialog, "Saved view name").fill("Coreset 70")
        dialog.get_by_text(re.compile("'Coreset 70' and the existing saved view 'coreset-70'")).wait_for(
            timeout=ui.clock.ms(30))
        ui.settle()
        assert ui.execute_button(dialog).is_disabled()
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise

    dataset.reload()
    assert dataset.has_saved_view("coreset-70")
    app_ids = set(dataset.load_saved_view("coreset-70").values("id"))
    foo.get_operator(f"{PLUGIN_NAME}/save_coreset_view")(dataset, "zcore_score", 0.7, "from-sdk")
    assert app_ids == set(dataset.load_saved_view("from-sdk").values("id")) and len(app_ids) == 90


def test_delete_coreset_runs_from_the_app_asks_for_the_view_frozen_on_an_order_then_removes_what_was_ticked(
    fo, ui, make_digits, tmp_path
):
    import fiftyone.operators as foo

    def sdk(name):
        return foo.get_operator(f"{PLUGIN_NAME}/{name}")

    dataset = make_digits()
    sdk("compute_zcore_scores")(dataset, "pca_embeddings", seed=0, n_samples=20000)
    rank_field = sdk("compute_coreset_order")(dataset, "zcore_score")["rank_field"]
    sdk("save_coreset_view")(dataset, "zcore_score", 0.7, "coreset-70")
    try:
        ui.open_dataset(dataset)
        ui.sidebar_field(rank_field).wait_for(timeout=ui.clock.ms(30))
        dialog = ui.open_operator("Delete coreset runs", "delete coreset")
        dialog.get_by_text(re.compile("Tick the runs to delete")).wait_for(timeout=ui.clock.ms(30))
        text = ui.text(dialog)
        assert f"field '{rank_field}' · 300 samples" in text and "saved view 'coreset-70' · 90 samples" in text, text
        # the order alone: refused in the form's words, since the saved view is frozen on it
        dialog.get_by_text(re.compile(rf"^{rank_field} \(")).click(timeout=ui.clock.ms(10))
        dialog.get_by_text(re.compile("tick those too")).first.wait_for(timeout=ui.clock.ms(30))
        ui.settle()
        assert ui.execute_button(dialog).is_disabled()
        dialog.get_by_text(re.compile(r"saved view 'coreset-70'")).first.click(timeout=ui.clock.ms(10))
        dialog.get_by_text(re.compile("tick those too")).first.wait_for(state="detached", timeout=ui.clock.ms(30))
        ui.settle(2500)
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Runs deleted", r"Saved views removed:?\s*coreset-70")
        assert re.search(r"Runs deleted:?\s*2\b", text) and re.search(rf"Fields removed:?\s*{rank_field}", text), text
        ui.sidebar_field(rank_field).wait_for(state="detached", timeout=ui.clock.ms(30))  # the App reloaded
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
    dataset.reload()
    assert not dataset.has_field(rank_field) and not dataset.has_saved_view("coreset-70")
    assert dataset.has_field("zcore_score") and dataset.list_runs() == ["zcore_score"]


# -- embeddings ----------------------------------------------------------------------------


def test_compute_embeddings_with_a_local_checkpoint(ui, make_digits, tiny_model, tmp_path):
    dataset = make_digits(vectors=False, labels=False)
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute embeddings", "embeddings")
        # offline, the default tag's weights cannot be fetched: the form says so and cannot run
        dialog.get_by_text(re.compile(r"must be downloaded and huggingface\.co cannot be reached")).wait_for(
            timeout=ui.clock.ms(60))
        assert ui.execute_button(dialog).is_disabled()
        ui.shot("10-embeddings-offline.png", dialog)
        dialog.locator("xpath=.//p[normalize-space()='open_clip architecture']/following::*[@role='combobox'][1]").click(
            timeout=ui.clock.ms(30))
        ui.page.get_by_role("option", name=TINY, exact=True).click(timeout=ui.clock.ms(30))
        ui.settle()
        weights = ui.field(dialog, "Pretrained weights")
        weights.fill(tiny_model)
        weights.press("Enter")
        ui.field(dialog, "Image-loading workers").fill("0")
        ui.settle(2500)
        assert "cannot be reached" not in ui.text(dialog)
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Embeddings: (?:starting|\d+%)", r"Vectors written|did not run")
        assert re.search(r"Vectors written:\s*300", text), text
        assert re.search(r"Dimensions:\s*16", text), text
        ui.close_dialog()
        # the App reloaded the dataset: the vector field is in the sidebar (group 'other',
        # perhaps collapsed), no page reload
        field = ui.sidebar_field("clip_embeddings")
        field.wait_for(state="attached", timeout=ui.clock.ms(30))
        if not field.is_visible():
            ui.page.locator('[data-cy="sidebar-group-entry-OTHER"]').click(timeout=ui.clock.ms(10))
        ui.sidebar_field("clip_embeddings").wait_for(timeout=ui.clock.ms(30))
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
    dataset.reload()
    vectors = dataset.values("clip_embeddings")
    assert all(v is not None and len(v) == TINY_CLIP["embed_dim"] for v in vectors)


# -- scheduling ----------------------------------------------------------------------------


def test_a_scheduled_run_is_the_default_and_lands_when_fiftyone_delegated_launch_runs(fo, ui, make_digits, tmp_path):
    import os
    import pathlib

    from fiftyone.operators.delegated import DelegatedOperationService

    dataset = make_digits()
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Compute ZCore scores", "zcore")
        assert ui.execute_button(dialog).inner_text().strip() == "Schedule"
        ui.field(dialog, "Seed").fill("0")
        ui.settle()
        ui.submit(dialog, "Schedule")
        ui.page.get_by_text(re.compile("scheduled", re.I)).first.wait_for(timeout=ui.clock.ms(60))
        ui.shot("09-scheduled.png")
        ui.close_dialog()
        # the panel lists the run while it waits and runs, and sweeps its scores when it lands
        ui.page.locator('[data-cy="new-panel-btn"]').first.click(timeout=ui.clock.ms(30))
        ui.page.get_by_text("Coreset Explorer", exact=True).first.click(timeout=ui.clock.ms(30))
        panel = ui.page.locator(PANEL)
        panel.get_by_text(re.compile("compute_zcore_scores in the background: queued")).wait_for(
            timeout=ui.clock.ms(60))
        ui.watch_for(panel, "in the background: running")
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise

    service = DelegatedOperationService()
    ops = [o for o in service.list_operations(dataset_name=dataset.name)]
    assert len(ops) == 1 and ops[0].operator.endswith("/compute_zcore_scores"), ops
    # the README's step: a `fiftyone delegated launch` process runs what the App queued
    cli = pathlib.Path(sys.executable).with_name("fiftyone")
    worker = subprocess.Popen([str(cli), "delegated", "launch"], env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            op = service.get(ops[0].id)
            if op.run_state in ("completed", "failed"):
                break
            time.sleep(1)
        assert op.run_state == "completed", (op.run_state, op.result and op.result.error)
        panel.get_by_text(re.compile(r"'compute_zcore_scores' finished in the background \(.*scored 300")).wait_for(
            timeout=ui.clock.ms(30))
        panel.get_by_text(re.compile(r"^Kept 150$")).first.wait_for(timeout=ui.clock.ms(30))  # no reload by the user
        ui.sidebar_field("zcore_score").wait_for(timeout=ui.clock.ms(30))
        ran_s = (op.completed_at - op.started_at).total_seconds()
        print(f"the run took {ran_s:.1f} s; the panel showed it running: {ui.was_seen('in the background: running')}")
        assert ui.was_seen("in the background: running") or ran_s < 5, "a run of seconds never showed as running"
    except BaseException:
        ui.failure_shot(tmp_path)
        raise
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    print(output[-2000:])
    result = op.result.result
    assert result["scored"] == N, result
    dataset.reload()
    assert len(dataset.exists("zcore_score")) == N


# -- an unexpected error --------------------------------------------------------------------


def test_an_unexpected_error_during_a_run_is_one_sentence_with_the_traceback_folded_away(ui, make_digits, tmp_path):
    dataset = make_digits(vectors=False, labels=False)
    try:
        ui.open_dataset(dataset)
        dialog = ui.open_operator("Test: fail during a run", "fail during")
        ui.settle()
        ui.submit(dialog, "Execute")
        _, text = ui.watch_progress(dialog, r"Test run: \w+", r"Test run failed")
        assert "Test run failed: RuntimeError: the disk went away" in text, text
        assert "The traceback is in the log of the App's server" in text, text
        assert "Traceback (most recent call last)" not in text and "No value provided" not in text, text
        assert len(text.splitlines()) <= 6, text
        ui.close_dialog()
    except BaseException:  # pytest.fail too
        ui.failure_shot(tmp_path)
        raise
