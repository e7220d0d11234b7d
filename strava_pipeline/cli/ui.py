"""``strava-pipeline ui``: the Dagster webserver and daemon on the pipeline's database, sharing one code server.

``dagster dev`` did this, but Dagster 1.13 marks it superseded by ``dg dev`` and says so on every start.
``dg dev`` (the separate ``dagster-dg-cli`` package) only runs inside a ``dg`` project (``[tool.dg]`` in the
working directory's ``pyproject.toml``), which an installed wheel started from any directory does not have.
So the three processes ``dagster dev`` starts are started here directly, with their public commands: a code
server (``dagster code-server start``: it loads the definitions once, and the UI's "Reload" reloads it), the
webserver and the daemon, both reading a workspace file that points at the code server. None of them warns.

The code location keeps the name ``dagster dev -m`` gave it (``strava_pipeline.definitions``): earlier runs,
and the runs the CLI records (see ``cli.backfill.job_origin``), stay attached to its jobs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from strava_pipeline.cli.backfill import CODE_LOCATION
from strava_pipeline.cli.runtime import pipeline_environment
from strava_pipeline.settings import Settings
from strava_pipeline.storage.files import write_atomic

#: How long the code server may take to load the definitions before the command gives up.
CODE_SERVER_STARTUP_SECONDS = 180.0
#: How long each process may take to stop after SIGINT before it is killed.
STOP_SECONDS = 30.0


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1.0).close()
        return True
    except OSError:
        return False


def workspace_yaml(port: int, host: str = "127.0.0.1") -> str:
    """The workspace of the webserver and daemon: the one code server this command started."""
    return (f"load_from:\n  - grpc_server:\n      host: {host}\n      port: {port}\n"
            f"      location_name: {CODE_LOCATION}\n")


def _daemon_command() -> list[str]:
    """``dagster-daemon``: the console script beside this Python, else its module."""
    script = Path(sys.executable).with_name("dagster-daemon")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dagster._daemon"]


def _stop(processes: list[subprocess.Popen[bytes]], *, signalled: bool) -> None:
    """Stop each, in reverse start order: SIGINT (their own clean shutdown), then a kill after ``STOP_SECONDS``.

    ``signalled``: the terminal's Ctrl-C reached them too (one process group); they get time to finish that
    shutdown first, since a second SIGINT makes the webserver quit without cleaning up.
    """
    deadline = time.monotonic() + (STOP_SECONDS if signalled else 0.0)
    for process in reversed(processes):
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            continue
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_ui(host: str, port: int) -> int:
    """Serve the UI on ``host:port`` until Ctrl-C or SIGTERM; the exit code of the first process that ended
    on its own (0 when stopped)."""
    with ExitStack() as stack:
        base = Settings.from_env()
        if not base.client_id:
            from strava_pipeline.cli.demo import demo_simulator

            sim = stack.enter_context(demo_simulator(base))
            print(f"No STRAVA_CLIENT_ID configured: using the simulator at {sim.base_url}", flush=True)
        stack.enter_context(pipeline_environment(Settings.from_env()))
        dagster_dir = Path(os.environ["STRAVA_PIPELINE_DAGSTER_DIR"])
        grpc_port = _free_port()
        workspace = dagster_dir / "workspace.yaml"
        write_atomic(workspace, workspace_yaml(grpc_port))
        processes: list[subprocess.Popen[bytes]] = []
        terminated = ctrl_c = False

        def on_stop(_signum: int, _frame: object) -> None:
            nonlocal terminated
            terminated = True  # SIGTERM reached this process only
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_stop)
        try:
            processes.append(subprocess.Popen([
                sys.executable, "-m", "dagster", "code-server", "start", "-m", CODE_LOCATION,
                "--location-name", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(grpc_port), "--log-level", "warning",
            ]))
            deadline = time.monotonic() + CODE_SERVER_STARTUP_SECONDS
            while not _listening(grpc_port):  # it listens once the definitions have loaded
                if processes[0].poll() is not None:
                    print("strava-pipeline ui: the code server could not load the definitions (see above)",
                          file=sys.stderr)
                    return 1
                if time.monotonic() > deadline:
                    print(f"strava-pipeline ui: the code server did not start in {CODE_SERVER_STARTUP_SECONDS:.0f} s",
                          file=sys.stderr)
                    return 1
                time.sleep(0.25)  # polling another process's socket
            processes.append(subprocess.Popen([*_daemon_command(), "run", "-w", str(workspace)]))
            processes.append(subprocess.Popen([
                sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "-h", host, "-p", str(port),
            ]))
            print(f"Dagster UI: http://{host}:{port}", flush=True)
            while True:
                for process in processes:
                    if process.poll() is not None:
                        print(f"strava-pipeline ui: {' '.join(map(str, process.args[:4]))} exited with code "
                              f"{process.returncode}; stopping the others", file=sys.stderr)
                        return process.returncode or 1
                time.sleep(0.5)  # watching child processes
        except KeyboardInterrupt:  # Ctrl-C (the terminal signalled the children too) or our SIGTERM
            ctrl_c = not terminated
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
            _stop(processes, signalled=ctrl_c)
    return 0
