from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_ZOO = REPO / "tests" / "fixtures" / "models"

# A shell starts background commands with SIGINT ignored, and an ignored signal stays ignored
# across exec: the agents and sweeps the tests start would then never see the Ctrl-C that the
# interrupt tests send. Handled (not ignored) here, it is back to the default in every child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Sweeps the tests start write their report before they end (`--report wait`): the tests read it right
# after. The default, a report written in the background, has tests of its own that ask for it.
os.environ.setdefault("SOCFARM_REPORT", "wait")

# The inventory cache of the sweeps the tests start goes to a folder of this test session, never the user's.
if "SOCFARM_CACHE_DIR" not in os.environ:
    os.environ["SOCFARM_CACHE_DIR"] = tempfile.mkdtemp(prefix="socfarm-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SOCFARM_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def write(tmp_path: Path):
    """write("name.yaml", text) -> path; dedents the text."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


# -- third-party .tflite models: from the mediapipe wheel on PyPI (never a dependency of socfarm) ---------------

MEDIAPIPE_VERSION = "0.10.14"
MEDIAPIPE_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
MEDIAPIPE_WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
# model -> (member of the wheel, sha256 of the file)
MEDIAPIPE_MODELS = {
    "face_detection_short_range": ("mediapipe/modules/face_detection/face_detection_short_range.tflite",
                                   "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    # uses MediaPipe's custom op Convolution2DTransposeBias
    "selfie_segmentation": ("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                            "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
}
WHEEL_CACHE = Path(os.environ.get("SOCFARM_TEST_WHEELS", Path.home() / ".cache" / "socfarm-test-wheels"))


@dataclass(frozen=True)
class ThirdPartyModel:
    name: str
    path: Path  # the extracted file, in the cache
    member: str  # its path inside the wheel
    sha256: str

    @property
    def source(self) -> str:
        return f"PyPI mediapipe=={MEDIAPIPE_VERSION} ({MEDIAPIPE_WHEEL}): {self.member}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mediapipe_wheel(folder: Path) -> Path:
    """The pinned wheel in ``folder``, downloaded with pip (it is a zip: nothing of it is installed)."""
    wheel = folder / MEDIAPIPE_WHEEL
    if wheel.is_file() and _sha256(wheel) == MEDIAPIPE_WHEEL_SHA256:
        return wheel
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--disable-pip-version-check",
             "-d", tmp, f"mediapipe=={MEDIAPIPE_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )
        got = Path(tmp) / MEDIAPIPE_WHEEL
        if proc.returncode != 0 or not got.is_file():
            pytest.fail(f"pip could not download mediapipe=={MEDIAPIPE_VERSION} (the third-party .tflite models "
                        f"of the zoo-add tests):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        if _sha256(got) != MEDIAPIPE_WHEEL_SHA256:
            pytest.fail(f"{MEDIAPIPE_WHEEL} from PyPI has sha256 {_sha256(got)}, pinned {MEDIAPIPE_WHEEL_SHA256}")
        os.replace(got, wheel)
    return wheel


@pytest.fixture(scope="session")
def mediapipe_models() -> dict[str, ThirdPartyModel]:
    """Real .tflite files that others made, from the pinned mediapipe wheel (cached outside the repo)."""
    folder = WHEEL_CACHE / f"mediapipe-{MEDIAPIPE_VERSION}"
    models = {name: ThirdPartyModel(name, folder / "models" / Path(member).name, member, sha)
              for name, (member, sha) in MEDIAPIPE_MODELS.items()}
    if all(m.path.is_file() and _sha256(m.path) == m.sha256 for m in models.values()):
        return models
    with zipfile.ZipFile(_mediapipe_wheel(folder)) as wheel:
        for m in models.values():
            data = wheel.read(m.member)
            assert hashlib.sha256(data).hexdigest() == m.sha256, f"{m.member} in {MEDIAPIPE_WHEEL} changed"
            m.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = m.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, m.path)
    return models
