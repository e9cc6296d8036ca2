/* The team: worker threads for the inference kernels, which look for work a while before
   they sleep.

   A batch-1 forward is 30-50 kernel calls of 0.1-2 ms each, with Python in between. As
   OpenMP's parallel regions, with OpenMP's threads told to sleep at once
   (OMP_WAIT_POLICY=PASSIVE, which training needs beside OpenBLAS's threads), each call woke
   the sleeping thread and put the caller to sleep at its end: the 1x1 layers took longer on
   two threads than on one, and yolov2-voc's int8 forward gained 1.34x from its second thread
   where bf16's gained 1.57x. Here an idle worker keeps looking for the next job for
   YOLO9000_SPIN_US microseconds (default Y9K_TEAM_SPIN_US_DEFAULT) before it sleeps, so the
   calls of one forward find it awake, and the caller looks for the workers' end the same
   way. The team has as many members as the calling thread's OpenMP regions would have
   (y9k_team_members in y9k.h), so scratch sized by get_max_threads has a row for each.
   See BENCHMARKS.md#the-team. */
#define _GNU_SOURCE
#include "team.h"

#ifdef _WIN32
/* no POSIX threads: every job runs on the caller alone */
void y9k_team_run(int members, y9k_team_job job, void *ctx) { (void) members; job(ctx, 0, 1); }
int y9k_team_workers(void) { return 0; }
long y9k_team_spin_us(void) { return -1; }
#else
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#define Y9K_TEAM_MAX 64
#define Y9K_TEAM_SPIN_US_DEFAULT 2000

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;   /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER, done_cond = PTHREAD_COND_INITIALIZER;
static unsigned long generation;        /* jobs started; a worker runs each new one */
static int pending;                     /* workers still in the current job */
static int sleepers, caller_sleeping;   /* who waits on the conditions */
static int workers;                     /* started so far */
static int members_now;                 /* of the current job */
static y9k_team_job job_now;
static void *ctx_now;
static long spin_ns = -1;
static unsigned long born_at[Y9K_TEAM_MAX];   /* the generation when each worker was started */

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spinning pays only on CPUs nobody else wants. A thread that spins burns the share of
   its CPU the scheduler would give it later, when it has work; one that slept gets the CPU
   at once when woken. So a look that gives up its CPU for long (a yield that returns after
   Y9K_TEAM_PREEMPTED_NS: another thread ran) stops every spin of the team for a while:
   1 ms after a lone preemption (a quiet machine has a few a second: housekeeping, OpenMP's
   or OpenBLAS's threads), doubling with each preemption up to Y9K_TEAM_BACKOFF_MAX_NS,
   halving again with each spin that found its work. On a busy machine the team then sleeps
   at once between jobs, as OpenMP's passive threads do (two busy processes beside
   yolov2-voc bf16: 33-60 ms a forward with OpenMP, 92-100 ms with spinning that never
   stopped). */
#define Y9K_TEAM_PREEMPTED_NS 500000L
#define Y9K_TEAM_BACKOFF_MIN_NS 1000000L
#define Y9K_TEAM_BACKOFF_MAX_NS 200000000L
static long quiet_after;        /* no spinning before this time (ns) */
static long backoff_ns = Y9K_TEAM_BACKOFF_MIN_NS;

/* look at *v until `done(v, old)`, for spin_ns at most; 1 if it did */
static int spin_until(const void *v, long old, int (*done)(const void *, long))
{
    long start = now_ns();
    if (start < __atomic_load_n(&quiet_after, __ATOMIC_RELAXED))
        return done(v, old);
    long deadline = start + spin_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (done(v, old)) {
                long b = __atomic_load_n(&backoff_ns, __ATOMIC_RELAXED);
                if (b > Y9K_TEAM_BACKOFF_MIN_NS)
                    __atomic_store_n(&backoff_ns, b / 2, __ATOMIC_RELAXED);
                return 1;
            }
            relax();
        }
        long before = now_ns();
        if (before > deadline)
            return 0;
        sched_yield();
        long after = now_ns();
        if (after - before > Y9K_TEAM_PREEMPTED_NS) {
            long b = __atomic_load_n(&backoff_ns, __ATOMIC_RELAXED);
            __atomic_store_n(&quiet_after, after + b, __ATOMIC_RELAXED);
            if (b < Y9K_TEAM_BACKOFF_MAX_NS)
                __atomic_store_n(&backoff_ns, 2 * b, __ATOMIC_RELAXED);
            return done(v, old);
        }
    }
}

