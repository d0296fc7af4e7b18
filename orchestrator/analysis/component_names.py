"""Well-known names: the component class of a core or accelerator, the release year of a SoC.

A lab reading published tables meets components named after their cores (``A7``, ``Cortex-A15``,
``Mali-T628 MP6``, ``G72``, ``NPU``) rather than by the class a cross-SoC comparison needs (little, big,
gpu, npu). :func:`infer_class` maps such a name to its class with the tables below; a name it does not know
gives ``None`` and the caller asks for an explicit class (the ``component_class`` column of an import).

How a name is read: lower case; split into words at spaces, ``-``, ``_``, ``/`` and brackets; the words
``arm``, ``cortex`` and ``mp<N>`` (a GPU's core count) are ignored. Then, in this order:

1. a GPU family word anywhere (``mali``, ``adreno``, ``powervr``, ``immortalis``) -> ``gpu``;
2. an accelerator word anywhere (``npu``, ``dsp``, ``hiai``, ``apu``) -> ``npu``;
3. every word left is a CPU core of :data:`CORE_CLASS` (``a15``), an Arm ``X`` core (``x1``, ``x2``,
   ...: ``big``), a bare Mali model (``t628``, ``g72``: ``gpu``) or a class name itself (``big``,
   ``little``, ``cpu``, ``gpu``, ``npu``), and they all give the same class -> that class
   (``A15``, ``Cortex-A15 big``, ``T628 GPU``);
4. anything else -> ``None``: an unknown word (``4xA15``, ``A15+A7``) or words that disagree
   (``A15 A7``). Say the class explicitly.

:data:`SOC_YEARS` gives the year a SoC reached products, so that a cross-SoC ratio can be taken newer /
older by default. Names are compared lower case without spaces, ``-`` or ``_`` (``Exynos 5422`` =
``exynos5422``). A SoC missing here is ordered by name unless the user orders the SoCs (``--soc-order``).
"""

from __future__ import annotations

import re

__all__ = ["CLASSES", "CORE_CLASS", "GPU_FAMILIES", "ACCELERATOR_WORDS", "SOC_YEARS", "infer_class",
           "core_key", "soc_key", "soc_year"]

#: the component classes a comparison knows (the inventory's ``class`` values)
CLASSES = ("big", "little", "cpu", "gpu", "npu")

#: Arm Cortex-A cores: in-order / efficiency cores are ``little``, out-of-order performance cores ``big``
CORE_CLASS = {
    # little
    "a5": "little", "a7": "little", "a53": "little", "a55": "little", "a510": "little", "a520": "little",
    # big
    "a9": "big", "a15": "big", "a17": "big", "a57": "big", "a72": "big", "a73": "big", "a75": "big",
    "a76": "big", "a77": "big", "a78": "big",
}
#: Arm Cortex-X cores (x1, x2, x3, x4, x925, ...) are ``big``
_X_CORE = re.compile(r"x\d+")
#: bare Mali model names (``T628``, ``G72``, ``G76``, ``G710``) are ``gpu``
_MALI_MODEL = re.compile(r"[tg]\d{2,3}")

#: a word naming a GPU family makes the component a ``gpu``
GPU_FAMILIES = ("mali", "adreno", "powervr", "immortalis")
#: a word naming a neural or signal-processing accelerator makes the component an ``npu``
ACCELERATOR_WORDS = ("npu", "dsp", "hiai", "apu")

_IGNORED = re.compile(r"arm|cortex|mp\d*")
_SPLIT = re.compile(r"[\s\-_/()\[\]]+")


def _words(name: str) -> list[str]:
    return [w for w in _SPLIT.split(name.strip().lower()) if w and not _IGNORED.fullmatch(w)]


def core_key(name: str) -> str:
    """What identifies a component across spellings: ``"Cortex-A15"`` and ``"a15"`` -> ``"a15"``."""
    return " ".join(_words(name))


def infer_class(name: str) -> str | None:
    """The component class of ``name`` (``"Cortex-A15"`` -> ``"big"``, ``"T628"`` -> ``"gpu"``), or ``None``."""
    words = _words(name)
    if any(w in GPU_FAMILIES for w in words):
        return "gpu"
    if any(w in ACCELERATOR_WORDS for w in words):
        return "npu"
    classes = {_word_class(w) for w in words}
    return classes.pop() if len(classes) == 1 else None


def _word_class(word: str) -> str | None:
    if word in CORE_CLASS:
        return CORE_CLASS[word]
    if word in CLASSES:
        return word
    if _X_CORE.fullmatch(word):
        return "big"
    if _MALI_MODEL.fullmatch(word):
        return "gpu"
    return None


#: the year a SoC first shipped in products
SOC_YEARS = {
    # Samsung Exynos
    "exynos5410": 2013, "exynos5422": 2014, "exynos7420": 2015, "exynos8890": 2016, "exynos8895": 2017,
    "exynos9810": 2018, "exynos9820": 2019,
    # HiSilicon Kirin
    "kirin960": 2016, "kirin970": 2017, "kirin980": 2018, "kirin990": 2019,
    # Qualcomm Snapdragon (marketing and part names)
    "snapdragon820": 2016, "msm8996": 2016, "snapdragon835": 2017, "msm8998": 2017,
    "snapdragon845": 2018, "sdm845": 2018, "snapdragon855": 2019, "sm8150": 2019,
    "snapdragon865": 2020, "sm8250": 2020,
    # Rockchip, Broadcom (Raspberry Pi), Amlogic, NVIDIA Tegra
    "rk3399": 2016, "bcm2837": 2016, "bcm2711": 2019, "bcm2712": 2023, "s922x": 2019,
    "tegrax1": 2015, "tegra210": 2015, "tegra186": 2017, "tegra194": 2018,
}


def soc_key(name: str) -> str:
    """``"Exynos 5422"`` -> ``"exynos5422"``: how SoC names are compared."""
    return re.sub(r"[\s\-_]+", "", str(name).lower())


def soc_year(name: str) -> int | None:
    """The release year of SoC ``name`` from :data:`SOC_YEARS`, or ``None`` when not listed."""
    return SOC_YEARS.get(soc_key(name))
