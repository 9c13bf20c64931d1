// The machine's FMA peak: every core runs chains of independent fused multiply-adds (12 register
// accumulators, enough to cover the FMA latency on the CPUs seen here) at 256 and 512 bits.
// Build and run: Benchmarks/fma-peak/run.sh   (prints GFLOP/s for 1 thread and all threads)
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITER 200000000L
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__attribute__((target("avx2,fma"))) static void *run256(void *out) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < ITER / 12; n++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float s = 0; for (int i = 0; i < 12; i++) s += a[i][0];
    *(float *)out = s; return NULL;
}

__attribute__((target("avx512f"))) static void *run512(void *out) {
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITER / 12; n++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    float s = 0; for (int i = 0; i < 12; i++) s += a[i][0];
    *(float *)out = s; return NULL;
}

static double measure(void *(*f)(void *), int threads, int lanes) {
    pthread_t t[64]; float out[64];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, f, &out[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double s = now() - t0;
    return 2.0 * lanes * (double)(ITER / 12 * 12) * threads / s / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    __builtin_cpu_init();
    printf("avx2 fma, 1 thread: %.1f GFLOP/s; %d threads: %.1f GFLOP/s\n", measure(run256, 1, 8), threads, measure(run256, threads, 8));
    if (__builtin_cpu_supports("avx512f"))
        printf("avx512 fma, 1 thread: %.1f GFLOP/s; %d threads: %.1f GFLOP/s\n", measure(run512, 1, 16), threads, measure(run512, threads, 16));
    return 0;
}
