"""Fixtures of the fault tests: a Redis of their own, and the processes of one test."""

from __future__ import annotations

import os

import pytest

from tests.faults.stack import RedisServer, Stack

# The load's length: a short form by default (CI), `make soak` runs 60 s.
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "15"))


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


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
