"""Issue 16: socfarm's overhead per job against ARM Workload Automation 3.3.1, side by side on this machine.

Both tools run the same jobs on the local board: MobileNet v1 float32 from the zoo in models/, component
cpu0, warm-up 3, min_count 20, min_duration_s 2.0. socfarm runs them with ``orchestrator sweep`` on the
embedded inventory (inventory/local.yml) and an experiments file made here; Workload Automation (WA) runs
them with a workload of its own kind (written here into WA's user folder) whose job is socfarm's agent on
the same job spec, started exactly as socfarm starts it (``python -m device_agent run SPEC`` from the
provisioned agent's folder, its Python), on WA's local target (``generic_local``, devlib's
LocalLinuxTarget) with WA's default augmentations. So only the orchestration differs.

    python benchmarks/vs_wa.py [--rounds 4] [--sizes 2,10] [--variants defaults,zero,nocache]
        [--wa-venv ~/.cache/socfarm-bench/wa-3.3.1] [--work DIR] [--keep] [--timeout-s 900]

WA is installed once (``pip install wlauto==3.3.1 devlib==1.3.4``) into a throw-away venv outside the
repository (``--wa-venv``); it is never a dependency of socfarm. devlib is pinned because WA 3.3.1 asks
for ``devlib>=1.3.3`` only.

socfarm variants (each a ``sweep`` of its own):
  defaults  the experiments file's defaults (idle_s 3, idle_settle_s 1, membw_mb 32), the idle power and
            bandwidth caches warm (an untimed first sweep of the same --state filled them): a repeated sweep
  zero      idle_s 0, membw_mb 0: no idle power, no bandwidth
  nocache   the defaults with idle_max_age_h 0 and membw_max_age_h 0: idle power and bandwidth measured by
            every sweep (what every sweep did before the caches)

Each round runs every (tool, N) once, in an order rotated from round to round, so that the noise of this
shared machine hits all alike. Both run in this environment without PYTHONDONTWRITEBYTECODE (``user_env``),
as a user's shell would. Wall time is the whole command (interpreter start to exit; socfarm's report
is then written by a process of its own, ``--report background``, the default: its time is printed beside
the round, waited for untimed before the next command, and not in the wall); the windows are
the jobs' measurement windows as the agent reported them (socfarm's results table, WA's metrics); overhead
per job = (wall - windows) / N. Medians over the rounds; ratios are taken per round (paired) and their
median printed. Last line: the worse of the defaults' ratios at the two sizes (issue 16's target: <= 0.5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WA_VERSION = "3.3.1"
DEVLIB_VERSION = "1.3.4"
DEFAULT_VENV = Path.home() / ".cache" / "socfarm-bench" / f"wa-{WA_VERSION}"
INVENTORY = REPO / "inventory" / "local.yml"
ORCHESTRATOR = [sys.executable, "-m", "orchestrator"]

EXPERIMENTS = """version: 1
zoo: {zoo}
{settings}rules: {{warmup_runs: 3, min_count: 20, min_duration_s: 2.0, max_duration_s: 60}}
experiments:
  - name: vs-wa
    models: [mobilenet_v1]
    dtypes: [float32]
    components: [cpu0]
    repeats: {n}
"""
VARIANTS = {
    "defaults": "",
    "zero": "idle_s: 0\nmembw_mb: 0\n",
    "nocache": "idle_max_age_h: 0\nmembw_max_age_h: 0\n",
}

WA_WORKLOAD = '''"""socfarm's device agent as a Workload Automation workload (written by benchmarks/vs_wa.py)."""
import json

from wa import Parameter, Workload, WorkloadError


class SocfarmAgent(Workload):
    name = 'socfarm_agent'
    description = "One job of socfarm's device agent: the shell command given, which prints JSON events."
    parameters = [
        Parameter('command', kind=str, mandatory=True, description='python -m device_agent run SPEC, as socfarm '
                                                                   'starts it'),
        Parameter('timeout', kind=int, default=300, description='seconds'),
    ]

    def run(self, context):
        self.stdout = self.target.execute(self.command, timeout=self.timeout)

    def update_output(self, context):
        events = [json.loads(line) for line in self.stdout.splitlines() if line.startswith('{')]
        if not events or events[-1].get('event') != 'summary':
            raise WorkloadError('the agent gave no summary: {}'.format(self.stdout[-500:]))
        summary = events[-1]
        if summary.get('verdict') != 'VALID':
            raise WorkloadError('the job is {}: {}'.format(summary.get('verdict'), summary.get('reasons')))
        context.add_metric('window_s', summary['duration_s'], 'seconds')
        context.add_metric('throughput_ips', summary['throughput_ips'], 'images/s')
        context.add_metric('count', summary['count'])
