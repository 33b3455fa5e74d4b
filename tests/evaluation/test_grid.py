import math

import numpy as np
import tensorflow as tf

from lipnorm import adaptation
from lipnorm.evaluation import grid
from lipnorm.noise.registry import parse_grid
from tests.test_adaptation import _model

RNG = np.random.default_rng(1)
IMAGES = RNG.uniform(0, 1, (300, 4, 4, 2)).astype("float32")
LABELS = RNG.integers(0, 3, 300).astype("int32")
TEST = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))


def test_fixed_rows_equal_adapting_each_cell_on_its_own():
    """The grid reuses one traced estimator across cells; it must match adapt() per cell."""
    model = _model()
    model.get_layer("bn1").moving_mean.assign([0.3, 0.7])
    cells = parse_grid("agn:1;gaussian:0.5")
    settings = grid.AdaptSettings(("fixed",), prior=4.0, samples=16)
    rows = grid.evaluate(model, TEST.take(40), cells, batch_size=8, adapt=settings, shift=False)
    assert [r.noise for r in rows] == [c.noise for c in cells]
    for cell, row in zip(cells, rows):
        batches = grid.noisy_batches(TEST.take(40), cell, 8, seed=0, clip=True)
        images = np.concatenate([x.numpy() for x, _, _ in batches])
        adapted = adaptation.adapt(model, images, scenario="fixed", prior=4.0, samples=16, batch_size=8)
        expected = np.mean(np.argmax(adapted.predict(images, 8), -1) == LABELS[:40])
        assert row.accuracy == expected
        assert row.examples == 40


def test_noise_and_rows_do_not_depend_on_the_evaluation_batch():
    cell = parse_grid("agn:1")[1]
    one = np.concatenate([x.numpy() for x, _, _ in grid.noisy_batches(TEST, cell, 300, seed=2, clip=True)])
    other = np.concatenate([x.numpy() for x, _, _ in grid.noisy_batches(TEST, cell, 7, seed=2, clip=True)])
    np.testing.assert_array_equal(one, other)
    model = _model()
    settings = grid.AdaptSettings(("none", "partial", "fixed"), prior=4.0, batch=5, samples=16)
    a = grid.evaluate(model, TEST, parse_grid("agn:1"), batch_size=300, adapt=settings)
    b = grid.evaluate(model, TEST, parse_grid("agn:1"), batch_size=32, adapt=settings)
    assert [(r.accuracy, r.examples) for r in a] == [(r.accuracy, r.examples) for r in b]
    np.testing.assert_allclose([r.shift for r in a], [r.shift for r in b], rtol=1e-5)


def test_shift_before_and_after_adaptation_and_progress():
    model = _model()
    seen = []
    settings = grid.AdaptSettings(("none", "partial", "fixed"), prior=0.0, batch=5, samples=None, estimator="exact")
    rows = grid.evaluate(model, TEST.take(64), parse_grid("agn:2"), batch_size=32, adapt=settings,
                         progress=lambda done, total, row: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]
    noisy = {r.adapt: r for r in rows if r.noise == "agn"}
    assert len({r.shift for r in rows if r.noise == "agn"}) == 1 and noisy["none"].shift > 0
    assert noisy["none"].adapted_shift == noisy["none"].shift
    # full-set statistics with N = 0 are the data's own: no shift left
    assert noisy["fixed"].adapted_shift < 0.01 * noisy["none"].shift
    assert math.isnan(noisy["partial"].adapted_shift)


def test_tent_rows_adapt_each_cell_from_the_source_model():
    model = _model()
    tent = grid.TentSettings(lr=0.05, batch=16)
    settings = grid.AdaptSettings(("none", "tent"), tent=tent)
    cells = parse_grid("agn:1;gaussian:0.5")
    rows = grid.evaluate(model, TEST.take(40), cells, batch_size=8, adapt=settings, shift=False)
    assert [(r.noise, r.adapt) for r in rows] == [(c.noise, a) for c in cells for a in ("none", "tent")]
    for cell, row in zip(cells, [r for r in rows if r.adapt == "tent"]):
        images = np.concatenate([x.numpy() for x, _, _ in grid.noisy_batches(TEST.take(40), cell, 16, 0, True)])
        probs = adaptation.Tent(model, lr=0.05).run(images, 16)  # a fresh adapter: reset per cell
        assert row.accuracy == np.mean(np.argmax(probs, -1) == LABELS[:40]) and row.examples == 40


def test_a_cell_is_traced_once_for_every_pipeline_and_seed():
    # tf.data traces a map function again for every pipeline; the cell's noise function is reused.
    cell = parse_grid("agn:0.7")[1]
    first = [np.concatenate([x.numpy() for x, _, _ in grid.noisy_batches(TEST.take(40), cell, 8, s, True)])
             for s in (0, 1, 0)]
    assert grid._noise_function(cell, True).experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(first[0], first[2])
    assert not np.array_equal(first[0], first[1])  # the seed is an argument, not part of the trace