static int generation_moved(const void *v, long old)
{
    return __atomic_load_n((const unsigned long *) v, __ATOMIC_ACQUIRE) != (unsigned long) old;
}

static int reached_zero(const void *v, long unused)
{
    (void) unused;
    return __atomic_load_n((const int *) v, __ATOMIC_ACQUIRE) == 0;
}

static void *worker_main(void *arg)
{
    int member = (int) (long) arg;
    /* not the generation now: the job it was started for may have begun already */
    unsigned long seen = born_at[member];
    for (;;) {
        if (!spin_until(&generation, (long) seen, generation_moved)) {
            /* sleepers first, then the check: the caller bumps generation first, then looks
               at sleepers, so one of the two sees the other (both sequentially consistent) */
            pthread_mutex_lock(&sleep_lock);
            __atomic_add_fetch(&sleepers, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&generation, __ATOMIC_SEQ_CST) == seen)
                pthread_cond_wait(&work_cond, &sleep_lock);
            __atomic_sub_fetch(&sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
        if (member < members_now)
            job_now(ctx_now, member, members_now);
        if (__atomic_sub_fetch(&pending, 1, __ATOMIC_SEQ_CST) == 0
                && __atomic_load_n(&caller_sleeping, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&sleep_lock);
            pthread_cond_broadcast(&done_cond);
            pthread_mutex_unlock(&sleep_lock);
        }
    }
    return NULL;
}

/* a forked child has none of the parent's workers: it starts its own */
static void before_fork(void) { pthread_mutex_lock(&run_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&run_lock); }
static void after_fork_child(void)
{
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&work_cond, NULL);
    pthread_cond_init(&done_cond, NULL);
    workers = 0;
    sleepers = caller_sleeping = pending = 0;
    pthread_mutex_unlock(&run_lock);
}

static void read_settings(void)
{
    const char *s = getenv("YOLO9000_SPIN_US");
    long us = Y9K_TEAM_SPIN_US_DEFAULT;
    if (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end == '\0' && v >= 0)
            us = v;
    }
    spin_ns = us * 1000;
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* start workers up to `wanted`; how many there are (fewer if the system refuses threads) */
static int start_workers(int wanted)
{
    sigset_t all, old;
    sigfillset(&all);
    /* the workers block every signal: Python's handlers belong to the main thread */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (workers < wanted) {
        pthread_t t;
        pthread_attr_t attr;
        born_at[workers + 1] = generation;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int failed = pthread_create(&t, &attr, worker_main, (void *) (long) (workers + 1));
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return workers;
}

void y9k_team_run(int members, y9k_team_job job, void *ctx)
{
    if (members > Y9K_TEAM_MAX)
        members = Y9K_TEAM_MAX;
    if (members <= 1 || pthread_mutex_trylock(&run_lock) != 0) {
        job(ctx, 0, 1);
        return;
    }
    if (spin_ns < 0)
        read_settings();
    if (workers < members - 1 && start_workers(members - 1) < members - 1)
        members = workers + 1;
    if (members <= 1) {
        pthread_mutex_unlock(&run_lock);
        job(ctx, 0, 1);
        return;
    }
    job_now = job;
    ctx_now = ctx;
    members_now = members;
    __atomic_store_n(&pending, workers, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&generation, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&sleep_lock);
        pthread_cond_broadcast(&work_cond);
        pthread_mutex_unlock(&sleep_lock);
    }
    job(ctx, 0, members);
    if (!spin_until(&pending, 0, reached_zero)) {
        pthread_mutex_lock(&sleep_lock);
        __atomic_store_n(&caller_sleeping, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&pending, __ATOMIC_SEQ_CST) != 0)
            pthread_cond_wait(&done_cond, &sleep_lock);
        __atomic_store_n(&caller_sleeping, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&sleep_lock);
    }
    pthread_mutex_unlock(&run_lock);
}

int y9k_team_workers(void) { return workers; }

long y9k_team_spin_us(void)
{
    if (spin_ns < 0)
        return -1;
    return spin_ns / 1000;
}
#endif
