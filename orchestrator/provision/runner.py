"""Run the provisioning playbook through ansible-runner and collect board facts.

``playbooks/`` holds data only; this module is the one place that starts
Ansible. Each call gets a fresh private data dir (a reused one leaks old
extravars); artifacts of all runs share one rotated folder; facts persist in
a per-state fact cache so ``BoardFacts`` survive between sweeps.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.config.load import ansible_env
from orchestrator.errors import ProvisionError
from orchestrator.provenance import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"


@dataclass(frozen=True)
class BoardFacts:
    """What provisioning learnt about a board; stored with every result."""

    board: str
    python: str
    agent_dir: str
    agent_version: str
    runtime_module: str
    runtime_version: str
    arch: str
    hostname: str
    usable_cpus: tuple[int, ...]
    topology: dict[str, Any] = field(default_factory=dict)
    glibc: str = "unknown"  # board_base's board_base_glibc_version ("2.36"); the runtime wheels depend on it
    kernel: str = "unknown"  # `uname -r` when provisioned (ansible_kernel); cached idle power and bandwidth use it

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> "BoardFacts":
        """What ``save_facts`` wrote (JSON turned the cpu tuple into a list); TypeError if the layout differs."""
        return cls(**{**saved, "usable_cpus": tuple(saved.get("usable_cpus") or ())})

    @classmethod
    def from_facts(cls, board: str, cached: dict[str, Any]) -> "BoardFacts":
        try:
            agent = cached["device_agent_facts"]
            version = agent["version"]
            topology = cached.get("ansible_local", {}).get("topology", {})
            return cls(
                board=board,
                python=agent["python"],
                agent_dir=agent["agent_dir"],
                agent_version=str(version.get("agent_version", "unknown")),
                runtime_module=str(version.get("runtime", {}).get("module", "unknown")),
                runtime_version=str(version.get("runtime", {}).get("version", "unknown")),
                arch=str(cached.get("ansible_architecture", cached.get("architecture", "unknown"))),
                hostname=str(cached.get("ansible_hostname", cached.get("hostname", board))),
                usable_cpus=tuple(topology.get("usable_cpus", ())),
                topology=topology,
                glibc=str(cached.get("board_base_glibc_version") or "unknown"),
                kernel=str(cached.get("ansible_kernel") or "unknown"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProvisionError(f"{board}: provisioning left incomplete facts ({exc!r} missing)") from None


@dataclass
class ProvisionResult:
    status: str
    rc: int
    facts: dict[str, BoardFacts]
    failed: dict[str, str]
    changed: dict[str, int]
    artifact_dir: Path


EventHandler = Callable[[dict[str, Any]], None]


def _failure_message(event: dict[str, Any]) -> str:
    data = event.get("event_data", {})
    res = data.get("res", {}) or {}
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or "failed"
    item_msgs = [str(r.get("msg", "")).strip() for r in res.get("results") or [] if r.get("failed")]
    if item_msgs:
        msg = "; ".join(item_msgs)
    return f"task '{data.get('task', '?')}': {str(msg).strip()}"


def provision(
    inventory: Path,
    state_dir: Path,
    *,
    limit: list[str] | None = None,
    extravars: dict[str, Any] | None = None,
    on_event: EventHandler | None = None,
    cancel: threading.Event | None = None,
    timeout_s: int = 1800,
) -> ProvisionResult:
    """Run ``playbooks/site.yml`` against ``inventory``; return per-board facts."""
    import ansible_runner  # slow import; only when provisioning

    state_dir = Path(state_dir).resolve()
    artifacts = state_dir / "ansible" / "artifacts"
    fact_cache = state_dir / "ansible" / "facts"
    artifacts.mkdir(parents=True, exist_ok=True)
    fact_cache.mkdir(parents=True, exist_ok=True)
    pdd = Path(tempfile.mkdtemp(prefix="pdd-", dir=state_dir / "ansible"))
    failed: dict[str, str] = {}
    lock = threading.Lock()

    gathered: dict[str, dict[str, Any]] = {}

    def handler(event: dict[str, Any]) -> bool:
        if event.get("event") == "runner_on_ok":
            # facts arrive with the task results that set them (setup, set_fact)
            data = event.get("event_data", {})
            new_facts = (data.get("res") or {}).get("ansible_facts")
            if isinstance(new_facts, dict):
                with lock:
                    gathered.setdefault(data.get("host", "?"), {}).update(new_facts)
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data", {})
            if not data.get("ignore_errors"):
                with lock:
                    failed.setdefault(data.get("host", "?"), _failure_message(event))
        if on_event is not None:
            on_event(event)
        return True  # returning None would drop events from r.events / r.stats

    env = ansible_env()
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(PLAYBOOKS / "roles")
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "True")
    xv = dict(extravars or {})
    if limit:
        xv["socfarm_limit"] = ",".join(limit)
    try:
        thread, runner = ansible_runner.run_async(
            private_data_dir=str(pdd),
            project_dir=str(PLAYBOOKS),
            playbook="site.yml",
            inventory=str(Path(inventory).resolve()),
            extravars=xv,
            envvars=env,
            suppress_env_files=True,
            quiet=True,
            artifact_dir=str(artifacts),
            rotate_artifacts=50,
            fact_cache=str(fact_cache),
            event_handler=handler,
            cancel_callback=(cancel.is_set if cancel else (lambda: False)),
            timeout=timeout_s,
            limit=",".join(limit) if limit else None,
        )
        thread.join()
    finally:
        shutil.rmtree(pdd, ignore_errors=True)

    if runner.rc == 127:
        raise ProvisionError(f"ansible-playbook not found (PATH={env['PATH']}); is ansible-core installed?")
    stats = runner.stats or {}
    hosts = set()
    for key in ("ok", "changed", "failures", "dark", "skipped"):
        hosts.update((stats.get(key) or {}).keys())
    for host in (stats.get("dark") or {}):
        failed.setdefault(host, "unreachable")
    facts = {}
    for host in sorted(hosts - set(failed)):
        facts[host] = BoardFacts.from_facts(host, gathered.get(host, {}))
    return ProvisionResult(
        status=runner.status,
        rc=runner.rc,
        facts=facts,
        failed=failed,
        changed={h: int(n) for h, n in (stats.get("changed") or {}).items()},
        artifact_dir=Path(runner.config.artifact_dir),
    )


def describe_event(event: dict[str, Any]) -> str | None:
    """One progress line for an ansible-runner event, or None to ignore it."""
    kind = event.get("event", "")
    data = event.get("event_data", {})
    if kind == "playbook_on_task_start":
        return f"task: {data.get('task', '')}"
    if kind in ("runner_on_failed", "runner_on_unreachable"):
        return f"{data.get('host')}: FAILED {_failure_message(event)}"
    return None



def read_state(path: Path, what: str) -> dict[str, Any]:
    """A JSON file of the controller's state (empty if there is none yet)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ProvisionError(f"{path}: corrupt {what} ({exc}); delete it and provision again") from None


def merge_state(path: Path, what: str, entries: dict[str, Any]) -> None:
    """Merge per-board ``entries`` into a JSON state file, replaced atomically."""
    path = Path(path)
    known = read_state(path, what)
    known.update(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True, default=list))
    tmp.replace(path)


def save_facts(state_dir: Path, facts: dict[str, BoardFacts]) -> None:
    """Merge boards' facts into ``<state>/facts.json`` (what `inventory check --facts` compares with)."""
    merge_state(Path(state_dir) / "facts.json", "facts cache", {name: f.__dict__ for name, f in facts.items()})


def load_facts(state_dir: Path) -> dict[str, Any]:
    return read_state(Path(state_dir) / "facts.json", "facts cache")
