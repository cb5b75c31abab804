"""The docs' commands do not rot: every ``adl ...`` line in a code block of README.md and docs/*.md is
parsed by the real argument parser, and its config (a shipped ``configs/...`` file with its ``--set``
values, or a sweep with every searched value) is loaded and validated, as the command would before it
starts anything. ``adl submit ... -- adl ...`` is checked on both sides of the ``--``.

A line that names a file of the user's own (not under ``configs/``) is checked as far as its arguments;
placeholders in capitals (``RUN_ID``, ``NAME``) are arguments like any other. A command the docs show
being refused (the next line is ``adl: error: ...``) must be refused with that message.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pipelines.cli.args import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def commands(page: Path) -> list[tuple[int, list[str], str | None]]:
    """(line number, argv after ``adl``, the error the docs show for it or None) of every adl command
    in the page's code blocks."""
    found: list[tuple[int, list[str], str | None]] = []
    block, pending, start, ended = False, "", 0, -1  # ended: the last line of the last command
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            block, pending = not block, ""
            continue
        if not block:
            continue
        if line.startswith("adl: error: ") and number == ended + 1 and found[-1][2] is None:
            found[-1] = (found[-1][0], found[-1][1], line.removeprefix("adl: error: "))
            continue
        if not pending:
            start = number
        pending += line.rstrip("\\").strip() + " "
        if line.rstrip().endswith("\\"):
            continue
        text, pending = pending.strip().removeprefix("$ "), ""
        try:
            words = shlex.split(text, comments=True)
        except ValueError:  # not shell (an output line with a stray quote)
            continue
        while words and ENV.match(words[0]):
            words = words[1:]
        if words and Path(words[0]).name == "adl":
            found.append((start, words[1:], None))
            ended = number
    return found


CASES = [
    pytest.param(argv, error, id=f"{page.relative_to(REPO)}:{line}")
    for page in PAGES
    for line, argv, error in commands(page)
]


def check(argv: list[str]) -> None:
    from components.config import ConfigError
    from pipelines.cli.main import train_config
    from pipelines.sweep.plan import load_sweep

    if argv in (["--help"], ["-h"]):
        return
    args = build_parser().parse_args(argv)  # SystemExit (usage error) fails the test
    shipped = lambda p: p is not None and p.startswith("configs/")  # noqa: E731
    if args.command == "train" and (args.config is None or shipped(args.config)):
        train_config(args)
    elif args.command == "sweep" and shipped(args.config):
        load_sweep(REPO / args.config, args.overrides)
    elif args.command == "submit":
        inner = list(args.job_command)
        if inner[:1] == ["--"]:
            inner = inner[1:]
        if not inner or Path(inner[0]).name != "adl":
            raise ConfigError(f"adl submit runs an adl command, got {inner}")
        check(inner[1:])


def test_the_docs_have_adl_commands_to_check():
    assert len(CASES) >= 40  # the check finds them (a change in the block syntax would find none)


@pytest.mark.parametrize(("argv", "error"), CASES)
def test_a_documented_command_parses_and_its_config_validates(argv, error, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(REPO)
    if error is None or argv[0] == "submit":  # (a submitted command's refusal comes from the cluster)
        check(argv)
        return
    # The docs show it refused: the real command refuses it, with that message, exit 2 (anything it
    # would log goes to a store of this test's own).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from pipelines.cli.main import main

    assert main(argv) == 2
    shown = error.split("...")[0].rstrip(". ")
    assert f"adl: error: {shown}" in capsys.readouterr().err
