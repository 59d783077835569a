"""The `lgagent` group: lazy subcommands, one-line errors, the installed console script."""

import subprocess
import sys

from click.testing import CliRunner

from train.cli.main import COMMANDS, main


def test_help_lists_every_command_without_importing_them():
    code = ("import sys; from click.testing import CliRunner; from train.cli.main import main; "
            "r = CliRunner().invoke(main, ['--help']); print(r.output); "
            "print('torch' in sys.modules, 'train.training.run' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert f"  {name} " in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_every_command_resolves_and_has_help():
    for name in COMMANDS:
        r = CliRunner().invoke(main, [name, "--help"])
        assert r.exit_code == 0, r.output
        assert f"lgagent {name}" in r.output


def test_unknown_command_and_bad_option_give_one_line_and_exit_2():
    for args in (["nosuch"], ["datagen", "--games", "lots"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
        assert "Traceback" not in r.output


def test_console_script_eval_of_a_missing_run_is_bad_input(tmp_path):
    out = subprocess.run([sys.executable, "-m", "train.cli.main", "eval", str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
