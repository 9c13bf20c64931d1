#ifndef STEGASTAMP_THREAD_AFFINITY_H
#define STEGASTAMP_THREAD_AFFINITY_H
#include <pthread.h>

/// The CPU the calling thread runs on, or -1 where unknown.
int stegastamp_current_cpu(void);

/// Restricts `thread` to the process's CPUs other than `cpu`. Returns 0 on success, -1 when that
/// leaves no CPU or the system refuses (nothing changed). Linux only; elsewhere always -1.
int stegastamp_keep_thread_off_cpu(pthread_t thread, int cpu);

#endif
