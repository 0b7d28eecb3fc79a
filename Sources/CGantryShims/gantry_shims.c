#define _GNU_SOURCE
#include "gantry_shims.h"

#include <fcntl.h>

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

int gantry_set_child_subreaper(void) {
#ifdef __linux__
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int gantry_punch_hole(int fd, long long offset, long long length) {
#ifdef __linux__
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int gantry_peek_exited_child(void) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return errno == ECHILD ? 0 : -1;
    }
    return info.si_pid;
}

#ifdef __linux__
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

static int gantry_capget(struct __user_cap_data_struct data[2]) {
    struct __user_cap_header_struct header;
    memset(&header, 0, sizeof header);
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    memset(data, 0, 2 * sizeof data[0]);
    return (int)syscall(SYS_capget, &header, data);
}
#endif

int gantry_set_not_dumpable(void) {
#ifdef __linux__
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int gantry_dumpable(void) {
#ifdef __linux__
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int gantry_drop_inheritable_capabilities(void) {
#ifdef __linux__
#ifdef PR_CAP_AMBIENT
    // EINVAL: a kernel older than 4.3 has no ambient set, so there is nothing to clear.
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return -1;
    }
#endif
    struct __user_cap_data_struct data[2];
    if (gantry_capget(data) != 0) {
        return -1;
    }
    if (data[0].inheritable == 0 && data[1].inheritable == 0) {
        return 0;
    }
    data[0].inheritable = 0;
    data[1].inheritable = 0;
    struct __user_cap_header_struct header;
    memset(&header, 0, sizeof header);
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    return (int)syscall(SYS_capset, &header, data);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int gantry_has_effective_capability(int cap) {
#ifdef __linux__
    if (cap < 0 || cap > 63) {
        return 0;
    }
    struct __user_cap_data_struct data[2];
    if (gantry_capget(data) != 0) {
        return 0;
    }
    return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
#else
    (void)cap;
    return 0;
#endif
}

int gantry_can_switch_users(void) {
#ifdef __linux__
    if (!gantry_has_effective_capability(CAP_SETUID) || !gantry_has_effective_capability(CAP_SETGID)) {
        return 0;
    }
    if (geteuid() == 0) {
        return 1;  // root keeps its capabilities across the exec of setpriv
    }
#ifdef PR_CAP_AMBIENT
    // Not root: setpriv receives the capabilities only through the ambient set.
    return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SETUID, 0, 0) == 1
        && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SETGID, 0, 0) == 1;
#else
    return 0;
#endif
#else
    return geteuid() == 0;
#endif
}
