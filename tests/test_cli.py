"""The command line itself: commands loaded on demand (``unmix --help`` imports neither
PyTorch nor SciPy), -v/-q, shell completion."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unmix.cli import COMMANDS, build_parser, main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _unmix(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unmix", *argv], capture_output=True, text=True, env=ENV,
        timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["separate", "--help"]])
def test_help_and_version_import_neither_torch_nor_scipy(argv):
    heavy = ["torch", "scipy"] if argv[0] != "separate" else ["scipy"]
    code = (
        "import sys\nfrom unmix.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr


def test_importtime_of_help_names_no_heavy_module():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "unmix", "--help"],
        capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    assert done.returncode == 0
    modules = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {m for m in modules if m.split(".")[0] in ("torch", "scipy", "numpy")}
    for name, (_, summary) in COMMANDS.items():  # every command listed with its summary
        assert name in done.stdout and summary.split()[0] in done.stdout


def test_help_is_the_same_whether_commands_are_loaded_or_not():
    lazy, full = build_parser(None), build_parser()
    assert lazy.format_help() == full.format_help()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert [a.dest for a in sub._choices_actions] == list(COMMANDS)


def test_an_unknown_command_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["seperate", "x.wav"])
    assert exc.value.code == 2
    assert "invalid choice: 'seperate'" in capsys.readouterr().err


def test_quiet_and_verbose_contradict(capsys):
    assert main(["-q", "models", "-v"]) == 1
    assert "-q/--quiet and -v/--verbose contradict" in capsys.readouterr().err


@pytest.mark.slow
def test_verbose_adds_detail_and_quiet_silences_the_licence_note(tmp_path, clip):
    argv = ["separate", str(clip), "-n", "umx-preview", "--duration", "1", "-o", str(tmp_path)]
    loud = _unmix("-v", *argv, "--targets", "vocals")
    assert loud.returncode == 0, loud.stderr
    assert "non-commercial" in loud.stderr  # the model's licence note
    assert "unmix: unmix " in loud.stderr and "outputs ('vocals',)" in loud.stderr  # debug
    quiet = _unmix(*argv, "-q", "--targets", "drums")
    assert quiet.returncode == 0 and quiet.stderr == ""


def _complete(script: Path, *words: str) -> list[str]:
    """What bash completes for ``words`` (the last one being typed) with ``script``."""
    array = " ".join(f"'{w}'" for w in words)
    program = (
        f"source {script}\nCOMP_WORDS=({array})\nCOMP_CWORD={len(words) - 1}\n"
        'cd "$(dirname "$0")"\n_unmix\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program, str(script)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_from_the_parser(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "unmix.bash"
    script.write_text(capsys.readouterr().out)
    assert _complete(script, "unmix", "sep") == ["separate"]
    assert _complete(script, "unmix", "-q", "comp") == ["completion"]
    assert _complete(script, "unmix", "separate", "--two") == ["--two-stems"]
    assert _complete(script, "unmix", "separate", "x.wav", "--format", "m") == ["mp3"]
    assert _complete(script, "unmix", "completion", "") == ["bash", "zsh"]
    (tmp_path / "song.flac").write_bytes(b"")
    assert _complete(script, "unmix", "separate", "so") == ["song.flac"]  # files elsewhere


def test_zsh_completion_loads_the_same_function(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef unmix") and "bashcompinit" in script
    assert "complete -o filenames -o bashdefault -F _unmix unmix" in script
    if shutil.which("zsh"):
        subprocess.run(["zsh", "-n", "-c", script], check=True)
    subprocess.run(["bash", "-n", "-c", script.split("\n", 4)[-1]], check=True)
