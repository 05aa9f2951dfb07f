"""A local Ray that driftline starts runs its workers at the command's priority."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytest.importorskip("ray", reason="Ray is in the dev extra (CI installs it)")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_workers_of_a_local_ray_run_at_the_commands_priority() -> None:
    """Ray's default starts workers 15 nice levels below the driver (Serve replicas starved on
    a busy machine); ``ensure_ray`` starts a local Ray whose tasks and actors run at the
    driver's own niceness. ``RAY_ADDRESS=local`` makes the child start its own Ray even while
    the session's Ray (tests/on_ray/conftest.py) runs on this machine."""
    script = textwrap.dedent(
        """
        import os, sys
        from driftline.on_ray.local import ensure_ray
        ray = ensure_ray()

        @ray.remote(num_cpus=0)
        def nice():
            return os.nice(0)

        @ray.remote(num_cpus=0)
        class Actor:
            def nice(self):
                return os.nice(0)

        actor = Actor.remote()
        print(os.nice(0), ray.get(nice.remote(), timeout=300),
              ray.get(actor.nice.remote(), timeout=300), os.environ["RAY_worker_niceness"])
        ray.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_worker_niceness"}
    # A short folder of its own: Ray's Unix socket paths are limited to 107 bytes.
    folder = tempfile.mkdtemp(prefix="dl-rl-")
    env.update(RAY_ADDRESS="local", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=folder)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    driver, task, actor, setting = done.stdout.split()[-4:]
    assert task == actor == driver, done.stdout
    assert setting == "0"


def test_a_worker_niceness_the_user_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from driftline.on_ray import local

    monkeypatch.setenv("RAY_worker_niceness", "7")
    started: list[str] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    name, _ = local.WORKER_NICENESS
    monkeypatch.setattr(ray, "init", lambda **_: started.append(os.environ[name]))
    assert local.ensure_ray() is ray
    assert started == ["7"]
