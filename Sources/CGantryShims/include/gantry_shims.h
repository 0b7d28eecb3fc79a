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

#endif
