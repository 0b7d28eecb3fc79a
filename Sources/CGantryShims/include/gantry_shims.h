#ifndef GANTRY_SHIMS_H
#define GANTRY_SHIMS_H

/// Makes the calling process a child subreaper (prctl(PR_SET_CHILD_SUBREAPER, 1)), so
/// descendants orphaned by their parent (a step's background process whose shell exited,
/// or one that setsid'd away) are re-parented to the agent instead of init, and stay the
/// agent's to find and kill. prctl is variadic, which Swift cannot call directly.
/// Returns 0 on success, -1 with errno set otherwise (e.g. not Linux).
int gantry_set_child_subreaper(void);

/// Frees the disk blocks of [offset, offset+length) in a file without changing its size
/// or the offsets of the rest (fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE),
/// a GNU extension Swift's Glibc module does not expose). Returns 0 or -1 with errno.
int gantry_punch_hole(int fd, long long offset, long long length);

/// The pid of one exited, not yet reaped child of the calling process, left waitable
/// (waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)): 0 when there is none, -1 with errno on
/// error. Lets the agent skip its orphan scan when it has no zombie child at all, without
/// stealing an exit status swift-subprocess is waiting for. Swift cannot reach siginfo_t's
/// si_pid, which lives in a union.
int gantry_peek_exited_child(void);

/// Makes the calling process non-dumpable (prctl(PR_SET_DUMPABLE, 0)): its /proc/<pid>
/// files (environ, mem, fd, ...) become owned by root and it cannot be ptrace-attached by
/// processes of the same user, so a step running as the agent's own user still cannot read
/// the agent's environment or memory. Children get a dumpable image again at execve.
/// Returns 0 or -1 with errno set.
int gantry_set_not_dumpable(void);

/// Whether the process is non-dumpable (1), dumpable (0 or 2), or -1 on error.
int gantry_dumpable(void);

/// Empties the ambient and inheritable capability sets while keeping the permitted and
/// effective ones, so a capability the agent was given (systemd AmbientCapabilities=) is
/// usable by the agent but lost by every program it execs: a step never inherits
/// CAP_SETUID or CAP_DAC_OVERRIDE. Returns 0 or -1 with errno set.
int gantry_drop_inheritable_capabilities(void);

/// 1 when the process can start children as another user through setpriv(1): CAP_SETUID
/// and CAP_SETGID effective and, unless it is root, also ambient (so the exec'd setpriv
/// has them). 0 otherwise.
int gantry_can_switch_users(void);

/// 1 when capability number `cap` (linux/capability.h) is in the effective set, else 0.
int gantry_has_effective_capability(int cap);

#endif
