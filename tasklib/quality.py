"""Tests, static checks and docs."""

from __future__ import annotations

import sys

from invoke import Context, task

from tasklib.common import REPO

PY = sys.executable


PODMAN_SOCKET = "/run/podman/podman.sock"


def _container_test_env() -> dict[str, str]:
    """Point testcontainers at Podman's Docker-API socket when it runs here (see .ci/podman-setup.sh)."""
    import os
    import shutil
    import subprocess

    env: dict[str, str] = {}
    if not os.environ.get("DOCKER_HOST") and os.path.exists(PODMAN_SOCKET):
        env.update({"DOCKER_HOST": f"unix://{PODMAN_SOCKET}", "TESTCONTAINERS_RYUK_DISABLED": "true",
                    "TESTCONTAINERS_CONNECTION_MODE": "docker_host"})
    if not os.environ.get("TC_PROMETHEUS_IMAGE") and shutil.which("podman"):
        if subprocess.run(["podman", "image", "exists", "localhost/opslab-prometheus:debian"]).returncode == 0:
            env["TC_PROMETHEUS_IMAGE"] = "localhost/opslab-prometheus:debian"
    return env


# The suite in two passes (issue 31: CI's time). The unit and CLI tests are independent of each other (each its own
# tmp folder, artifacts root and free ports), so two pytest-xdist workers take them; the integration tests run one at
# a time, as their timings (drills, alert delivery, benchmarks of a sort) assume a machine they do not share with
# another test. Both passes always run; the task fails if either did.
PASSES = (("unit and CLI tests, two workers", '-n 2 -m "not integration"'), ("integration tests, one at a time", "-m integration"))


@task(help={"args": "extra pytest arguments for both passes, e.g. 'tests/unit tests/cli' or '-k cache'"})
def test(c: Context, args: str = "") -> None:
    """Run the test suite in two passes (PASSES); exit code 5, no tests collected, counts as a failure only when neither
    pass collected a test. Each pass lists its 25 slowest tests at the end (where CI's time goes, issue 31)."""
    codes = []
    for label, select in PASSES:
        print(f"== make test: {label}", flush=True)
        codes.append(c.run(f"{PY} -m pytest --durations=25 --durations-min=5 {select} {args}", pty=False, warn=True,
                           env=_container_test_env()).exited)
    failed = [code for code in codes if code not in (0, 5)]
    if failed or codes == [5, 5]:
        sys.exit(failed[0] if failed else 5)


# Two workers (pytest-xdist): the in-process set stays under 2 minutes on a 2-core machine.
FAST = '-n 2 tests/unit -m "not integration and not container and not cli"'


@task(help={"args": "extra pytest arguments, e.g. 'tests/unit/metrics' or '-k cache'"})
def test_fast(c: Context, args: str = "") -> None:
    """The in-process unit tests only (tests/unit; no `tc` subprocess, no integration): what to run while working."""
    c.run(f"{PY} -m pytest -q -p no:cacheprovider {FAST} {args}", pty=False)


@task
def docs(c: Context) -> None:
    """Build the MkDocs site with --strict into site/."""
    c.run(f"{PY} -m mkdocs build --strict --quiet --site-dir {REPO / 'site'}", env={"NO_MKDOCS_2_WARNING": "1"})
    print(f"      ok  docs built in {REPO / 'site'}")


@task
def check(c: Context) -> None:
    """Static checks: schemas vs metaschema, ruff, the layer contracts, promtool, amtool, docs/samples/ current,
    docs/upgrading.md's matrix and docs/benchmarks.md's results current, deploy/k8s/base/config/ current, docs --strict,
    k8s manifests."""
    from jsonschema import Draft202012Validator

    from opslab import contracts

    for name in contracts.schema_names():
        Draft202012Validator.check_schema(contracts.load_schema(name))
    print(f"      ok  {len(contracts.schema_names())} schemas are valid JSON Schema 2020-12")
    c.run(f"{PY} -m ruff check --quiet {REPO}")
    print("      ok  ruff: no unused or undefined names, no bugbear findings")
    layers(c)
    promtool(c)
    amtool(c)
    c.run(f"{PY} {REPO / 'scripts' / 'gen_samples.py'} --check")
    c.run(f"{PY} {REPO / 'scripts' / 'gen_upgrade_docs.py'} --check")
    print("      ok  docs/upgrading.md's drill matrix matches its evidence (fixtures/evidence/drill-matrix.json)")
    c.run(f"{PY} {REPO / 'scripts' / 'gen_bench_docs.py'} --check")
    print("      ok  docs/benchmarks.md's latest results match the benchmark history (benchmarks/results/history.jsonl)")
    c.run(f"{PY} {REPO / 'scripts' / 'gen_k8s_config.py'} --check")
    docs(c)
    from tasklib.k8s import k8s_validate

    k8s_validate(c)


@task
def layers(c: Context) -> None:
    """The layer contracts (pyproject [tool.importlinter]): nothing imports upward, only engine/ imports NautilusTrader."""
    import os

    lint = os.path.join(os.path.dirname(PY), "lint-imports")  # beside the interpreter: .venv or the image's /opt/venv
    with c.cd(str(REPO)):
        c.run(f"{lint} --no-cache", hide="out", env={"PYTHONPATH": str(REPO)})
    print("      ok  import-linter: the layer contracts are kept")


@task
def promtool(c: Context) -> None:
    """promtool: check the Prometheus config and rules, and run the rule unit tests."""
    import shutil

    if not shutil.which("promtool"):
        raise SystemExit("promtool not found: apt-get install prometheus (Debian's package ships it)")
    prom = REPO / "prometheus"
    c.run(f"promtool check config --syntax-only {prom / 'prometheus.yml'}", hide="out")
    c.run(f"promtool check rules {prom / 'rules' / '*.yml'}", hide="out")
    c.run(f"promtool test rules {prom / 'tests' / '*.yml'}", hide="out")
    print("      ok  promtool: config, rules and rule unit tests")


@task
def amtool(c: Context) -> None:
    """amtool: check alertmanager/alertmanager.yml (its commented example receivers are checked by a unit test)."""
    import shutil

    if not shutil.which("amtool"):
        raise SystemExit("amtool not found: apt-get install prometheus-alertmanager (Debian's package ships it)")
    c.run(f"amtool check-config {REPO / 'alertmanager' / 'alertmanager.yml'}", hide="out")
    print("      ok  amtool: alertmanager.yml")


@task(help={"port": "port on 127.0.0.1 (default 8000: the runbook_base in prometheus/prometheus.yml)"})
def docs_serve(c: Context, port: int = 8000) -> None:
    """Serve the docs (the runbooks alerts link to) on 127.0.0.1, rebuilding on change."""
    c.run(f"{PY} -m mkdocs serve --dev-addr 127.0.0.1:{port}", env={"NO_MKDOCS_2_WARNING": "1"}, pty=False)


TASKS = [test, test_fast, docs, check, layers, promtool, amtool, docs_serve]
