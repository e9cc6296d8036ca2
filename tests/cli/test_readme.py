"""Every `yolo9000 ...` command in the README parses as written, with current option names.

Each command line of the README's code blocks is parsed by the real click command (so an unknown
or misspelt option, a missing argument or a bad value fails here) without running it; the
installed script then prints each used command's --help.
"""
import re
import shlex
from pathlib import Path

import click
import pytest

from conftest import REPO, run_installed
from yolo9000.cli import cli

README = REPO / "README.md"


def readme_commands():
    text = README.read_text()
    commands = []
    # every fenced block is matched (a python one too: the fences stay paired), shell ones used
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language not in ("", "bash", "sh", "console"):
            continue
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            for part in re.split(r"&&|\|\|?|;", line.split("#")[0]):
                words = shlex.split(part)
                if words and words[0] == "yolo9000":
                    commands.append(words[1:])
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 12
    assert {c[0] for c in COMMANDS if c and not c[0].startswith("-")} >= {"demo", "detect", "train"}


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a)[:60])
def test_readme_command_parses(args):
    with click.Context(cli) as ctx:
        group_args = list(args)
        # global options before the sub-command (e.g. --threads N)
        while group_args and group_args[0].startswith("-"):
            group_args = group_args[2:] if group_args[0] == "--threads" else group_args[1:]
        if not group_args:
            return
        name, rest = group_args[0], group_args[1:]
        command = cli.get_command(ctx, name)
        assert command is not None, f"README uses an unknown command: {name}"
        hidden = {opt for p in command.params if getattr(p, "hidden", False) for opt in p.opts}
        used_hidden = [w for w in rest if w.split("=")[0] in hidden]
        assert not used_hidden, f"README uses deprecated options {used_hidden}"
        command.make_context(name, rest, parent=ctx)   # raises on anything click would refuse


def test_readme_commands_help_through_the_installed_script(tmp_path):
    names = sorted({c[0] for c in COMMANDS if c and not c[0].startswith("-")})
    for name in names:
        proc = run_installed(name, "--help", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
