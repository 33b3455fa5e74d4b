"""tf.distribute strategies from a name, and the batch checks they need.

LocalNorm groups are formed per replica: each replica splits its share of
the global batch (B / replicas examples) into K groups, so B / replicas must
be a multiple of K.
"""

from __future__ import annotations

import tensorflow as tf

from lipnorm.errors import LipnormError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU; without GPUs every logical CPU device (one unless the process split the CPU,
        # e.g. with tf.config.set_logical_device_configuration, as the tests do).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as e:
            raise LipnormError(f"--strategy=tpu but no TPU was found ({e})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise LipnormError(f"unknown --strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def check_replica_batch(batch_size: int, replicas: int, groups: int) -> None:
    if batch_size % replicas or (batch_size // replicas) % groups:
        raise LipnormError(
            f"--batch_size={batch_size} cannot be split across {replicas} replicas into "
            f"{groups} LocalNorm groups each; use a multiple of {replicas * groups}"
        )
