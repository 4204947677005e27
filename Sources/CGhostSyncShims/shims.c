// _GNU_SOURCE only in this file: defining it for Swift's view of Glibc changes accept()'s signature.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CGhostSyncShims.h"

int gs_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

static _Thread_local int current_worker_index = -1;

int gs_current_worker_index(void) {
    return current_worker_index;
}

void gs_set_current_worker_index(int index) {
    current_worker_index = index;
}

int gs_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int gs_current_affinity(int *cpus, int capacity) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set)) {
            if (count < capacity) cpus[count] = cpu;
            count++;
        }
    }
    return count;
}

int gs_name_current_thread(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

