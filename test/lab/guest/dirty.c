/*
 * ferry lab guest workload: dirties guest memory at a set rate.
 *   dirty <MiB> <MiB/s>
 * Writes one byte per 4 KiB page over the working set, round-robin, so every
 * write dirties a whole page: "rate" counts dirtied page bytes per second.
 * Pacing busy-waits on clock_gettime: sleeping (usleep) between writes was
 * seen to crash TCG guests after migration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define BATCH 16UL

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: dirty <MiB> <MiB/s>\n");
    return 2;
  }
  /* Lowest priority: the heartbeat shell must keep its once-a-second slot. */
  if (nice(19) == -1) perror("nice");
  unsigned long mib = strtoul(argv[1], NULL, 10);
  double rate = strtod(argv[2], NULL);
  size_t size = mib << 20;
  size_t pages = size / PAGE;
  if (pages == 0) return 2;
  volatile unsigned char *buf = mmap(NULL, size, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (buf == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  for (size_t p = 0; p < pages; p++) buf[p * PAGE] = 1;
  double pps = rate * 1048576.0 / (double)PAGE; /* pages per second */
  printf("ferry-dirty start mib=%lu rate=%g\n", mib, rate);
  fflush(stdout);

  size_t i = 0;
  unsigned char v = 2;
  double t0 = now();
  double done = 0; /* pages written since t0 */
  for (;;) {
    for (size_t k = 0; k < BATCH; k++) {
      buf[i * PAGE] = v;
      if (++i == pages) {
        i = 0;
        v++;
      }
    }
    done += BATCH;
    if (pps <= 0) continue;
    for (;;) {
      double elapsed = now() - t0;
      if (done <= elapsed * pps) {
        /* Behind by more than a second (guest paused, e.g. by a migration):
         * forgive the debt instead of bursting. */
        if (elapsed * pps - done > pps) {
          t0 = now();
          done = 0;
        }
        break;
      }
    }
  }
}
