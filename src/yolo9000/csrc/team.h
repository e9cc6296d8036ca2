/* The team (team.c): the threads the inference kernels share their work out to. */
#ifndef Y9K_TEAM_H
#define Y9K_TEAM_H

/* one member's part of a job: member 0 is the caller, 1 .. members-1 the team's workers */
typedef void (*y9k_team_job)(void *ctx, int member, int members);

/* job(ctx, m, members) on `members` threads at once (the caller and members - 1 workers),
   returning when every member has returned. A job must give the same result whatever the
   number of members: a call made while another is running (another thread's, or from inside
   a job) runs it with one member, the caller alone. */
void y9k_team_run(int members, y9k_team_job job, void *ctx);

/* the workers started so far, and how long an idle one keeps looking for work before it
   sleeps (YOLO9000_SPIN_US, read at the first run) */
int y9k_team_workers(void);
long y9k_team_spin_us(void);

/* the first of the next `chunk` items of a shared counter (dynamic sharing: a member that
   loses its core on a busy machine leaves its items to the others) */
static inline long y9k_team_take(long *next, long chunk)
{
    return __atomic_fetch_add(next, chunk, __ATOMIC_RELAXED);
}

/* member's contiguous share [*begin, *end) of n items split evenly (static sharing) */
static inline void y9k_team_share(long n, int member, int members, long *begin, long *end)
{
    *begin = n * member / members;
    *end = n * (member + 1) / members;
}

#endif
