"""Tiny files in each dataset's distribution format, written to a temp dir by the tests."""

from __future__ import annotations

import os
import pickle

import numpy as np


def write_cifar10(root: str, per_batch: int = 8, seed: int = 0) -> str:
    """cifar-10-batches-py/ with five training batches and a test batch; returns root."""
    r = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": r.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": list(r.integers(0, 10, per_batch)), b"batch_label": name.encode()}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)
    return root


def write_stl10(root: str, train: int = 12, test: int = 8, seed: int = 0) -> str:
    """stl10_binary/ with train/test X and y files (labels 1..10); returns root."""
    r = np.random.default_rng(seed)
    folder = os.path.join(root, "stl10_binary")
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        r.integers(0, 256, n * 3 * 96 * 96, dtype=np.uint8).tofile(os.path.join(folder, f"{split}_X.bin"))
        r.integers(1, 11, n, dtype=np.uint8).tofile(os.path.join(folder, f"{split}_y.bin"))
    return root


def _jpeg(path: str, seed: int, size=(40, 30)) -> None:
    import tensorflow as tf

    image = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    tf.io.write_file(path, tf.io.encode_jpeg(image))


def write_cars_devkit(root: str, train: int = 10, test: int = 6, classes: int = 3, corrupt: int = 0) -> str:
    """cars_train/, cars_test/, devkit/*.mat and cars_test_annos_withlabels.mat; returns root.

    `corrupt` training files hold random bytes instead of a JPEG.
    """
    from scipy.io import savemat

    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    os.makedirs(os.path.join(root, "devkit"), exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        folder = os.path.join(root, f"cars_{split}")
        os.makedirs(folder, exist_ok=True)
        annos = np.zeros((1, n), dtype=fields)
        for i in range(n):
            name = f"{i + 1:05d}.jpg"
            if split == "train" and i < corrupt:
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(os.urandom(64))
            else:
                _jpeg(os.path.join(folder, name), seed=i + (1000 if split == "test" else 0))
            annos[0, i] = (1, 1, 20, 20, i % classes + 1, name)
        target = (os.path.join(root, "devkit", "cars_train_annos.mat") if split == "train"
                  else os.path.join(root, "cars_test_annos_withlabels.mat"))
        savemat(target, {"annotations": annos})
    names = np.empty((1, classes), dtype=object)
    for c in range(classes):
        names[0, c] = f"Car Model {c}"
    savemat(os.path.join(root, "devkit", "cars_meta.mat"), {"class_names": names})
    return root


def write_cars_folders(root: str, per_class: int = 3, classes: int = 2) -> str:
    """train/<class>/*.jpg and test/<class>/*.jpg; returns root."""
    for split in ("train", "test"):
        for c in range(classes):
            folder = os.path.join(root, split, f"class_{c}")
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                _jpeg(os.path.join(folder, f"{i}.jpg"), seed=100 * c + i)
    return root
