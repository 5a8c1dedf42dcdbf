// The set of tracked children: the process-wide half of the exactly-once exit
// split. The design is written out in tracked.cc.
#pragma once

#include <sys/types.h>

#include <mutex>

namespace tsrun {
namespace tracked {

// Held across every step that reads or changes the set together with a reap or a
// spawn, so "spawned and tracked" and "reaped and untracked" are each atomic for
// every other caller (worker threads included, though the daemon uses one thread).
std::mutex& Lock();

// The calls below expect Lock() to be held.
void Add(pid_t pid);
void Remove(pid_t pid);
bool Contains(pid_t pid);

}  // namespace tracked
}  // namespace tsrun
