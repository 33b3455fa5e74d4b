import numpy as np
import tensorflow as tf

from lipnorm import adaptation
from lipnorm.evaluation import grid
from lipnorm.noise.registry import parse_grid
from tests.test_adaptation import _model

RNG = np.random.default_rng(1)
IMAGES = RNG.uniform(0, 1, (40, 4, 4, 2)).astype("float32")
LABELS = RNG.integers(0, 3, 40).astype("int32")


def test_fixed_rows_equal_adapting_each_cell_on_its_own():
    """The grid reuses one traced estimator across cells; it must match adapt() per cell."""
    model = _model()
    model.get_layer("bn1").moving_mean.assign([0.3, 0.7])
    test = tf.data.Dataset.from_tensor_slices((IMAGES, LABELS))
    cells = parse_grid("agn:1;gaussian:0.5")
    settings = grid.AdaptSettings(("fixed",), prior=4.0, samples=16)
    rows = grid.evaluate(model, test, cells, batch_size=8, adapt=settings, shift=False)
    assert [r.noise for r in rows] == [c.noise for c in cells]
    for cell, row in zip(cells, rows):
        batches = grid.noisy_batches(test, cell, 8, seed=0, clip=True)
        images = np.concatenate([x.numpy() for x, _, _ in batches])
        adapted = adaptation.adapt(model, images, scenario="fixed", prior=4.0, samples=16, batch_size=8)
        expected = np.mean(np.argmax(adapted.predict(images, 8), -1) == LABELS)
        assert row.accuracy == expected
        assert row.examples == 40
