"""Memory the machine has, and the one-line refusal of work that cannot fit in it.

Sizes come from cfgs and files anyone can write (`filters=1000000`, a 13000x13000 image, a
crafted checkpoint): work whose arrays cannot fit is refused before they are allocated, with
the figure and what the machine has, instead of a MemoryError traceback minutes later or a
machine pushed into swap.
"""
from .errors import UserError


def available_memory():
    """Bytes the kernel can hand out without swapping (MemAvailable of /proc/meminfo), or
    None where the system does not say (then nothing is refused)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe_bytes(count):
    """'61.0 GiB', '3.2 MiB': a size for people."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def memory_shortfall(needed, what):
    """'<what>: about 61.0 GiB needed, more than the 21.6 GiB this machine has available', or
    None when `needed` bytes fit (or the machine does not say what it has)."""
    available = available_memory()
    if available is None or needed <= available:
        return None
    return (f"{what}: about {describe_bytes(needed)} needed, more than the "
            f"{describe_bytes(available)} this machine has available")


def check_memory(needed, what, path=None):
    """UserError (naming `path`) when `needed` bytes do not fit in the available memory."""
    problem = memory_shortfall(needed, what)
    if problem:
        raise UserError(problem, path=path)
