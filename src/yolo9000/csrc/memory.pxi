# A pool of large blocks for NumPy's arrays (its C: block_pool.c).
# (a section of the compiled core: ../_kernels.pyx includes it)

def use_block_pool(size_t limit):
    """Make NumPy allocate through the block pool, keeping up to `limit` bytes of freed blocks
    of 1 MB and more for reuse (0: keep none; a lower limit than before frees the blocks held
    beyond it). Process-wide, for arrays made from now on."""
    y9k_use_block_pool(limit)


def block_pool_bytes():
    """Bytes of freed blocks the pool holds now."""
    return y9k_pool_held()
