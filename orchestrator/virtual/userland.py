"""Emulated board userlands: a real ARM Debian root file system per board, run through qemu-user.

A real XU3 runs an armhf (32-bit ARM) Debian or Ubuntu, a real HiKey 970 an arm64 one; what the
runtime role downloads, which numpy the board has and how the agent behaves on a 32-bit numpy depend on
that. With ``--userland emulated`` each virtual board gets such a root file system:

- **built** with ``mmdebstrap`` (variant ``minbase``: Debian's essential packages, apt, and the image's
  packages below) from the Debian mirror this machine's apt is configured with (``SOCFARM_DEBIAN_MIRROR``
  overrides), into a cache outside the repository (``SOCFARM_ROOTFS_CACHE``, default
  ``~/.cache/socfarm-rootfs``), once per recipe: a folder named after the architecture, the suite and a
  hash of the recipe (architecture, suite, mirror, packages, :data:`RECIPE_VERSION`), so a changed recipe
  builds a new one and an unchanged one is reused;
- **run** read-only below an overlay per board (the board's own changes in ``boards/<name>/rootfs-upper``),
  mounted under ``/run/socfarm-vfarm/<farm>/<board>`` (a path sshd accepts for ``ChrootDirectory``: every
  component root-owned and not writable by others, which ``/tmp`` is not); the board's sshd chroots every
  session into it, so Ansible, the agent and everything they start are the image's ARM binaries, executed
  by ``qemu-arm``/``qemu-aarch64`` through binfmt_misc (registered with the ``F`` flag: the emulator is
  opened when registered, so it also runs inside the chroot);
- the board's fake sysfs tree and work folder are bind-mounted at their host paths inside the root, so
  the inventory's ``socfarm_sysfs_root`` and ``socfarm_work_dir`` and the tests' view of the files stay
  the same; ``/proc`` and ``/dev`` are this machine's, ``/sys`` is empty (see :func:`mount_root`).

The image holds only what a lab's board image has before socfarm touches it: Python 3 with ``venv``,
and on armhf the distribution's numpy (PyPI has no armv7l numpy wheel). Everything else (the runtime,
the agent, the models) is what the playbooks install.

Emulated timings are not performance figures: qemu-user translates every instruction (tens of times
slower than the board, and unlike it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.virtual.teardown import FarmError

__all__ = ["ARCH_OF_SOC", "MACHINE", "Recipe", "cache_dir", "check_emulation", "debian_mirror", "emulation",
           "ensure_rootfs", "mount_root", "recipe_for", "root_mountpoint", "RECIPE_VERSION", "SUITES"]

#: bump when the way a root file system is built changes (a new hash, so a new build)
RECIPE_VERSION = 1
#: Debian suites a board can run, with the Python each ships (for messages and docs)
SUITES = {"bookworm": "Debian 12, Python 3.11, glibc 2.36", "bullseye": "Debian 11, Python 3.9, glibc 2.31"}
#: the Debian architecture of each SoC's userland
ARCH_OF_SOC = {"odroid_xu3": "armhf", "hikey970": "arm64"}
#: what ``uname -m`` says on it
MACHINE = {"armhf": "armv7l", "arm64": "aarch64"}
QEMU = {"armhf": "qemu-arm", "arm64": "qemu-aarch64"}
#: the image's packages before socfarm provisions it; armhf adds the distribution's numpy (no PyPI wheel)
BASE_PACKAGES = ("python3", "python3-venv")
ARCH_PACKAGES = {"armhf": ("python3-numpy",), "arm64": ()}
BUILD_TIMEOUT_S = 3600.0
BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class Recipe:
    arch: str
    suite: str
    mirror: str
    packages: tuple[str, ...]

    @property
    def key(self) -> str:
        text = json.dumps({**asdict(self), "packages": sorted(self.packages), "version": RECIPE_VERSION},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.suite}-{self.key}"


def recipe_for(soc: str, suite: str, mirror: str | None = None) -> Recipe:
    if soc not in ARCH_OF_SOC:
        raise ValueError(f"no emulated userland for SoC {soc!r}; known: {', '.join(ARCH_OF_SOC)}")
    if suite not in SUITES:
        raise ValueError(f"unknown Debian suite {suite!r}; known: "
                         + ", ".join(f"{s} ({d})" for s, d in SUITES.items()))
    arch = ARCH_OF_SOC[soc]
    return Recipe(arch=arch, suite=suite, mirror=mirror or debian_mirror(),
                  packages=BASE_PACKAGES + ARCH_PACKAGES[arch])


def emulation(spec) -> str:
    """What a board's ``socfarm_emulated`` inventory variable says: 'qemu-user armhf, Debian 12 ...'."""
    arch = ARCH_OF_SOC[spec.soc]
    return f"qemu-user {arch} ({MACHINE[arch]}), {SUITES[spec.userland]}"


def cache_dir() -> Path:
    return Path(os.environ.get("SOCFARM_ROOTFS_CACHE") or Path.home() / ".cache" / "socfarm-rootfs")


