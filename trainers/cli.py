"""The `lipnorm` command and main.py: parse flags (with the dataset's preset), dispatch, report errors.

    lipnorm [train] --dataset=... [flags]       train, evaluate and export a run
    lipnorm evaluate --model_dir=DIR [flags]    re-evaluate DIR/model.keras (data settings from DIR's run)
    lipnorm compare DIR1 DIR2 ... [--baseline=DIR1] [--out=report]
    lipnorm presets                             the per-dataset defaults
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, logging

from lipnorm.errors import ArgumentError, LipnormError
from trainers import flags as app_flags, presets

COMMANDS = ("train", "evaluate", "compare", "presets")
FLAGS = app_flags.FLAGS
# Settings an evaluation takes from the run it re-evaluates, unless given as flags.
SAVED_DATA_KEYS = ("dataset", "data_dir", "holdout", "image_size", "batch_size", "seed", "clip_noise", "eval_examples")


def _main(argv: list[str]) -> None:
    args = argv[1:]
    command = FLAGS.mode
    if args and args[0] in COMMANDS:
        command, args = args[0], args[1:]
    if command == "compare":
        _compare(args)
        return
    if args:
        raise app.UsageError(f"unexpected arguments {args}; flags are written --name=value")
    if command == "presets":
        print(presets.listing())
        return
    from trainers import run

    config = app_flags.config_from_flags()
    workdir = app_flags.model_dir(config)
    if command == "evaluate":
        config = _with_saved_data(config, workdir)
        _print_rows(run.evaluate_saved(config, workdir, FLAGS.init_from), workdir)
        return
    result = run.train_and_evaluate(config, workdir)
    _print_rows(result["rows"], workdir)
    print(f"exported {result['paths']['keras']} and {result['paths']['saved_model']}")


def _compare(directories: list[str]) -> None:
    from lipnorm.reporting import compare

    if not directories:
        raise LipnormError("compare needs run directories: lipnorm compare DIR1 DIR2 ... [--baseline=DIR1] [--out=report]")
    summary = compare.compare(directories, FLAGS.out, FLAGS.baseline)
    print(compare.to_markdown(summary))
    print(f"wrote {os.path.join(FLAGS.out, compare.SUMMARY_MD)} (.csv, {compare.SEVERITY_PNG}, {compare.MCE_PNG})")


def _with_saved_data(config, workdir: str):
    """The data settings of the run in `workdir` (those not given as flags): same test images, same noise."""
    from trainers.config import load_run_config

    saved = load_run_config(workdir)
    if saved is None:
        return config
    keep = {k: getattr(saved, k) for k in SAVED_DATA_KEYS if not FLAGS[k].present}
    if "batch_size" in keep and not FLAGS["eval_batch_size"].present:
        keep["eval_batch_size"] = saved.evaluation_batch
    return dataclasses.replace(config, **keep)


def _print_rows(rows, workdir: str) -> None:
    from lipnorm.reporting.robustness import markdown

    print(markdown(rows))
    print(f"wrote {os.path.join(workdir, 'robustness.csv')} (.md, .png)")


def message(error: LipnormError) -> str:
    """The one-line message of a library error, naming the flag where the library names an argument."""
    if isinstance(error, ArgumentError):
        flag = app_flags.flag_name(error.argument)
        if flag:
            return error.describe(flag)
    return str(error)


def main(argv: list[str]) -> None:
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep TensorFlow's INFO chatter out of the way
    try:
        _main(argv)
    except LipnormError as e:
        logging.flush()
        print(f"lipnorm: error: {message(e)}", file=sys.stderr)
        sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, after the dataset's preset became the flags' defaults."""
    app_flags.use_preset(app_flags.peek_dataset(argv))
    return app.parse_flags_with_usage(argv)


def define_help_flags() -> None:
    """--help/--helpshort, listing lipnorm's flags (absl lists the key flags of the program's main module)."""
    app.define_help_flags()
    for flag in FLAGS.get_key_flags_for_module(app_flags.__name__):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run(argv=None) -> None:
    """Console entry point (`lipnorm`) and main.py's."""
    define_help_flags()
    app.run(main, argv=argv, flags_parser=parse_flags)
