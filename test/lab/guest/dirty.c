/*
 * ferry lab guest workload: dirties guest memory at a set rate.
 *   dirty <MiB> <MiB/s> [cpu] [after=<s>]
 * Writes one byte per 4 KiB page over the working set, round-robin, so every
 * write dirties a whole page: "rate" counts dirtied page bytes per second.
 * Pacing busy-waits on clock_gettime: sleeping (usleep) between writes was
 * seen to crash TCG guests after migration.
 *
 * Clock-paced, a write costs next to nothing, so the dirtier keeps its rate
 * until QEMU's auto-converge throttle takes nearly all of the vCPU. With
 * "cpu", every page write comes with calibrated work, so the vCPU at full
 * speed dirties only CPU_HEADROOM x the rate, and a throttle slows it as it
 * slows a workload whose writes are its work (a database, a cache).
 * With "after=<s>", the dirtying starts that many seconds after the start
 * line (a guest that gets busy once its migration has begun).
 *
 * Lost-write check: `hot` (in .bss) and a register copy are bumped together on
 * every batch; if a migration delivers a stale copy of hot's page, they differ
 * on the destination and "ferry-dirty lost-write" is printed (a cheap canary:
 * it never fired in testing, since a user page leaves QEMU's TLB at the next
 * context switch; the kernel stack is what came back stale). QEMU < 9.0 TCG
 * loses such writes (stores through TLB entries that stay writable after the
 * migration bitmap sync, fixed upstream by 03bfc2188f "physmem: Fix migration
 * dirty bitmap coherency with TCG memory access"); the lab guest's RAM is
 * sized so that QEMU takes its correct path (ramWorkaroundArgs in guest.ts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define BATCH 16UL
#define CPU_HEADROOM 1.1
#define CALIBRATE_S 0.3

static volatile unsigned long hot;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static volatile unsigned long sink;

static void work(unsigned long units) {
  for (unsigned long j = 0; j < units; j++) sink += j;
}

/* Pages per second the unpaced loop writes with `units` of work per page. */
static double full_speed(volatile unsigned char *buf, size_t pages, unsigned long units) {
  size_t i = 0, done = 0;
  double t0 = now(), elapsed;
  do {
    for (size_t k = 0; k < BATCH; k++) {
      buf[i * PAGE] = 1;
      work(units);
      if (++i == pages) i = 0;
    }
    done += BATCH;
  } while ((elapsed = now() - t0) < CALIBRATE_S);
  return (double)done / elapsed;
}

/* Work per page that brings the unpaced loop down to `pps` pages per second. */
static unsigned long calibrate(volatile unsigned char *buf, size_t pages, double pps) {
  double bare = full_speed(buf, pages, 0);
  if (bare <= pps) return 0;
  unsigned long probe = 1000;
  double probed = full_speed(buf, pages, probe);
  /* Seconds of work per unit, from the probe's slowdown over the bare loop. */
  double unit_s = (1.0 / probed - 1.0 / bare) / (double)probe;
  if (unit_s <= 0) return 0;
  return (unsigned long)((1.0 / pps - 1.0 / bare) / unit_s);
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
  int cpu_bound = 0;
  double after = 0;
  for (int a = 3; a < argc; a++) {
    if (strcmp(argv[a], "cpu") == 0) cpu_bound = 1;
    else if (strncmp(argv[a], "after=", 6) == 0) after = strtod(argv[a] + 6, NULL);
  }
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
  unsigned long units = cpu_bound && pps > 0 ? calibrate(buf, pages, pps * CPU_HEADROOM) : 0;
  if (cpu_bound)
    printf("ferry-dirty start mib=%lu rate=%g cpu-bound full-speed=%.1f\n", mib, rate,
           full_speed(buf, pages, units) * (double)PAGE / 1048576.0);
  else
    printf("ferry-dirty start mib=%lu rate=%g\n", mib, rate);
  fflush(stdout);
  /* Busy, like the pacing below: no sleeping (see the top). */
  for (double until = now() + after; now() < until;) {
  }

  size_t i = 0;
  unsigned char v = 2;
  unsigned long mirror = 0;
  double t0 = now();
  double done = 0; /* pages written since t0 */
  for (;;) {
    for (size_t k = 0; k < BATCH; k++) {
      buf[i * PAGE] = v;
      work(units);
      if (++i == pages) {
        i = 0;
        v++;
      }
    }
    done += BATCH;
    hot++;
    if (hot != ++mirror) {
      printf("ferry-dirty lost-write expected=%lu found=%lu\n", mirror, (unsigned long)hot);
      fflush(stdout);
      mirror = hot;
    }
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
