// sched_getcpu and the affinity calls are GNU extensions: Swift's Glibc module does not show them.
#define _GNU_SOURCE
#include "thread_affinity.h"
#ifdef __linux__
#include <sched.h>

int stegastamp_current_cpu(void) { return sched_getcpu(); }

int stegastamp_keep_thread_off_cpu(pthread_t thread, int cpu) {
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return -1;
    if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_CLR(cpu, &allowed);
    if (CPU_COUNT(&allowed) == 0) return -1;
    return pthread_setaffinity_np(thread, sizeof allowed, &allowed) == 0 ? 0 : -1;
}
#else
int stegastamp_current_cpu(void) { return -1; }
int stegastamp_keep_thread_off_cpu(pthread_t thread, int cpu) { (void)thread; (void)cpu; return -1; }
#endif
