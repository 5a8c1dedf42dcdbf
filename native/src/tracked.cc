/*
 * Exactly-once exits: the split between pidfdWait() and reapOrphans().
 *
 * A child's exit status can be collected once. Two collectors exist:
 *
 *  - pidfdWait(pidfd): waitid(P_PIDFD) for a process the caller holds a pidfd
 *    of. Its status goes to whoever owns that pidfd (core's process object).
 *  - reapOrphans(): the subreaper's sweep for every other child: grandchildren
 *    reparented to us (a daemonizing process inside a container's exec, runc's
 *    own helpers), and a container init whose pid file core has not read yet.
 *    Without it those stay zombies forever.
 *
 * The rule that keeps them apart: every pid in the TRACKED set below is reaped
 * only by pidfdWait(); reapOrphans() never collects a tracked pid.
 *
 *  - spawn() adds the child while still holding the lock it cloned under, so no
 *    sweep can run between the clone and the insert (clone3/clone CLONE_PIDFD
 *    also hands us the pidfd atomically: there is no moment at which the pid
 *    exists without a pidfd).
 *  - pidfdOpen(pid) adds the pid when it is our child. It asks the kernel
 *    rather than /proc: waitid(P_PIDFD, fd, WEXITED|WNOHANG|WNOWAIT) fails with
 *    ECHILD for anything that is not our child and collects nothing otherwise.
 *  - pidfdWait() removes the pid in the same locked step that reaped it. Only then
 *    can the kernel recycle the pid, so a recycled pid never meets a stale entry.
 *
 * How the sweep finds untracked zombies without touching tracked ones:
 * waitid(P_ALL, WNOWAIT) only ever shows the FIRST waitable child, so a tracked
 * zombie whose owner has not called pidfdWait() yet would hide every zombie
 * behind it. The sweep therefore
 *   1. peeks with waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT) and, while the head is
 *      untracked, reaps exactly that pid with waitid(P_PID) (the common case:
 *      no tracked zombie pending, so a sweep costs one or two syscalls);
 *   2. once a tracked zombie is at the head, lists every child from
 *      /proc/self/task/<tid>/children (CONFIG_PROC_CHILDREN; children hang off
 *      the thread that created them, and reparented orphans off some thread
 *      of ours, hence every tid) and tries waitid(P_PID, pid, WEXITED|WNOHANG)
 *      on each untracked one. Running children answer "nothing yet" and stay.
 * Only this thread (under the lock) reaps, so no pid in the list can be reaped
 * and reused between listing and waiting.
 *
 * How the caller learns a sweep is due: SIGCHLD. Node delivers it through
 * process.on('SIGCHLD') (libuv installs a process-wide handler and turns the
 * signal into a loop callback; verified on Node 20 in reaper.test.ts). Signals
 * coalesce, so one SIGCHLD may stand for many exits; that is fine because one
 * sweep takes every zombie there is. A zombie that appears while a sweep is running raises a new SIGCHLD after
 * it is linked into our children list, so it is never missed. The caller should
 * also sweep once right after subscribing (zombies that predate the listener).
 * A signalfd is not offered: it would need SIGCHLD blocked in every thread of
 * Node, which the addon cannot arrange, or the signal is lost to another thread.
 *
 * What the caller must hold up: (1) nobody else reaps: never child_process in
 * the same process (libuv waits for its own pids only, but our sweep would take
 * their statuses, as would they ours); (2) every tracked child is eventually
 * pidfdWait()ed, or its zombie stays (the sweep will not take it); (3) a pid
 * reported by reapOrphans() is gone: pidfdOpen() on it may open a stranger.
 */
#include "tracked.h"

#include <unordered_set>

namespace tsrun {
namespace tracked {
namespace {

std::unordered_set<pid_t>& Set() {
  static auto* set = new std::unordered_set<pid_t>();  // never destroyed: outlives every env
  return *set;
}

}  // namespace

std::mutex& Lock() {
  static auto* lock = new std::mutex();
  return *lock;
}

void Add(pid_t pid) { Set().insert(pid); }
void Remove(pid_t pid) { Set().erase(pid); }
bool Contains(pid_t pid) { return Set().count(pid) != 0; }

}  // namespace tracked
}  // namespace tsrun
