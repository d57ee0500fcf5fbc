"""compare's quality equivalence test (freqdiff.analysis.reading.equivalence) on real sample sets.

Every trap is built from the embedded digits (held-out images, images of 8 of the 10 classes, blurred images,
noise), measured with the digits_cnn extractor by measure_samples, written as runs (config.json and
metrics.csv), and read back by `compare`: pooling over seeds, the quality at tau_gen, then match.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from freqdiff.analysis.reading.comparison import compare
from freqdiff.analysis.reading.equivalence import (BETTER, INCONCLUSIVE, LOWER_QUALITY, MARGINS_KEY, MATCHED, MEASURES,
                                                   UNCHECKED, Level, Margins, judge, margins_for, tost)
from freqdiff.commands.calibrate import derive_margins
from freqdiff.core.io import read_csv, read_json, write_csv, write_json
from freqdiff.metrics.digits_cnn import digits_with_labels
from freqdiff.metrics.extractors import get_extractor
from freqdiff.metrics.known_sets import exact_copies, gaussian_blur, make_setup, uniform_noise
from freqdiff.metrics.quality import GATES, measure_samples

TABLE = Path(__file__).parents[1] / "results" / "calibration" / "calibration.csv"
STEPS = (100, 200, 400, 800, 1600, 3200)  # noise, three checkpoints of the trap, two that copy
SIZE = 256  # images per set, as the calibration table's (and a run's default n_samples)


@pytest.fixture(scope="module")
def setup():
    """The default digits setup (n = 16, the last 256 held out), 256 images per set over 4 folds; one torch
    thread while this module measures (several threads on a shared machine are many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    s = make_setup(n=16, n_samples=SIZE, folds=4, seed=0)
    yield s, get_extractor("digits_cnn", image_shape=s.split.image_shape)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def unseen(setup):
    """Pool images neither trained on nor in the reference, shuffled once, and their digit classes."""
    s, _ = setup
    pool, labels = digits_with_labels()
    pool, labels = pool[:len(s.training_pool())], labels[:len(s.training_pool())]
    assert torch.equal(pool, s.training_pool())  # the labels belong to these images
    mask = torch.ones(len(pool), dtype=torch.bool)
    mask[s.split.train_indices] = False
    index = torch.nonzero(mask).flatten()
    index = index[torch.randperm(len(index), generator=torch.Generator().manual_seed(0))]
    return pool[index], labels[index]


@pytest.fixture(scope="module")
def measured(setup):
    """images (centered) -> the metrics.csv columns measure_samples gives them."""
    s, extractor = setup
    return lambda images: measure_samples(images, s.split, s.cfg.eval, extractor)


@pytest.fixture(scope="module")
def copies_row(setup, measured):
    """Exact copies, measured once: their copy columns close every run's window."""
    s, _ = setup
    s.generator.manual_seed(0)
    return measured(exact_copies(s))


@pytest.fixture(scope="module")
def noise_row(setup, measured):
    """Uniform noise, measured once: every run's first checkpoint, before it generates."""
    s, _ = setup
    s.generator.manual_seed(1)
    return measured(uniform_noise(s))


COPY_COLUMNS = ("fmem", "fmem_low", "fmem_high", "fmem_robust", "fmem_robust_low", "fmem_robust_high")


def write_recipe(root: Path, rows_per_seed, copies_row, noise_row, regularizer="none") -> Path:
    """One run per seed at n = 16: noise at the first checkpoint, then its trap's quality columns, with the copy
    columns of noise (no copies) for three checkpoints and of exact copies for the last two: tau_gen = 200 at the
    trap's quality, tau_mem = 1600 (a held-out set can hold a near-duplicate of a training digit: its own copy
    columns would close the window at once)."""
    copies, no_copies = ({c: source[c] for c in COPY_COLUMNS} for source in (copies_row, noise_row))
    for seed, row in enumerate(rows_per_seed):
        run = root / f"n00016-seed{seed}"
        write_json(run / "config.json", {"dataset": {"name": "digits", "params": {}},
                                         "regularizer": {"name": regularizer, "params": {}},
                                         "data": {"n": 16, "test_size": 256}, "train": {"seed": seed}})
        checkpoints = [noise_row, *[{**row, **no_copies}] * 3, *[{**row, **copies}] * 2]
        rows = [{"step": step, **values, "loss_train": "", "loss_test": ""} for step, values in zip(STEPS, checkpoints)]
        write_csv(run / "metrics.csv", rows, list(rows[0]))
    return root


def chunks(images: torch.Tensor, count: int, start: int = 0) -> list[torch.Tensor]:
    """`count` disjoint sets of SIZE images, from image `start` on."""
    assert start + count * SIZE <= len(images)
    return [images[start + i * SIZE:start + (i + 1) * SIZE] for i in range(count)]


def sides(match) -> dict[str, str]:
    return {m.measure: m.side for m in match.measures}


# ----------------------------------------------------------------------------- the margins


def test_committed_margins_are_what_the_rule_derives_from_the_committed_table():
    margins, found = derive_margins(read_csv(TABLE), "digits_cnn", "results/calibration/calibration.csv")
    committed = read_json(GATES)[MARGINS_KEY]["digits_cnn"]
    assert margins is not None and margins_for("digits_cnn") == margins
    assert {m: committed[m] for m in MEASURES} == margins.values and committed["source"] == margins.source
    by = {d["measure"]: d for d in found}
    # exact and noisy copies are not resolved as worse on the FD or recognizable: blurred copies set those gaps
    assert (by["fid"]["ref"], by["recognizable"]["ref"], by["recall"]["ref"], by["coverage"]["ref"]) == (
        "blurred copies", "blurred copies", "noisy copies", "noisy copies")
    assert margins.values == pytest.approx({"fid": 7.5730 / 3, "recognizable": 0.22656 / 3, "recall": 0.34766 / 3,
                                            "coverage": 0.26172 / 3}, rel=1e-4)
    assert "held-out digits" in margins.source and "beyond both 2-sigma errors" in margins.source


def test_a_measure_without_a_resolved_degradation_leaves_no_margins():
    rows = [r for r in read_csv(TABLE) if r["reference"] != "blurred copies"]  # the FD's only resolved degradation
    margins, found = derive_margins(rows, "digits_cnn", "t.csv")
    assert margins is None and {d["measure"]: d["gap"] for d in found}["fid"] is None


def test_without_margins_for_an_extractor_quality_is_unchecked():
    level = {m: Level(0.9, 0.01, 3) for m in MEASURES}
    assert margins_for("lenet") is None
    status, measures, note = judge(level, level, "lenet", None)
    assert status == UNCHECKED and measures == ()
    assert note == ("quality unchecked: no equivalence margins calibrated for lenet features "
                    "(`freqdiff calibrate` derives them)")


def test_the_four_sides_of_one_measure():
    """90% interval d -+ 1.645 * combined_err / 2 against the margin: EDM's recognizable is better, not matched."""
    edm = tost("recognizable", "recognizable", Level(0.60, 0.03, 3), Level(0.44, 0.03, 3), 0.0755)
    assert edm.side == "better" and edm.difference == pytest.approx(0.16)
    assert edm.half_width == pytest.approx(1.6449 * math.hypot(0.03, 0.03) / 2, rel=1e-4)
    assert str(edm).startswith("better on recognizable (+0.16 ± 0.035, margin 0.0755; 0.6 ± 0.03 vs 0.44 ± 0.03)")
    ref = Level(0.9, 0.02, 3)
    assert tost("recall", "recall", Level(0.92, 0.02, 3), ref, 0.1).side == "matched"  # [-0.003, 0.043]
    assert tost("recall", "recall", Level(0.70, 0.02, 3), ref, 0.1).side == "worse"
    assert tost("recall", "recall", Level(0.85, 0.10, 3), ref, 0.1).side == "inconclusive"  # [-0.134, 0.034]
    assert tost("fid", "FD", Level(20.0, 1.0, 3), Level(25.0, 1.0, 3), 2.0).side == "better"  # lower is better
    assert tost("fid", "FD", Level(25.0, 1.0, 3), Level(20.0, 1.0, 3), 2.0).side == "worse"
    assert tost("fid", "FD", Level(25.0, math.nan, 1), Level(20.0, 1.0, 3), 2.0).side == "unknown"


def test_the_outcome_over_the_four_measures():
    margins = Margins("digits_cnn", {m: 0.1 for m in MEASURES}, "test")
    ref = {m: Level(0.5, 0.02, 3) for m in MEASURES}

    def status(**values):
        mine = {m: Level(*values.get(m, (0.5, 0.02)), 3) for m in MEASURES}
        return judge(mine, ref, "digits_cnn", margins)

    assert status()[0] == MATCHED
    assert status(coverage=(0.8, 0.02))[0] == BETTER
    assert status(coverage=(0.58, 0.02))[0] == BETTER  # [+0.057, +0.103]: better at 5%, not within 0.1
    assert status(coverage=(0.8, 0.02), fid=(0.8, 0.02))[0] == LOWER_QUALITY  # lower-is-better: +0.3 is worse
    assert status(coverage=(0.8, 0.02), recall=(0.45, 0.1))[0] == INCONCLUSIVE  # recall [-0.134, +0.034]
    assert judge({m: ref[m] for m in MEASURES if m != "recall"}, ref, "digits_cnn", margins)[0] == UNCHECKED
    _, _, note = status(coverage=(0.8, 0.02), fid=(0.8, 0.02))
    assert note.startswith("generation at lower quality (recipe - reference ± the half-width of its 90% interval, "
                           "against the calibrated margin): worse on FD (digits_cnn features) "
                           "(+0.3 ± 0.023, margin 0.1")
    assert "better on coverage (digits_cnn) (+0.3 ± 0.023" in note and "matched on recall (digits_cnn) (+0" in note


# ----------------------------------------------------------------------------- the traps, measured for real


def test_missing_two_classes_never_reads_matched(setup, unseen, measured, copies_row, noise_row, tmp_path):
    """(a) Held-out digits without 2 of the 10 classes, for every pair of classes, against held-out digits (two
    disjoint sets each, as two seeds): the FD barely moves, recall and coverage drop; never matched."""
    s, _ = setup
    images, labels = unseen
    reference = write_recipe(tmp_path / "heldout", [measured(s.unit(x)) for x in chunks(images, 2)], copies_row,
                             noise_row)
    rest_images, rest_labels = images[2 * SIZE:], labels[2 * SIZE:]
    dirs = []
    for pair in itertools.combinations(range(10), 2):
        kept = rest_images[~torch.isin(rest_labels, torch.tensor(pair))]
        rows = [measured(s.unit(x)) for x in chunks(kept, 2)]
        dirs.append(write_recipe(tmp_path / f"without-{pair[0]}{pair[1]}", rows, copies_row, noise_row))
    comparison = compare([reference, *dirs])
    matches = [v.matches[0] for v in comparison.versus]
    assert len(matches) == 45 and all(m.status in (LOWER_QUALITY, INCONCLUSIVE) for m in matches), [
        (v.recipe, v.matches[0].note) for v in comparison.versus if v.matches[0].status not in (LOWER_QUALITY,
                                                                                                 INCONCLUSIVE)]
    # the trap is real: on the FD and recognizable alone (the old test's measures) some pairs read matched ...
    fooled = [m for m in matches if sides(m)["fid"] == sides(m)["recognizable"] == "matched"]
    assert fooled
    # ... recall or coverage catches every one, and the note names them
    assert all({sides(m)["recall"], sides(m)["coverage"]} & {"worse", "inconclusive"} for m in matches)
    assert all(m.measures[0].mine.value > m.measures[0].ref.value for m in matches)  # the FD only ever rises
    assert all("recall (digits_cnn)" in m.note and "coverage (digits_cnn)" in m.note for m in matches)
    assert all(v.width[0].estimate is None for v in comparison.versus)


def test_disjoint_heldout_sets_read_matched(setup, unseen, measured, copies_row, noise_row, tmp_path):
    """(b) Two seeds of held-out digits against two other seeds of held-out digits: matched on all four."""
    s, _ = setup
    images, _ = unseen
    rows = [measured(s.unit(x)) for x in chunks(images, 4)]
    reference = write_recipe(tmp_path / "heldout", rows[:2], copies_row, noise_row)
    other = write_recipe(tmp_path / "other", rows[2:], copies_row, noise_row, "fourier_penalty")
    (v,) = compare([reference, other]).versus
    (m,) = v.matches
    assert m.status == MATCHED and set(sides(m).values()) == {"matched"}, m.note
    assert m.note.startswith("matched quality (recipe - reference ± the half-width of its 90% interval")
    # the same copy curves: the factor is given, and near 1 (tau_gen is fitted on each side's own measured FD)
    assert 0.8 < v.width[0].estimate < 1.25


@pytest.fixture(scope="module")
def sharp_and_worse(setup, unseen, measured, copies_row, noise_row, tmp_path_factory):
    """(recipe, reference) DIRs: held-out digits against held-out digits of the other 9 classes than 0 blurred
    by a Gaussian of half a pixel (worse in fidelity and in diversity, yet generating: it passes the gate)."""
    s, _ = setup
    images, labels = unseen
    rest, rest_labels = images[2 * SIZE:], labels[2 * SIZE:]
    root = tmp_path_factory.mktemp("better")
    worse = write_recipe(root / "blurred", [measured(gaussian_blur(s.unit(x), 0.5))
                                            for x in chunks(rest[rest_labels != 0], 2)], copies_row, noise_row)
    sharp = write_recipe(root / "sharp", [measured(s.unit(x)) for x in chunks(images, 2)], copies_row, noise_row,
                         "fourier_penalty")
    return sharp, worse


def test_better_on_every_measure_reads_better_quality(sharp_and_worse):
    """(c) Better on all four measures: 'better quality', each interval above 0 and reaching past its margin."""
    sharp, worse = sharp_and_worse
    (v,) = compare([worse, sharp]).versus
    (m,) = v.matches
    assert m.status == BETTER and set(sides(m).values()) == {"better"}, m.note
    for one in m.measures:
        low, high = one.interval
        gain_low, gain_high = (-high, -low) if one.measure == "fid" else (low, high)
        assert gain_low > 0 and gain_high > one.margin, one
    assert m.note.startswith("better quality (recipe - reference ± the half-width of its 90% interval")
    assert "better on FD (digits_cnn features) (-" in m.note and "better on coverage (digits_cnn) (+" in m.note
    (back,) = compare([sharp, worse]).versus  # the other way round: lower quality, no factor
    assert back.matches[0].status == LOWER_QUALITY and back.width[0].estimate is None


def test_better_quality_still_gets_its_window_factor(sharp_and_worse):
    """(c) compare reports the width at better quality (the same copy curves on both sides: a factor near 1)."""
    sharp, worse = sharp_and_worse
    (v,) = compare([worse, sharp]).versus
    assert v.matches[0].status == BETTER
    assert 0.8 < v.width[0].estimate < 1.25 and "better quality" in v.verdict


def test_a_noise_recipe_reads_no_generation(setup, unseen, measured, copies_row, noise_row, tmp_path):
    """(d) Uniform noise never passes the gate: no generation, no quality test, no factor."""
    s, _ = setup
    images, _ = unseen
    reference = write_recipe(tmp_path / "heldout", [measured(s.unit(x)) for x in chunks(images, 2)], copies_row,
                             noise_row)
    noise_rows = []
    for seed in range(2):
        s.generator.manual_seed(100 + seed)
        noise_rows.append(measured(uniform_noise(s)))
    noise = write_recipe(tmp_path / "noise", noise_rows, noise_rows[0], noise_row, "fourier_penalty")
    (v,) = compare([reference, noise]).versus
    (m,) = v.matches
    assert m.status == "no generation" and m.measures == () and v.width[0].estimate is None
    assert v.verdict.startswith("noise against heldout: no window factor. n = 16: no generation in 2 of 2 seeds")
