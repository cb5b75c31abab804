"""The ``adl`` command's exit: the right code whichever way it ends, everything written first, and no
wait for the interpreter's teardown (``pipelines/cli/main.py:entry``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _adl(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_command_leaves_with_the_exit_code_of_each_ending():
    prelude = "import sys, atexit\nfrom pipelines.cli import main as cli\n"
    ok = _adl(prelude + "sys.argv = ['adl', 'config', 'qlearn']\ncli.entry()\n")
    assert ok.returncode == 0 and "episodes" in ok.stdout  # printed before the fast exit
    bad = _adl(prelude + "sys.argv = ['adl', 'train', 'qlearn', '--set', 'episodez=3']\ncli.entry()\n")
    assert bad.returncode == 2 and "unknown key 'episodez'" in bad.stderr
    usage = _adl(prelude + "sys.argv = ['adl', 'trane']\ncli.entry()\n")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr  # argparse's SystemExit(2)
    crash = _adl(
        prelude
        + "def boom(args):\n    raise RuntimeError('a bug')\n"
        + "cli.COMMANDS['config'] = boom\nsys.argv = ['adl', 'config', 'qlearn']\ncli.entry()\n"
    )
    assert crash.returncode == 1 and "RuntimeError: a bug" in crash.stderr  # traceback shown, exit 1


def test_every_other_exit_handler_runs_before_the_fast_exit(tmp_path):
    """Handlers registered while the command runs (Ray's shutdown, MLflow's, here a marker) all run
    before entry's own, which leaves at once."""
    marker = tmp_path / "handler_ran"
    code = (
        "import sys, atexit\nfrom pipelines.cli import main as cli\n"
        "run = cli.main\n"
        "def main(argv=None):\n"
        f"    atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "    return run(argv)\n"
        "cli.main = main\n"
        "sys.argv = ['adl', 'config', 'qlearn']\n"
        "cli.entry()\n"
    )
    out = _adl(code)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "yes"