def debian_mirror(sources: tuple[Path, ...] = (Path("/etc/apt/sources.list.d/debian.sources"),
                                                 Path("/etc/apt/sources.list"))) -> str:
    """The Debian mirror this machine's apt uses (first ``URIs:`` of a deb822 file, or first ``deb`` line of
    a one-line list, that is not the security archive); ``SOCFARM_DEBIAN_MIRROR`` overrides."""
    if os.environ.get("SOCFARM_DEBIAN_MIRROR"):
        return os.environ["SOCFARM_DEBIAN_MIRROR"]
    for path in sources:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                m = re.match(r"\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    return "http://deb.debian.org/debian"


def check_emulation(arch: str) -> None:
    """qemu-user for ``arch`` registered with binfmt_misc and the ``F`` flag, mounting binfmt_misc and
    enabling Debian's qemu-user-static registration where this machine allows it. Raises FarmError
    saying what is missing (``kernel:`` first when the kernel itself cannot do it)."""
    qemu = QEMU[arch]
    if "binfmt_misc" not in Path("/proc/filesystems").read_text():
        raise FarmError("kernel: no binfmt_misc file system (CONFIG_BINFMT_MISC): ARM binaries cannot run here")
    if not (BINFMT / "register").exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise FarmError(f"kernel: cannot mount binfmt_misc at {BINFMT}: {proc.stderr.strip()}")
    entry = BINFMT / qemu
    if not entry.exists() and shutil.which("update-binfmts"):
        subprocess.run(["update-binfmts", "--enable", qemu], capture_output=True, timeout=30)
    if not entry.exists():
        raise FarmError(f"no binfmt_misc entry {entry}: install qemu-user-static and binfmt-support "
                        f"(apt-get install qemu-user-static binfmt-support), then update-binfmts --enable {qemu}")
    text = entry.read_text()
    if not text.startswith("enabled"):
        raise FarmError(f"{entry} is disabled: update-binfmts --enable {qemu}")
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags:")), "")
    if "F" not in flags:
        raise FarmError(f"{entry} has flags {flags!r} without F: the emulator would not be found inside a "
                        "board's chroot; use Debian's qemu-user-static registration (it sets F)")


def ensure_rootfs(recipe: Recipe, *, cache: Path | None = None, log=print) -> Path:
    """The root file system of ``recipe``, built once into the cache (under a lock, atomically: a folder
    appears complete or not at all). Returns its path."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / recipe.name
    with open(cache / f".{recipe.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".socfarm-recipe.json").exists():
            return final
        check_emulation(recipe.arch)
        for tool in ("mmdebstrap",):
            if shutil.which(tool) is None:
                raise FarmError(f"{tool} not found: apt-get install mmdebstrap")
        tmp = cache / f".{recipe.name}.building"
        if tmp.exists():
            shutil.rmtree(tmp)  # an interrupted build
        log(f"building the {recipe.arch} {recipe.suite} root file system ({SUITES[recipe.suite]}) from "
            f"{recipe.mirror} into {final} (once per recipe; a few minutes under emulation)")
        started = time.monotonic()
        cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--arch={recipe.arch}",
               f"--include={','.join(recipe.packages)}", "--components=main",
               "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*",
               recipe.suite, str(tmp), recipe.mirror]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FarmError(f"building {recipe.name} took more than {BUILD_TIMEOUT_S:.0f} s") from exc
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FarmError(f"mmdebstrap failed for {recipe.name} (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        (tmp / ".socfarm-recipe.json").write_text(json.dumps(
            {**asdict(recipe), "key": recipe.key, "version": RECIPE_VERSION,
             "built_s": round(time.monotonic() - started, 1), "built": time.time()}, indent=2) + "\n")
        os.replace(tmp, final)
        log(f"built {final.name} in {time.monotonic() - started:.0f} s ({_size_mb(final):.0f} MB)")
        return final


def _size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total / 1e6


# --- a board's root ---------------------------------------------------------------------------------

#: parent of every emulated board's root: root-owned and 0755 down to the root, as sshd's ChrootDirectory needs
ROOTS = Path("/run/socfarm-vfarm")


def root_mountpoint(farm_id: str, board: str) -> Path:
    return ROOTS / farm_id / board


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise FarmError(f"{' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()}")


def mount_root(root: Path, lower: Path, board_dir: Path, *, binds: tuple[Path, ...], hostname: str,
               address: str) -> None:
    """Mount the board's root at ``root``: ``lower`` (the cached image, never written) under an overlay
    whose writable layer is ``board_dir/rootfs-upper`` (fresh at every start: a newly flashed board), with
    this machine's ``/proc`` and ``/dev``, and each of ``binds`` at its own path.

    ``/sys`` stays empty: this machine's describes x86 CPUs, and an ARM runtime reading it crashes (LiteRT
    2.3.0's CPU detection on aarch64 segfaults on an x86 topology under qemu-user); the board's own sysfs
    is its fake tree, at ``socfarm_sysfs_root``."""
    for part in (ROOTS, root.parent, root):
        part.mkdir(mode=0o755, exist_ok=True)
        os.chmod(part, 0o755)
    upper, work = board_dir / "rootfs-upper", board_dir / "rootfs-work"
    for d in (upper, work):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    _run("mount", "-t", "overlay", "socfarm-root", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
         str(root))
    (root / "etc" / "hostname").write_text(hostname + "\n")
    (root / "etc" / "hosts").write_text(f"127.0.0.1\tlocalhost\n{address}\t{hostname}\n")
    _run("mount", "--bind", "/proc", str(root / "proc"))
    _run("mount", "--rbind", "/dev", str(root / "dev"))
    _run("mount", "--make-rslave", str(root / "dev"))
    for path in binds:
        inside = root / Path(path).resolve().relative_to("/")
        inside.mkdir(parents=True, exist_ok=True)
        _run("mount", "--bind", str(path), str(inside))
