"""Fixtures of the fault tests: a Redis of their own, and the processes of one test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.faults.stack import BASE_DIR, RedisServer, Stack

# The load's length: a short form by default (CI), `make soak` runs 60 s.
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "15"))


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    """``collectstatic`` once, as a release does: production settings serve the
    hashed names from its manifest."""
    root = tmp_path_factory.mktemp("static")
    env = os.environ | {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "WEBHOOK_SECRET_KEYS": "ZmF1bHQtdGVzdHMtd2ViaG9vay1zZWNyZXRzLWtleSE=",
        "STATIC_ROOT": str(root),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    return root


@pytest.fixture
def app_env(tmp_path, static_root):
    """``app_env(database_url=..., broker_url=..., **more)``: a production-like
    environment for the test's processes."""

    def make(**kwargs: str) -> dict[str, str]:
        return Stack.app_env(var_dir=tmp_path, STATIC_ROOT=str(static_root), **kwargs)

    return make


@pytest.fixture
def stacks(request, tmp_path):
    """``stacks(env)``: a Stack whose processes are stopped after the test, and whose
    logs are printed when it fails."""
    made: list[Stack] = []

    def make(env: dict[str, str]) -> Stack:
        stack = Stack(tmp_path, env)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        print(stack.logs())  # shown by pytest when the test fails
        stack.close()