'''


def user_env(**extra: str) -> dict[str, str]:
    """The environment both tools run in: this one, as a user's shell has it, bytecode caches written. A
    PYTHONDONTWRITEBYTECODE set around the benchmark is dropped: with it, every start of a tool compiles the
    modules that no install precompiled (socfarm's editable install: all of its own; the simulated meter's
    module alone took 57 ms to compile here, `python -X importtime`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def run(cmd: list[str], timeout_s: float, **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("env", user_env())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, **kw)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"timed out after {timeout_s:.0f} s: {' '.join(map(str, cmd))}") from None
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return proc


# -- Workload Automation -------------------------------------------------------------------------------------


def wa_version(venv: Path) -> str | None:
    wa = venv / "bin" / "wa"
    if not wa.exists():
        return None
    proc = subprocess.run([str(wa), "--version"], capture_output=True, text=True, timeout=120,
                          env=user_env(WA_USER_DIRECTORY=str(venv / "wa-user")))
    return proc.stdout.split()[-1] if proc.returncode == 0 and proc.stdout.strip() else None


def keep_wa_home(venv: Path) -> None:
    """WA writes ``user_directory: ~/.workload_automation`` into the config.yaml it makes in its user folder, which
    then wins over WA_USER_DIRECTORY for its caches: point it at the venv's own folder."""
    config = venv / "wa-user" / "config.yaml"
    if config.exists():
        lines = config.read_text().splitlines()
        config.write_text("\n".join(f"user_directory: {venv / 'wa-user'}" if ln.startswith("user_directory:") else ln
                                    for ln in lines) + "\n")


def install_wa(venv: Path, timeout_s: float) -> str:
    """WA in its own venv (made once); returns what was done, for the output."""
    found = wa_version(venv)
    keep_wa_home(venv)
    if found == WA_VERSION:
        return f"WA {WA_VERSION} found in {venv}"
    if venv.exists():
        shutil.rmtree(venv)
    t0 = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)  # a venv of the plain interpreter, not of socfarm's
    run([base, "-m", "venv", str(venv)], timeout_s)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         f"wlauto=={WA_VERSION}", f"devlib=={DEVLIB_VERSION}"], timeout_s)
    if wa_version(venv) != WA_VERSION:
        raise SystemExit(f"{venv}: `wa --version` does not say {WA_VERSION} after installing")
    keep_wa_home(venv)
    return (f"WA {WA_VERSION} (devlib {DEVLIB_VERSION}) installed into {venv} in {time.monotonic() - t0:.0f} s "
            f"on Python {sys.version.split()[0]}")


class WorkloadAutomation:
    def __init__(self, venv: Path, work: Path, agent_python: str, agent_dir: str, timeout_s: float):
        self.wa = venv / "bin" / "wa"
        self.user = venv / "wa-user"  # WA's user folder (config, plugins, caches): never ~/.workload_automation
        (self.user / "plugins").mkdir(parents=True, exist_ok=True)
        (self.user / "plugins" / "socfarm_agent.py").write_text(WA_WORKLOAD)
        self.work = work
        self.python, self.agent_dir = agent_python, agent_dir
        self.timeout_s = timeout_s
        self.runs = 0

    def sweep(self, specs: list[dict[str, Any]]) -> tuple[float, float]:
        """(wall s, summed windows s) of one `wa run` of these job specs."""
        from orchestrator.transport.agent import agent_command

        self.runs += 1
        here = self.work / f"wa-{self.runs:03d}"
        here.mkdir()
        workloads = []
        for i, spec in enumerate(specs):
            spec = {**spec, "output_dir": str(here / "jobs" / str(i))}
            path = here / f"spec-{i}.json"
            path.write_text(json.dumps(spec))
            workloads.append({"name": "socfarm_agent",
                              "params": {"command": agent_command(self.python, self.agent_dir, "run", str(path))}})
        agenda = here / "agenda.yaml"
        agenda.write_text(json.dumps({"config": {"device": "generic_local", "device_config": {"unrooted": True},
                                                 "iterations": 1},
                                      "workloads": workloads}, indent=1))  # JSON is YAML
        out = here / "wa_output"
        env = user_env(WA_USER_DIRECTORY=str(self.user))
        t0 = time.monotonic()
        run([str(self.wa), "run", str(agenda), "-d", str(out), "-f"], self.timeout_s, env=env, cwd=here)
        wall = time.monotonic() - t0
        metrics = [line.split(",") for line in (out / "results.csv").read_text().splitlines()[1:]]
        windows = [float(m[4]) for m in metrics if m[3] == "window_s"]
        status = (out / "status.txt").read_text()
        done = f"{len(specs)}/{len(specs)} iterations completed without error"
        if len(windows) != len(specs) or "Run status: OK" not in status or done not in status:
            raise SystemExit(f"WA run {out} did not complete every job:\n{status}")
        return wall, sum(windows)


# -- socfarm -------------------------------------------------------------------------------------------------


class Socfarm:
    def __init__(self, work: Path, zoo: Path, timeout_s: float, inventory: Path):
        self.work, self.zoo, self.timeout_s, self.inventory = work, zoo, timeout_s, inventory
        self.common = ["-i", str(inventory), "--store", str(work / "runs"), "--reports", str(work / "reports"),
                       "--state", str(work / "state"), "--json", "--quiet", "--lease-wait", "120"]

    def experiments(self, variant: str, n: int) -> Path:
        path = self.work / f"exp-{variant}-{n}.yaml"
        if not path.exists():
            path.write_text(EXPERIMENTS.format(zoo=self.zoo, settings=VARIANTS[variant], n=n))
        return path

    def sweep(self, variant: str, n: int) -> tuple[float, float, dict[str, Any]]:
        """(wall s, summed windows s, the sweep's JSON summary) of one `orchestrator sweep`."""
        from orchestrator.results.store import RunDir

        t0 = time.monotonic()
        proc = run([*ORCHESTRATOR, "sweep", str(self.experiments(variant, n)), *self.common], self.timeout_s,
                   cwd=self.work)
        wall = time.monotonic() - t0
        summary = json.loads(proc.stdout)
        # the report is written by a process of its own once the result is printed (`--report background`, the
        # default): not part of the command's wall, but waited for (untimed here, its own figure) before the next
        # command, so that it never runs during another measurement
        t1 = time.monotonic()
        if summary.get("report_pid"):
            from orchestrator.report.background import wait_for_pending

            if wait_for_pending(self.work / "state", self.timeout_s):
                raise SystemExit(f"socfarm report of {summary['run_id']}: still being written after "
                                 f"{self.timeout_s:.0f} s (log {summary['report_log']})")
        summary["report_s"] = time.monotonic() - t1
        if summary["done"] != n or summary["invalid"] or summary["failed"]:
            raise SystemExit(f"socfarm sweep {summary['run_id']}: {summary}")
        results = RunDir(Path(summary["run_dir"])).read_table("results")  # compacted into the store's dataset
        summary["provisioned"] = json.loads((Path(summary["run_dir"]) / "run.json").read_text()).get(
            "provision", {}).get("status") != "skipped"
        return wall, float(results.duration_s.sum()), summary

    def agent(self) -> tuple[str, str, str]:
        """(python, agent folder, work folder) of the local board, as provisioning left them."""
        facts = json.loads((self.work / "state" / "facts.json").read_text())
        board = next(iter(facts.values()))
        from orchestrator.config.load import load_inventory

        lab = load_inventory(self.inventory)
        return board["python"], board["agent_dir"], lab.board(board["board"]).work_dir

    def specs(self, n: int, work_dir: str) -> list[dict[str, Any]]:
        """The agent specs socfarm itself sends for the n jobs (as the board runner makes them)."""
        from orchestrator.sweep import prepare

        plan = prepare(self.experiments("zero", n), self.inventory)
        specs = []
        for job in plan.jobs:
            spec = job.agent_spec(model_path=f"{work_dir}/models/{job.model_file}", output_dir="")
            spec["sysfs_root"] = plan.lab.board(job.board).sysfs_root
            specs.append(spec)
        return specs


# -- the comparison ------------------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--sizes", default="2,10", help="jobs per sweep, comma-separated (the first two are compared)")
    ap.add_argument("--variants", default="defaults,zero,nocache", help=f"socfarm variants: {', '.join(VARIANTS)}")
    ap.add_argument("--wa-venv", type=Path, default=DEFAULT_VENV, help="throw-away venv for WA (made if missing)")
    ap.add_argument("--work", type=Path, default=None, help="folder for runs and outputs (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--inventory", type=Path, default=INVENTORY)
    ap.add_argument("--zoo", type=Path, default=REPO / "models")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="limit for any one command")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants or len(sizes) < 1 or args.rounds < 1:
        raise SystemExit(f"bad --variants/--sizes/--rounds (variants: {', '.join(VARIANTS)})")
    manifest = args.zoo / "manifest.json"
    if not manifest.exists() or not any(m["name"] == "mobilenet_v1" and m["dtype"] == "float32"
                                        for m in json.loads(manifest.read_text())["models"]):
        raise SystemExit(f"no MobileNet v1 float32 in {args.zoo}: build the zoo first (`make zoo`, or "
                         "`.venv/bin/orchestrator zoo build --set study --out models`)")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    print(f"{time.strftime('%Y-%m-%d')}, {os.uname().sysname} {os.uname().release}, {cpu}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}", flush=True)
    print(install_wa(args.wa_venv, args.timeout_s), flush=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="socfarm-vs-wa-"))
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    try:
        socfarm = Socfarm(work, args.zoo.resolve(), args.timeout_s, args.inventory.resolve())
        # untimed: provisioning of this --state, the idle power and bandwidth caches, WA's first start
        socfarm.sweep("defaults", sizes[0])
        python, agent_dir, work_dir = socfarm.agent()
        wa = WorkloadAutomation(args.wa_venv, work, python, agent_dir, args.timeout_s)
        specs = {n: socfarm.specs(n, work_dir) for n in sizes}
        wa.sweep(specs[sizes[0]])
        print(f"work folder {work}; {args.rounds} rounds of {', '.join(map(str, sizes))} jobs "
              f"(MobileNet v1 float32, cpu0, warm-up 3, min_count 20, min_duration_s 2.0)", flush=True)

        cases = [("wa", None, n) for n in sizes] + [("socfarm", v, n) for v in variants for n in sizes]
        got: dict[tuple[str, str | None, int], list[tuple[float, float]]] = {c: [] for c in cases}
        for r in range(args.rounds):
            order = cases[r % len(cases):] + cases[:r % len(cases)]
            for tool, variant, n in order:
                if tool == "wa":
                    wall, windows = wa.sweep(specs[n])
                else:
                    for attempt in range(3):  # bounded: a tree being edited could provision every time
                        wall, windows, summary = socfarm.sweep(variant, n)
                        if not summary["provisioned"]:
                            break
                        # the playbooks or the agent changed since the last sweep (someone edits the tree): that
                        # sweep ran Ansible and measured idle power and bandwidth anew; not a repeated sweep
                        print(f"  round {r + 1}: socfarm/{variant} N={n}: provisioned again ({wall:.1f} s: the "
                              "playbooks or agent changed during the benchmark), "
                              + ("not counted, repeated" if attempt < 2 else "counted anyway"), flush=True)
                got[(tool, variant, n)].append((wall, windows))
                report = f", then its report in the background {summary['report_s']:.2f} s" if tool == "socfarm" else ""
                print(f"  round {r + 1}: {tool}{'/' + variant if variant else ''} N={n}: wall {wall:.2f} s, "
                      f"windows {windows:.2f} s, overhead {(wall - windows) / n:.3f} s/job{report}", flush=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    def label(tool: str, variant: str | None) -> str:
        return f"WA {WA_VERSION}" if tool == "wa" else f"socfarm ({variant})"

    print()
    print(f"{'':<20} {'N':>3} {'wall s':>8} {'windows s':>10} {'overhead s/job':>15}")
    for tool, variant, n in cases:
        rows = got[(tool, variant, n)]
        print(f"{label(tool, variant):<20} {n:>3} {median([w for w, _ in rows]):>8.2f} "
              f"{median([x for _, x in rows]):>10.2f} {median([(w - x) / n for w, x in rows]):>15.3f}")
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[1]
        print()
        print(f"{'':<20} {'fixed cost s':>13} {'per extra job s':>16}   (from the median overheads at N={a} and N={b})")
        for tool, variant in [("wa", None)] + [("socfarm", v) for v in variants]:
            oa = median([w - x for w, x in got[(tool, variant, a)]])
            ob = median([w - x for w, x in got[(tool, variant, b)]])
            per = (ob - oa) / (b - a)
            print(f"{label(tool, variant):<20} {oa - a * per:>13.2f} {per:>16.3f}")
    print()
    target = "defaults" if "defaults" in variants else variants[0]
    worst = None
    for variant in variants:
        for n in sizes:
            ratios = [((ws - xs) / n) / ((ww - xw) / n)
                      for (ws, xs), (ww, xw) in zip(got[("socfarm", variant, n)], got[("wa", None, n)])]
            ratio = median(ratios)
            print(f"ratio socfarm ({variant}) / WA, overhead per job at N={n}: {ratio:.2f} "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)})")
            if variant == target and (worst is None or ratio > worst[0]):
                worst = (ratio, n)
    print(f"(benchmark took {time.monotonic() - t_start:.0f} s)")
    print(f"worst ratio socfarm ({target}) / WA {WA_VERSION}, overhead per job: {worst[0]:.2f} at N={worst[1]} "
          "(issue 16's target: <= 0.5)")


if __name__ == "__main__":
    main()
