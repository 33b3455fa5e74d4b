"""lipnorm: train, evaluate and compare robust image classifiers. See README.md."""

from lipnorm.cli import run

if __name__ == "__main__":
    run()
