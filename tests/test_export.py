import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipnorm import saving as export
from lipnorm.errors import LipnormError
from lipnorm.evaluation import predict
from lipnorm.layers import AdaptiveBN, LocalNorm
from lipnorm.saving import load_model


def _model(norm):
    inputs = keras.Input((5, 5, 1))
    x = keras.layers.Conv2D(3, 3)(inputs)
    x = {"local": lambda: LocalNorm(4), "adaptive": lambda: AdaptiveBN(prior=8.0),
         "batch": keras.layers.BatchNormalization}[norm]()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@pytest.mark.parametrize("norm", ["batch", "local", "adaptive"])
def test_keras_and_saved_model_round_trip(norm, tmp_path):
    model = _model(norm)
    x = np.random.default_rng(0).uniform(size=(8, 5, 5, 1)).astype("float32")
    paths = export.export(model, str(tmp_path))
    expected = model(x, training=False).numpy()
    np.testing.assert_allclose(load_model(paths["keras"])(x, training=False), expected, atol=1e-6)
    loaded = tf.saved_model.load(paths["saved_model"])  # keep a reference: it owns the variables
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-6)
    # exporting again replaces the previous export whole
    export.export(model, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "saved_model"]


def test_saved_model_pads_localnorm_batches(tmp_path):
    model = _model("local")  # K = 4, no stored group size: each batch splits into 4 blocks
    export.export_saved_model(model, str(tmp_path / "sm"))
    x = np.random.default_rng(1).uniform(size=(6, 5, 5, 1)).astype("float32")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    served = loaded.serve(tf.constant(x)).numpy()
    expected = model(x[[0, 1, 2, 3, 4, 5, 4, 5]]).numpy()[:6]  # the last block filled with its own images
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_saved_model_honours_the_stored_group_size(tmp_path):
    inputs = keras.Input((5, 5, 1))
    x = LocalNorm(2, group_size=3)(keras.layers.Conv2D(3, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    paths = export.export(model, str(tmp_path))
    x = np.random.default_rng(2).uniform(size=(13, 5, 5, 1)).astype("float32")
    loaded = tf.saved_model.load(paths["saved_model"])
    expected = predict(model, x, "batch")
    np.testing.assert_allclose(tf.nn.softmax(loaded.serve(tf.constant(x))).numpy(), expected, atol=1e-5)
    reloaded = load_model(paths["keras"])
    np.testing.assert_allclose(predict(reloaded, x, "batch"), expected, atol=1e-6)


def test_import_lipnorm_is_enough_to_load_its_models(tmp_path):
    path = str(tmp_path / "m.keras")
    _model("local").save(path)
    code = f"import keras, lipnorm; print(type(keras.models.load_model({path!r}).layers[2]).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "LocalNorm"


def test_model_with_an_unknown_custom_layer_names_it(tmp_path):
    @keras.saving.register_keras_serializable(package="users_package")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((3,))
    path = str(tmp_path / "custom.keras")
    keras.Model(inputs, Doubler()(inputs)).save(path)
    registry = keras.saving.get_custom_objects()
    registry.pop("users_package>Doubler")  # as in a fresh process that never imported the class
    with pytest.raises(LipnormError, match=r"custom layer or model class .*Doubler.* not registered"):
        load_model(path)
    with pytest.raises(LipnormError, match="no saved model at"):
        load_model(str(tmp_path / "missing.keras"))
