import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands():
    cmds = _quick_start_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("python -m ripkit.rip --config extreme")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci_last = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme_cmd = _quick_start_commands()[1]
    # The README command = venv creation + activation + the line .ci/run executes.
    assert readme_cmd.endswith(ci_last), (readme_cmd, ci_last)
