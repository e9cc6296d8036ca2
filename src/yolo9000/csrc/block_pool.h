/* The block pool (block_pool.c): NumPy's allocator keeping freed large blocks for reuse. */
#ifndef Y9K_BLOCK_POOL_H
#define Y9K_BLOCK_POOL_H

#include <stddef.h>

/* install the pool as NumPy's allocator (arrays made from now on), keeping up to `limit`
   bytes of freed blocks (blocks held beyond a lowered limit are freed); 0, or -1 with a
   Python exception set */
int y9k_use_block_pool(size_t limit);

/* bytes of freed blocks the pool holds now */
size_t y9k_pool_held(void);

#endif
