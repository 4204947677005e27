// The few Linux interfaces that `import Glibc` does not bring into Swift, or brings in awkwardly.
// Everything here is a thin pass-through; all policy lives in Swift (Reactor/Syscalls.swift).
#ifndef CGHOSTSYNC_SHIMS_H
#define CGHOSTSYNC_SHIMS_H

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

static const uint32_t gs_EPOLLIN = EPOLLIN;
static const uint32_t gs_EPOLLOUT = EPOLLOUT;
static const uint32_t gs_EPOLLERR = EPOLLERR;
static const uint32_t gs_EPOLLHUP = EPOLLHUP;
static const uint32_t gs_EPOLLRDHUP = EPOLLRDHUP;
static const int gs_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
static const int gs_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
static const int gs_EPOLL_CTL_DEL = EPOLL_CTL_DEL;
static const int gs_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int gs_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int gs_SOCK_STREAM = SOCK_STREAM;
static const int gs_EFD_NONBLOCK = EFD_NONBLOCK;
static const int gs_EFD_CLOEXEC = EFD_CLOEXEC;
static const int gs_IOV_MAX = 1024;

/// accept4(2): needs _GNU_SOURCE, which must not be defined for the whole module.
int gs_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int gs_pin_current_thread(int cpu);

// The index of the GhostSync worker running the calling thread, or -1: a thread-local that
// Swift cannot declare itself. Set once by each worker thread when it starts.
int gs_current_worker_index(void);
void gs_set_current_worker_index(int index);

/// Writes the CPUs of the calling thread's affinity mask into `cpus` (at most `capacity`),
/// returns how many there are, or -1 with errno set.
int gs_current_affinity(int *cpus, int capacity);

/// Names the calling thread (at most 15 bytes are kept by Linux). Returns 0 or an errno value.
int gs_name_current_thread(const char *name);

// The relay's hot syscalls, made with syscall(2) rather than through glibc's wrappers. Those
// wrappers are pthread cancellation points: in a multi-threaded process each call flips the
// thread's cancellation state with two atomic read-modify-writes around the syscall, about 1.5 %
// of a worker's samples on S2. GhostSync never cancels threads, so nothing is lost. Same
// contract as the libc calls: the result, or -1 with errno set.

static inline ssize_t gs_send(int fd, const void *buffer, size_t length, int flags) {
    return syscall(SYS_sendto, fd, buffer, length, flags, NULL, 0);
}

static inline ssize_t gs_sendmsg(int fd, const struct msghdr *message, int flags) {
    return syscall(SYS_sendmsg, fd, message, flags);
}

static inline ssize_t gs_read(int fd, void *buffer, size_t length) {
    return syscall(SYS_read, fd, buffer, length);
}

/// epoll_wait as epoll_pwait with no signal mask (the one form every architecture has).
static inline int gs_epoll_wait(int epoll, struct epoll_event *events, int capacity, int timeout) {
    return (int)syscall(SYS_epoll_pwait, epoll, events, capacity, timeout, NULL, (size_t)(_NSIG / 8));
}

#endif
