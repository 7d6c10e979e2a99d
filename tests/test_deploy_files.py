"""The production process definitions (Procfile, systemd units) start what exists:
gunicorn loads the WSGI app with the Procfile's own options, and every unit runs the
same programs as the Procfile."""

import configparser
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_procfile_has_the_four_processes():
    assert set(procfile()) == {"release", "web", "worker", "beat"}
    assert "migrate --noinput" in procfile()["release"]


def test_gunicorn_loads_the_app_with_the_procfile_options(tmp_path):
    command = shlex.split(
        procfile()["web"].replace("${PORT:-8000}", "8000").replace("${WEB_CONCURRENCY:-2}", "2")
    )
    assert command[0] == "gunicorn"
    env = {**os.environ, "VAR_DIR": str(tmp_path)}

    result = subprocess.run(
        [str(BIN / "gunicorn"), "--check-config", *command[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_each_systemd_unit_runs_a_procfile_program():
    programs = {name: shlex.split(command)[0] for name, command in procfile().items()}
    for name in ("web", "worker", "beat"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read(ROOT / "deploy" / "systemd" / f"marketplace-{name}.service")
        exec_start = shlex.split(unit["Service"]["ExecStart"])
        assert Path(exec_start[0]).name == programs[name]
        assert unit["Service"]["Restart"] == "always"
        assert unit["Service"]["EnvironmentFile"] == "/etc/marketplace.env"
