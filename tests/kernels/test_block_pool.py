"""The block pool: NumPy's allocator keeping freed large blocks (block_pool.c)."""


def test_block_pool_reuses_blocks_and_keeps_contents_apart():
    """The NumPy allocator of keep_freed_memory: freed large blocks come back for requests of
    about their size, zeros() is zero even from a dirty block, small and odd sizes work."""
    import subprocess
    import sys
    code = """
import numpy as np
from yolo9000.kernels import core
core.use_block_pool(64 * 2**20)
a = np.full(2**20, 7.0)          # 8 MB
address = a.ctypes.data
del a
assert core.block_pool_bytes() >= 8 * 2**20
b = np.zeros(2**20 - 1000)       # slightly smaller: the same block, zeroed
assert b.ctypes.data == address and not b.any()
c = np.ones(2**20)               # the pool is empty now: a new block
assert c.ctypes.data != address and core.block_pool_bytes() == 0
del b
d = np.empty(2**18)              # 2 MB: far smaller than the 8 MB block, not given it
assert d.ctypes.data != address
big = [np.full(2**21, float(i)) for i in range(6)]      # 6 x 16 MB > 64 MB limit when freed
del big
assert core.block_pool_bytes() <= 64 * 2**20
small = np.arange(10.0)
grown = np.resize(np.arange(5.0), 3_000_000)
assert grown[-1] == (3_000_000 - 1) % 5 and small.sum() == 45
held = core.block_pool_bytes()
assert held >= 16 * 2**20
core.use_block_pool(16 * 2**20)  # a lower limit frees what the pool holds beyond it
assert core.block_pool_bytes() <= 16 * 2**20
core.use_block_pool(0)           # and 0 empties it: a fresh pool, as in a new process
assert core.block_pool_bytes() == 0
core.use_block_pool(64 * 2**20)
e = np.full(2**20, 3.0)
f_address = e.ctypes.data
del e
assert core.block_pool_bytes() >= 8 * 2**20 and np.zeros(2**20).ctypes.data == f_address
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
