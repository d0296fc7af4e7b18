"""Virtual boards for testing without hardware (see DESIGN.md section 5).

* :mod:`.sysfs`: fake sysfs trees with the XU3's and HiKey 970's real layouts;
* :mod:`.board_sim`: the board's "kernel" that makes those files behave;
* :mod:`.activity`: per-cluster CPU utilisation of a board's own processes;
* :mod:`.farm`: boards as network namespaces on a bridge, each with a real sshd;
* :mod:`.inventory`: the farm's Ansible inventory;
* ``python -m orchestrator.virtual up|down|status``: the same from a shell.
"""

from orchestrator.virtual.activity import FixedActivity, NetnsActivity
from orchestrator.virtual.board_sim import BoardSimulator
from orchestrator.virtual.farm import (
    BoardSpec,
    FarmError,
    VirtualBoard,
    VirtualFarm,
    teardown,
)
from orchestrator.virtual.inventory import write_inventory
from orchestrator.virtual.sysfs import SocLayout, build_tree, layout_for

__all__ = [
    "BoardSimulator", "BoardSpec", "FarmError", "FixedActivity", "NetnsActivity", "SocLayout",
    "VirtualBoard", "VirtualFarm", "build_tree", "layout_for", "teardown", "write_inventory",
]
