"""``python -m pipelines.cli``: the ``adl`` command, where no ``adl`` script is on PATH."""

from pipelines.cli.main import entry

if __name__ == "__main__":
    entry()
