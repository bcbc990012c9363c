"""Unit tests of core.mimic (Grad-Mimic scores and reference heads)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from coreset_curation.core import mimic
from coreset_curation.core.mimic import LinearHead


def _autograd_alignment(x, y, w_cur, b_cur, w_ref, b_ref, method):
    """Per-sample alignment from torch autograd gradients: the oracle."""
    out = []
    task = torch.cat([torch.tensor(w_ref - w_cur, dtype=torch.float64).flatten(),
                      torch.tensor(b_ref - b_cur, dtype=torch.float64)])
    for i in range(len(x)):
        w = torch.tensor(w_cur, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(b_cur, dtype=torch.float64, requires_grad=True)
        logits = torch.tensor(x[i], dtype=torch.float64) @ w.T + b
        loss = torch.nn.functional.cross_entropy(logits[None], torch.tensor([int(y[i])]))
        gw, gb = torch.autograd.grad(loss, (w, b))
        neg = -torch.cat([gw.flatten(), gb])
        dot = float(neg @ task)
        if method == "cos":
            out.append(dot / float(neg.norm() * task.norm()))
        else:
            out.append(dot / float(task.norm()))
    return np.array(out)


def _blobs(n_per_class=100, num_classes=3, dim=8, flip=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, (num_classes, dim))
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centers[y] + rng.normal(0, 1, (len(y), dim))
    noisy = y.copy()
    idx = rng.choice(len(y), int(flip * len(y)), replace=False)
    noisy[idx] = (y[idx] + rng.integers(1, num_classes, len(idx))) % num_classes
    return x.astype(np.float32), y, noisy


def _trusted_head(x, y, per_class=5, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False) for c in np.unique(y)])
    return mimic.train_linear_head(x[idx], y[idx], len(np.unique(y)))


# --- closed form vs autograd -------------------------------------------------


@pytest.mark.parametrize("method", ["cos", "proj"])
def test_closed_form_alignment_matches_autograd(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 4))
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    w_cur, b_cur = rng.normal(size=(3, 4)), rng.normal(size=3)
    w_ref, b_ref = rng.normal(size=(3, 4)), rng.normal(size=3)
    got = mimic.gradient_alignment(x, y, (w_cur, b_cur), (w_ref, b_ref), method=method)
    want = _autograd_alignment(x, y, w_cur, b_cur, w_ref, b_ref, method)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.ptp(want) > 0.1  # the case is not degenerate


def test_first_step_of_mimic_scores_matches_autograd():
    # Unit-norm rows: the RMS rescaling is the identity, so one full-batch step
    # from the zero head must reproduce the autograd alignment exactly.
    rng = np.random.default_rng(2)
    x = rng.normal(size=(9, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(0, 3, 9)
    w_ref, b_ref = rng.normal(size=(3, 5)), rng.normal(size=3)
    got = mimic.mimic_scores(x, y, (w_ref, b_ref), epochs=1, batch_size=9, seed=0)
    want = _autograd_alignment(x, y, np.zeros((3, 5)), np.zeros(3), w_ref, b_ref, "cos")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reweight", [False, True])
def test_two_full_batch_steps_match_autograd_sgd(reweight):
    # Score = mean of the alignments at step 1 (zero head) and step 2 (after one
    # SGD step on the mean, or alignment-softmax weighted, cross-entropy).
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.integers(0, 3, 8)
    w_ref, b_ref = rng.normal(0, 2, size=(3, 3)), rng.normal(size=3)
    lr, temp = 0.5, 0.2
    first = _autograd_alignment(x, y, np.zeros((3, 3)), np.zeros(3), w_ref, b_ref, "cos")
    weights = np.exp(first / temp) / np.exp(first / temp).sum() if reweight else np.full(8, 1 / 8)
    w = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    losses = torch.nn.functional.cross_entropy(torch.tensor(x) @ w.T + b, torch.tensor(y), reduction="none")
    gw, gb = torch.autograd.grad((losses * torch.tensor(weights)).sum(), (w, b))
    second = _autograd_alignment(x, y, -lr * gw.numpy(), -lr * gb.numpy(), w_ref, b_ref, "cos")
    got = mimic.mimic_scores(
        x, y, (w_ref, b_ref), epochs=2, batch_size=8, lr=lr, reweight=reweight, temperature=temp, seed=0
    )
    np.testing.assert_allclose(got, (first + second) / 2, rtol=1e-4, atol=1e-5)
    assert not np.allclose(first, second, atol=1e-3)


def test_bias_is_part_of_the_task_vector():
    # The reference differs from the zero head only in its bias: class 0 favoured.
    x = np.random.default_rng(3).normal(size=(6, 4))
    y = np.array([0, 0, 1, 1, 2, 2])
    ref = (np.zeros((3, 4)), np.array([5.0, 0.0, 0.0]))
    got = mimic.gradient_alignment(x, y, (np.zeros((3, 4)), np.zeros(3)), ref)
    assert (got[:2] > 0.1).all() and (got[2:] < -0.1).all()
    # Same via training: a bias-only reference still separates the labels.
    scores = mimic.mimic_scores(x, y, ref, epochs=1, batch_size=6, seed=0)
    assert scores[:2].min() > scores[2:].max()


# --- behaviour on a toy set ----------------------------------------------------


def test_flipped_labels_score_lower_than_clean():
    x, clean, noisy = _blobs()
    flipped = noisy != clean
    head = _trusted_head(x, clean)
    scores = mimic.mimic_scores(x, noisy, head, seed=0)
    assert roc_auc_score(flipped, -scores) > 0.9
    flags = mimic.flag_label_issues(scores, noisy)
    assert flags[flipped].mean() > 0.8  # recall
    assert flipped[flags].mean() > 0.8  # precision


def test_reweight_also_detects_flips_and_differs():
    x, clean, noisy = _blobs(seed=4)
    head = _trusted_head(x, clean, seed=4)
    plain = mimic.mimic_scores(x, noisy, head, seed=0)
    weighted = mimic.mimic_scores(x, noisy, head, seed=0, reweight=True, temperature=0.1)
    assert not np.allclose(plain, weighted)
    assert roc_auc_score(noisy != clean, -weighted) > 0.9


def test_seed_determinism():
    x, clean, noisy = _blobs(seed=5)
    head = _trusted_head(x, clean, seed=5)
    a = mimic.mimic_scores(x, noisy, head, seed=7, epochs=3)
    b = mimic.mimic_scores(x, noisy, head, seed=7, epochs=3)
    c = mimic.mimic_scores(x, noisy, head, seed=8, epochs=3)
    assert a.dtype == np.float32 and a.shape == (len(x),)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cos_scores_lie_in_unit_interval_and_proj_can_exceed():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 10, size=(50, 6))
    y = rng.integers(0, 4, 50)
    ref = (rng.normal(0, 5, (4, 6)), rng.normal(0, 5, 4))
    for kwargs in ({}, {"reweight": True}, {"lr": 5.0, "batch_size": 7}):
        s = mimic.mimic_scores(x, y, ref, seed=0, epochs=5, **kwargs)
        assert np.isfinite(s).all() and (s >= -1).all() and (s <= 1).all()
        assert np.abs(s).max() > 0.05
    proj = mimic.mimic_scores(x, y, ref, seed=0, epochs=5, method="proj")
    assert not np.allclose(proj, mimic.mimic_scores(x, y, ref, seed=0, epochs=5))
    # proj is not a cosine: it scales with the gradient norm.
    zero = (np.zeros((4, 6)), np.zeros(4))
    assert np.abs(mimic.gradient_alignment(x, y, zero, ref, method="proj")).max() > 1
    assert np.abs(mimic.gradient_alignment(x, y, zero, ref, method="cos")).max() <= 1


def test_progress_reports_fractions_up_to_one():
    x, clean, noisy = _blobs(n_per_class=20)
    seen = []
    mimic.mimic_scores(x, noisy, _trusted_head(x, clean), epochs=4, seed=0, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 5
    assert all(0 <= f <= 1 for f in seen) and seen == sorted(seen)


# --- validation ----------------------------------------------------------------


def test_mimic_scores_validation():
    x = np.random.default_rng(0).normal(size=(10, 3))
    y = np.arange(10) % 2
    ref = (np.ones((2, 3)), np.zeros(2))
    bad_x = x.copy()
    bad_x[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf.*rows \\[4\\]"):
        mimic.mimic_scores(bad_x, y, ref)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        mimic.mimic_scores(x, np.arange(10) % 3, ref)
    with pytest.raises(ValueError, match="labels has 9 entries but embeddings has 10"):
        mimic.mimic_scores(x, y[:9], ref)
    with pytest.raises(ValueError, match="integer class indices"):
        mimic.mimic_scores(x, y + 0.5, ref)
    with pytest.raises(ValueError, match="at least 2 classes"):
        mimic.mimic_scores(x, np.zeros(10, int), (np.ones((1, 3)), np.zeros(1)))
    with pytest.raises(ValueError, match="expects 4-D embeddings but embeddings are 3-D"):
        mimic.mimic_scores(x, y, (np.ones((2, 4)), np.zeros(2)))
    with pytest.raises(ValueError, match="method must be one of"):
        mimic.mimic_scores(x, y, ref, method="dot")
    with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, 10000\]"):
        mimic.mimic_scores(x, y, ref, epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive"):
        mimic.mimic_scores(x, y, ref, lr=-1)
    with pytest.raises(ValueError, match="temperature must be a positive"):
        mimic.mimic_scores(x, y, ref, temperature=float("inf"))
    with pytest.raises(ValueError, match="progress must be a callable"):
        mimic.mimic_scores(x, y, ref, progress=3)
    with pytest.raises(ValueError, match="2-D array"):
        mimic.mimic_scores(x[0], y, ref)
    with pytest.raises(ValueError, match="LinearHead or a \\(W, b\\) pair"):
        mimic.mimic_scores(x, y, np.ones((2, 3)))


def test_flag_label_issues_rule_and_validation():
    scores = np.array([0.3, -0.01, 0.0, -0.5, 0.2])
    np.testing.assert_array_equal(mimic.flag_label_issues(scores, np.zeros(5, int)), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(mimic.flag_label_issues(scores, np.zeros(5, int), threshold=0.25), [0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="labels have shape"):
        mimic.flag_label_issues(scores, np.zeros(4, int))
    with pytest.raises(ValueError, match="finite"):
        mimic.flag_label_issues([0.1, np.nan], [0, 1])


# --- reference heads -------------------------------------------------------------


def test_train_linear_head_fits_trusted_set():
    x, clean, _ = _blobs()
    head = mimic.train_linear_head(x, clean, 3, classes=["a", "b", "c"])
    assert head.weight.shape == (3, 8) and head.bias.shape == (3,) and head.weight.dtype == np.float32
    assert head.classes == ["a", "b", "c"]
    assert (head.logits(x).argmax(1) == clean).mean() > 0.98


def test_train_linear_head_binary_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    x, clean, _ = _blobs(num_classes=2)
    head = mimic.train_linear_head(x, clean, 2)
    assert head.weight.shape == (2, 8)
    logits = head.logits(x).astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    want = LogisticRegression(C=1.0, max_iter=2000).fit(x.astype(np.float64), clean).predict_proba(x)
    np.testing.assert_allclose(probs, want, atol=1e-4)


def test_train_linear_head_missing_class_is_named():
    x, clean, _ = _blobs(num_classes=4)
    keep = clean != 2
    with pytest.raises(ValueError, match=r"no samples of classes \[2\]"):
        mimic.train_linear_head(x[keep], clean[keep], 4)
    with pytest.raises(ValueError, match=r"no samples of classes \['cat'\]"):
        mimic.train_linear_head(x[keep], clean[keep], 4, classes=["a", "b", "cat", "d"])


def test_train_linear_head_empty_trusted_set():
    with pytest.raises(ValueError, match="trusted set is empty"):
        mimic.train_linear_head(np.zeros((0, 8)), np.zeros(0, int), 3)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        mimic.train_linear_head(np.zeros((4, 8)), np.zeros(4, int), 1)


def test_zero_shot_head_and_prompts():
    text = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 1.0]])
    head = mimic.zero_shot_head(text, 100.0, classes=["x", "y", "z"])
    np.testing.assert_allclose(np.linalg.norm(head.weight, axis=1), 100.0, rtol=1e-6)
    np.testing.assert_allclose(head.weight[0], [60.0, 80.0], rtol=1e-6)
    np.testing.assert_array_equal(head.bias, np.zeros(3))
    with pytest.raises(ValueError, match="all zero"):
        mimic.zero_shot_head(np.array([[1.0, 0.0], [0.0, 0.0]]), 100.0)
    with pytest.raises(ValueError, match="logit_scale must be a positive"):
        mimic.zero_shot_head(text, 0)
    prompts = mimic.text_prompts("dog")
    assert "a photo of a dog." in prompts and len(prompts) == len(mimic.DEFAULT_TEMPLATES)
    assert mimic.text_prompts("cat", ["{} here"]) == ["cat here"]
    with pytest.raises(ValueError, match="exactly one"):
        mimic.text_prompts("cat", ["no slot"])


# --- load_head ---------------------------------------------------------------------


def test_load_head_npy(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "w.npy", w)
    head = mimic.load_head(tmp_path / "w.npy", 3, 4)
    np.testing.assert_array_equal(head.weight, w)
    np.testing.assert_array_equal(head.bias, np.zeros(3))
    wb = np.hstack([w, np.array([[1.0], [2.0], [3.0]], np.float32)])
    np.save(tmp_path / "wb.npy", wb)
    head = mimic.load_head(tmp_path / "wb.npy", 3, 4)
    np.testing.assert_array_equal(head.weight, w)
    np.testing.assert_array_equal(head.bias, [1.0, 2.0, 3.0])


def test_load_head_torch(tmp_path):
    w = torch.randn(3, 4)
    torch.save(w, tmp_path / "w.pt")
    np.testing.assert_allclose(mimic.load_head(tmp_path / "w.pt", 3, 4).weight, w.numpy())
    torch.save({"weight": w, "bias": torch.tensor([1.0, 2.0, 3.0])}, tmp_path / "wb.pth")
    head = mimic.load_head(tmp_path / "wb.pth", 3, 4)
    np.testing.assert_allclose(head.weight, w.numpy())
    np.testing.assert_allclose(head.bias, [1.0, 2.0, 3.0])


def test_load_head_shape_mismatch(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"weight shape \(5, 4\) but expected \(3, 4\)"):
        mimic.load_head(tmp_path / "w.npy", 3, 4)
    torch.save({"weight": torch.zeros(3, 4), "bias": torch.zeros(2)}, tmp_path / "b.pt")
    with pytest.raises(ValueError, match=r"bias shape \(2,\) but expected \(3,\)"):
        mimic.load_head(tmp_path / "b.pt", 3, 4)
    (tmp_path / "w.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"must end in \.npy, \.pt or \.pth"):
        mimic.load_head(tmp_path / "w.txt", 3, 4)


class _Evil:
    """Unpickling this creates a file: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickles_are_refused(tmp_path):
    # Control: the payload really runs under plain pickle.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Evil(control))).close()
    assert control.exists()

    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="refusing to load.*pickled Python objects"):
        mimic.load_head(tmp_path / "evil.npy", 3, 4)
    assert not marker.exists()

    torch.save({"weight": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refusing to load.*weights_only=True"):
        mimic.load_head(tmp_path / "evil.pt", 3, 4)
    assert not marker.exists()

    (tmp_path / "raw.pth").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ValueError, match="refusing to load"):
        mimic.load_head(tmp_path / "raw.pth", 3, 4)
    assert not marker.exists()


def test_defaults_constant_matches_signature():
    import inspect

    params = inspect.signature(mimic.mimic_scores).parameters
    assert {k: params[k].default for k in mimic.DEFAULTS} == mimic.DEFAULTS


def test_core_does_not_import_fiftyone():
    import pathlib

    src = pathlib.Path(mimic.__file__).read_text()
    assert "import fiftyone" not in src and "from fiftyone" not in src
    assert isinstance(LinearHead(np.zeros((2, 3)), None).bias, np.ndarray)
