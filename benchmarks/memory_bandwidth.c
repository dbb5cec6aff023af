// How fast this machine reads memory: the floor under any engine that reads a model's weights once per
// call (a short text reads 151 MB of float32 weights). Sums a buffer of SIZE_MB megabytes, larger than
// the L3 cache, on every OpenMP thread, six times, and prints GB/s.
//
//   gcc -O3 -march=native -ffast-math -fopenmp benchmarks/memory_bandwidth.c -o /tmp/memory_bandwidth
//   OMP_NUM_THREADS=2 /tmp/memory_bandwidth [SIZE_MB]
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    size_t megabytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 151;
    size_t count = megabytes * 1000000 / sizeof(float) / 64 * 64;
    float *values = aligned_alloc(64, count * sizeof(float));
    if (values == NULL || count == 0) return 1;
    for (size_t i = 0; i < count; i++) values[i] = (float)(i % 1000) * 1e-3f;
    for (int run = 0; run < 6; run++) {
        double start = now();
        float total = 0;
        // -ffast-math lets the compiler split the sum over vector registers: the loop is then bound
        // by loads from memory, not by the latency of additions.
#pragma omp parallel for reduction(+ : total)
        for (size_t i = 0; i < count; i++) total += values[i];
        double seconds = now() - start;
        printf("%zu MB in %.2f ms: %.1f GB/s (sum %g)\n", megabytes, seconds * 1e3,
               count * sizeof(float) / seconds / 1e9, total);
    }
    free(values);
    return 0;
}
