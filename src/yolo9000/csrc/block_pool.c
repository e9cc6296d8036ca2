/* A pool of large blocks for NumPy's arrays: use_block_pool and block_pool_bytes of the
   compiled core (kernels/threads.py keep_freed_memory turns it on for training).

   Arrays of a training step are the same few hundred shapes every step. glibc serves blocks
   over 32 MB (its largest mmap threshold) with fresh mmaps, which the kernel must fault in and
   zero page by page, every step (see BENCHMARKS.md#block-pool). This NumPy allocator (NEP 49)
   keeps freed blocks from 1 MB up to a byte limit and hands them out again for requests up to
   1/8 smaller. Every block carries a 64-byte header with its capacity (NumPy's free passes the
   array's size, not the block's). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "block_pool.h"
#ifndef NPY_TARGET_VERSION
#define NPY_TARGET_VERSION NPY_1_22_API_VERSION
#endif
#include <numpy/arrayobject.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>
#include <stdint.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define Y9K_HEADER 64
#define Y9K_POOL_MIN ((size_t) 1 << 20)
#define Y9K_POOL_SLOTS 256
static void *y9k_pool_ptr[Y9K_POOL_SLOTS];
static size_t y9k_pool_size[Y9K_POOL_SLOTS];
static size_t y9k_pool_bytes = 0, y9k_pool_limit = 0;
static pthread_mutex_t y9k_pool_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t *y9k_capacity(void *p) { return (size_t *) ((char *) p - Y9K_HEADER); }

/* a cached block of capacity in [size, size + size/8], smallest first; NULL if none */
static void *y9k_pool_take(size_t size)
{
    void *p = NULL;
    int best = -1;
    pthread_mutex_lock(&y9k_pool_lock);
    for (int i = 0; i < Y9K_POOL_SLOTS; i++)
        if (y9k_pool_ptr[i] && y9k_pool_size[i] >= size && y9k_pool_size[i] - size <= size / 8
                && (best < 0 || y9k_pool_size[i] < y9k_pool_size[best]))
            best = i;
    if (best >= 0) {
        p = y9k_pool_ptr[best];
        y9k_pool_ptr[best] = NULL;
        y9k_pool_bytes -= y9k_pool_size[best];
    }
    pthread_mutex_unlock(&y9k_pool_lock);
    return p;
}

/* 1 if the block went into the pool */
static int y9k_pool_put(void *p, size_t capacity)
{
    int kept = 0;
    pthread_mutex_lock(&y9k_pool_lock);
    if (y9k_pool_bytes + capacity <= y9k_pool_limit)
        for (int i = 0; i < Y9K_POOL_SLOTS; i++)
            if (!y9k_pool_ptr[i]) {
                y9k_pool_ptr[i] = p;
                y9k_pool_size[i] = capacity;
                y9k_pool_bytes += capacity;
                kept = 1;
                break;
            }
    pthread_mutex_unlock(&y9k_pool_lock);
    return kept;
}

static void *y9k_fresh(size_t size, int zeroed)
{
    char *base = zeroed ? calloc(1, size + Y9K_HEADER) : malloc(size + Y9K_HEADER);
    if (!base)
        return NULL;
    *(size_t *) base = size;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* as NumPy's own allocator: huge pages for large blocks, fewer faults */
    if (size >= ((size_t) 4 << 20)) {
        uintptr_t start = ((uintptr_t) base + 4095) & ~(uintptr_t) 4095;
        uintptr_t end = ((uintptr_t) base + size + Y9K_HEADER) & ~(uintptr_t) 4095;
        if (end > start)
            madvise((void *) start, end - start, MADV_HUGEPAGE);
    }
#endif
    return base + Y9K_HEADER;
}

static void *y9k_malloc(void *ctx, size_t size)
{
    (void) ctx;
    if (size >= Y9K_POOL_MIN) {
        void *p = y9k_pool_take(size);
        if (p)
            return p;
    }
    return y9k_fresh(size, 0);
}

static void *y9k_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void) ctx;
    if (elsize && nelem > (size_t) -1 / 2 / elsize)
        return NULL;
    size_t size = nelem * elsize;
    if (size >= Y9K_POOL_MIN) {
        void *p = y9k_pool_take(size);
        if (p) {
            memset(p, 0, size);
            return p;
        }
    }
    return y9k_fresh(size, 1);
}

static void y9k_free(void *ctx, void *p, size_t size)
{
    (void) ctx; (void) size;
    if (!p)
        return;
    size_t capacity = *y9k_capacity(p);
    if (capacity >= Y9K_POOL_MIN && y9k_pool_put(p, capacity))
        return;
    free((char *) p - Y9K_HEADER);
}

static void *y9k_realloc(void *ctx, void *p, size_t size)
{
    if (!p)
        return y9k_malloc(ctx, size);
    size_t capacity = *y9k_capacity(p);
    if (size <= capacity)
        return p;
    void *q = y9k_malloc(ctx, size);
    if (!q)
        return NULL;
    memcpy(q, p, capacity);
    y9k_free(ctx, p, capacity);
    return q;
}

static PyDataMem_Handler y9k_handler = {
    "yolo9000_block_pool", 1,
    {NULL, y9k_malloc, y9k_calloc, y9k_realloc, y9k_free}
};

/* a fork (the data loader's workers) while another thread holds the lock would leave
   the child's copy locked for ever: hold it across the fork, release it on both sides */
static void y9k_pool_before_fork(void) { pthread_mutex_lock(&y9k_pool_lock); }
static void y9k_pool_after_fork(void) { pthread_mutex_unlock(&y9k_pool_lock); }
static int y9k_pool_fork_handlers = 0;

/* install the pool as NumPy's allocator (new arrays only; old ones keep theirs) */
int y9k_use_block_pool(size_t limit)
{
    if (PyArray_ImportNumPyAPI() < 0)
        return -1;
    if (!y9k_pool_fork_handlers) {
        pthread_atfork(y9k_pool_before_fork, y9k_pool_after_fork, y9k_pool_after_fork);
        y9k_pool_fork_handlers = 1;
    }
    /* a lower limit lets go of the blocks held beyond it (0: all of them) */
    void *released[Y9K_POOL_SLOTS];
    int count = 0;
    pthread_mutex_lock(&y9k_pool_lock);
    y9k_pool_limit = limit;
    for (int i = 0; i < Y9K_POOL_SLOTS && y9k_pool_bytes > limit; i++)
        if (y9k_pool_ptr[i]) {
            released[count++] = y9k_pool_ptr[i];
            y9k_pool_bytes -= y9k_pool_size[i];
            y9k_pool_ptr[i] = NULL;
        }
    pthread_mutex_unlock(&y9k_pool_lock);
    for (int i = 0; i < count; i++)
        free((char *) released[i] - Y9K_HEADER);
    PyObject *capsule = PyCapsule_New(&y9k_handler, "mem_handler", NULL);
    if (!capsule)
        return -1;
    PyObject *old = PyDataMem_SetHandler(capsule);
    Py_DECREF(capsule);
    if (!old)
        return -1;
    Py_DECREF(old);
    return 0;
}

size_t y9k_pool_held(void) { return y9k_pool_bytes; }
