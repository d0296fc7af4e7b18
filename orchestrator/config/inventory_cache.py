"""What ``ansible-inventory`` made of an unchanged static inventory, kept across runs.

``load_inventory`` asks Ansible for two listings of the inventory (``--list``, the
merged view, and ``--export``, group variables on their groups). Each run is mostly
Ansible's start-up (about 0.4 s), paid by every sweep. For an inventory that is
certainly static, both listings are kept in ``<cache>/inventory/<key>.json`` and
reused as long as the key is the same. The key is a sha256 over everything
``ansible-inventory`` reads for such an inventory:

- the inventory file: its path (as given, made absolute, and resolved) and bytes;
- every file under ``group_vars/`` and ``host_vars/`` next to the inventory file and
  in the current directory (Ansible reads both into the merged view: the current
  directory is its default playbook folder), recursively, relative names and bytes;
- every Ansible config file that exists among ``$ANSIBLE_CONFIG``, ``./ansible.cfg``,
  ``~/.ansible.cfg`` and ``/etc/ansible/ansible.cfg`` (all of them, not only the
  one Ansible picks: a change to any of them gives a new key), paths and bytes;
- every ``ANSIBLE_*`` environment variable;
- the installed ansible-core version and the ``ansible-inventory`` executable
  (path, size, modification time);
- the cache format.

The content decides, not modification times: an edit within the same second is seen.
Nothing is kept (Ansible reads the inventory every time) for a directory, an
executable file (a script), an inventory plugin configuration (a YAML mapping with
a top-level ``plugin`` key), or anything that holds ``$ANSIBLE_VAULT`` (decrypted
secrets are never written here). Only clean listings are stored: the caller stores
nothing when ansible-inventory failed or warned, so an invalid inventory fails the
same way on every load.

The cache lives in ``$SOCFARM_CACHE_DIR``, else ``$XDG_CACHE_HOME/socfarm``, else
``~/.cache/socfarm``. Entries are written atomically; entries unused for 30 days
are removed, and at most the 64 most recently used are kept. A cache that cannot
be read or written is ignored: the inventory is then read by Ansible as without it.
Removing the ``inventory`` folder clears it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import yaml

FORMAT = 1
SUBDIR = "inventory"
MAX_ENTRIES = 64
MAX_AGE_S = 30 * 24 * 3600.0
#: A temporary file this old is left over by a writer that died: removed when pruning.
STALE_TMP_S = 3600.0

VAULT_MARK = b"$ANSIBLE_VAULT"
VARS_DIRS = ("group_vars", "host_vars")
_PLUGIN_LINE = re.compile(rb"""(?m)^\{?[ \t]*["']?plugin["']?[ \t]*:""")

Listings = tuple[dict[str, Any], dict[str, Any]]


def cache_dir() -> Path:
    """The socfarm cache folder (the inventory listings are in its ``inventory`` folder)."""
    if os.environ.get("SOCFARM_CACHE_DIR"):
        return Path(os.environ["SOCFARM_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG rules: a relative value is to be ignored
        return Path(xdg) / "socfarm"
    return Path.home() / ".cache" / "socfarm"


def entries_dir() -> Path:
    return cache_dir() / SUBDIR


class _Uncacheable(Exception):
    """The inventory must be read by Ansible every time."""


class _TolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, reading tags it does not know (``!unsafe``...) as plain values."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("!", _plain)


def is_plugin_config(data: bytes) -> bool:
    """An inventory plugin's configuration: a YAML mapping with a top-level ``plugin`` key.

    A line starting with ``plugin:`` is enough (a false alarm only costs the cache).
    """
    if _PLUGIN_LINE.search(data):
        return True
    try:
        doc = yaml.load(data, Loader=_TolerantLoader)
    except Exception:  # not YAML (an INI inventory), or YAML that Ansible cannot read either
        return False
    return isinstance(doc, dict) and "plugin" in doc


def _raise(error: OSError) -> None:
    raise error


def _tree(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``root`` (symbolic links followed, as Ansible does): relative name, bytes."""
    if not os.path.lexists(root):
        return
    if not root.is_dir():
        yield "", root.read_bytes()  # a file where a folder is expected: Ansible warns and skips it
        return
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, onerror=_raise, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up: Ansible would not get out of it either
            raise _Uncacheable(f"{folder}: symbolic link loop")
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            yield os.path.relpath(full, root), Path(full).read_bytes()


def _config_files() -> list[Path]:
    """The Ansible config files Ansible may read, in its order of preference."""
    found = []
    env = os.environ.get("ANSIBLE_CONFIG")
    if env:
        path = Path(os.path.expanduser(env)).absolute()
        found.append(path / "ansible.cfg" if path.is_dir() else path)
    found += [Path.cwd() / "ansible.cfg", Path.home() / ".ansible.cfg", Path("/etc/ansible/ansible.cfg")]
    return found


@functools.lru_cache(maxsize=None)
def _ansible_version() -> str:
    try:
        return importlib.metadata.version("ansible-core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class _Key:
    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, label: str, value: str | bytes) -> None:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        tag = label.encode()
        self._h.update(len(tag).to_bytes(4, "big") + tag + len(raw).to_bytes(8, "big") + raw)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _inventory_key(path: Path, tool: str) -> str:
    given = Path(os.path.abspath(path))
    st = os.stat(given)
    if not stat.S_ISREG(st.st_mode):
        raise _Uncacheable("not a regular file")
    if st.st_mode & 0o111:
        raise _Uncacheable("executable: an inventory script")
    data = given.read_bytes()
    if VAULT_MARK in data:
        raise _Uncacheable("vault content")
    if is_plugin_config(data):
        raise _Uncacheable("an inventory plugin configuration")

    key = _Key()
    key.add("format", str(FORMAT))
    key.add("inventory", str(given))
    key.add("resolved", str(given.resolve()))
    key.add("inventory bytes", data)
    for where, base in (("inventory dir", given.parent), ("cwd", Path.cwd())):
        for sub in VARS_DIRS:
            for rel, content in _tree(base / sub):
                if VAULT_MARK in content:
                    raise _Uncacheable(f"vault content in {base / sub / rel}")
                key.add(f"{where} {sub}", rel)
                key.add("bytes", content)
    for config in _config_files():
        if config.is_file():
            key.add("config", str(config))
            key.add("bytes", config.read_bytes())
    for name in sorted(n for n in os.environ if n.startswith("ANSIBLE_")):
        key.add("env", f"{name}={os.environ[name]}")
    key.add("ansible-core", _ansible_version())
    tool_stat = os.stat(tool)
    key.add("tool", f"{tool} {tool_stat.st_size} {tool_stat.st_mtime_ns}")
    return key.hexdigest()


def inventory_key(path: Path, tool: str) -> str | None:
    """The cache key of an inventory read by ``tool``, or None when it must be read by Ansible every time."""
    try:
        return _inventory_key(Path(path), tool)
    except Exception:  # uncacheable, or unreadable (Ansible will say what is wrong): no cache
        return None


def fetch(key: str) -> Listings | None:
    """The ``--list`` and ``--export`` listings stored under ``key``, or None."""
    entry = entries_dir() / f"{key}.json"
    try:
        doc = json.loads(entry.read_bytes())
    except Exception:  # missing, unreadable or not JSON: a miss (a corrupt entry is replaced when storing)
        return None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("key") == key
            and isinstance(doc.get("list"), dict) and isinstance(doc.get("export"), dict)):
        return None
    try:
        os.utime(entry)  # most recently used: kept longest
    except OSError:
        pass
    return doc["list"], doc["export"]


def store(key: str, listing: dict[str, Any], export: dict[str, Any]) -> bool:
    """Keep both listings under ``key`` (atomically); False when the cache cannot be written."""
    folder = entries_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "key": key, "list": listing, "export": export}, f)
            os.replace(tmp, folder / f"{key}.json")
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except Exception:
        return False
    prune(folder)
    return True


def prune(folder: Path | None = None, now: float | None = None) -> None:
    """Remove entries older than 30 days, all but the 64 most recent, and left-over temporary files."""
    folder = folder or entries_dir()
    now = time.time() if now is None else now
    entries: list[tuple[float, Path]] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = folder / name
        try:
            mtime = path.stat().st_mtime
            if name.startswith(".") and name.endswith(".tmp"):
                if now - mtime > STALE_TMP_S:
                    path.unlink()
            elif name.endswith(".json"):
                if now - mtime > MAX_AGE_S:
                    path.unlink()
                else:
                    entries.append((mtime, path))
        except OSError:
            continue
    entries.sort(reverse=True)
    for _, path in entries[MAX_ENTRIES:]:
        try:
            path.unlink()
        except OSError:
            pass
