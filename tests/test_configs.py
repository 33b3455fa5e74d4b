import glob
import os

import pytest
from absl.testing import flagsaver

from lipnorm import flags as lipnorm_flags
from lipnorm.training.loop import check_config
from trainers import mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_parses_into_a_valid_run(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs include each other by repository-relative paths
    with flagsaver.flagsaver():
        lipnorm_flags.FLAGS.unparse_flags()
        lipnorm_flags.FLAGS(["main.py", f"--flagfile={path}"])
        config = lipnorm_flags.config_from_flags(mnist.DEFAULTS)
        check_config(config)
    assert config.dataset == "mnist"
    if "localnorm" in path:
        assert (config.norm, config.groups, config.batch_size) == ("local", 10, 100)
    if "lipschitz" in path:
        assert config.lip_lambda > 0


def test_there_are_configs():
    assert len(CONFIGS) >= 3
