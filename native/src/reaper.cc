// The subreaper: PR_SET_CHILD_SUBREAPER and the sweep that reaps untracked
// children. The split with pidfdWait() is described in tracked.cc.
#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "tracked.h"

namespace tsrun {
namespace {

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) ThrowErrno(env, errno, "prctl");
  return env.Undefined();
}

// Reads a whole /proc file. false when the file is gone (a thread that exited
// between listing and opening); throws on any other failure.
bool ReadProcFile(Napi::Env env, const std::string& path, std::string& out) {
  const int fd = RetryOnEintr([&] { return open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) return false;
    ThrowErrno(env, errno, "open", path);
  }
  char buffer[4096];
  for (;;) {
    const ssize_t n = RetryOnEintr([&] { return read(fd, buffer, sizeof buffer); });
    if (n < 0) {
      const int err = errno;
      close(fd);
      if (err == ESRCH) return false;
      ThrowErrno(env, err, "read", path);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Every child of this process, from /proc/self/task/<tid>/children of each thread.
std::vector<pid_t> ListChildren(Napi::Env env) {
  const std::string taskDir = "/proc/self/task";
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(taskDir.c_str()), closedir);
  if (!dir) ThrowErrno(env, errno, "opendir", taskDir);
  std::vector<pid_t> children;
  bool sawOwnThread = false;
  const std::string self = std::to_string(gettid());
  errno = 0;
  while (const dirent* entry = readdir(dir.get())) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const std::string path = taskDir + "/" + entry->d_name + "/children";
    std::string text;
    if (!ReadProcFile(env, path, text)) {
      // Without CONFIG_PROC_CHILDREN no thread has the file, and orphans would be
      // silently missed: refuse instead of sweeping blind.
      if (self == entry->d_name) ThrowErrno(env, ENOENT, "open", path);
      continue;
    }
    if (self == entry->d_name) sawOwnThread = true;
    const char* cursor = text.c_str();
    for (;;) {
      char* end = nullptr;
      const long pid = std::strtol(cursor, &end, 10);
      if (end == cursor) break;
      children.push_back(static_cast<pid_t>(pid));
      cursor = end;
    }
  }
  if (errno != 0) ThrowErrno(env, errno, "readdir", taskDir);
  if (!sawOwnThread) ThrowErrno(env, ENOENT, "open", taskDir + "/" + self + "/children");
  return children;
}

struct Reaped {
  pid_t pid;
  int code;
  int status;
};

// Reaps `pid` if it has exited. Expects the tracked lock held and `pid` untracked.
void ReapIfExited(Napi::Env env, pid_t pid, std::vector<Reaped>& reaped) {
  siginfo_t exit{};
  if (RetryOnEintr([&] { return waitid(P_PID, static_cast<id_t>(pid), &exit,
                                       WEXITED | WNOHANG | __WALL); }) != 0) {
    if (errno == ECHILD) return;  // not (or no longer) ours: nothing to collect
    ThrowErrno(env, errno, "waitid");
  }
  if (exit.si_pid == pid) reaped.push_back({pid, exit.si_code, exit.si_status});
}

Napi::Value ReapOrphans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Reaped> reaped;
  try {
    std::lock_guard<std::mutex> lock(tracked::Lock());
    bool trackedZombieAhead = false;
    // 1. Fast path: reap the first waitable child while it is untracked.
    for (;;) {
      siginfo_t head{};
      if (RetryOnEintr([&] { return waitid(P_ALL, 0, &head, WEXITED | WNOHANG | WNOWAIT | __WALL); }) != 0) {
        if (errno == ECHILD) break;  // no children at all
        ThrowErrno(env, errno, "waitid");
      }
      if (head.si_pid == 0) break;  // children, but none has exited
      if (tracked::Contains(head.si_pid)) {
        trackedZombieAhead = true;
        break;
      }
      const size_t before = reaped.size();
      ReapIfExited(env, head.si_pid, reaped);
      if (reaped.size() == before) break;  // cannot happen (only we reap); never spin
    }
    // 2. A tracked zombie hides the rest from waitid(P_ALL): ask each untracked child.
    if (trackedZombieAhead) {
      for (const pid_t pid : ListChildren(env)) {
        if (!tracked::Contains(pid)) ReapIfExited(env, pid, reaped);
      }
    }
  } catch (const Napi::Error&) {
    // Statuses already collected exist nowhere else: hand them over and let the
    // next sweep meet the error again, rather than lose them to this one.
    if (reaped.empty()) throw;
  }
  Napi::Array result = Napi::Array::New(env, reaped.size());
  for (size_t i = 0; i < reaped.size(); ++i) {
    Napi::Object exit = Napi::Object::New(env);
    exit.Set("pid", Napi::Number::New(env, reaped[i].pid));
    exit.Set("status", WaitStatusFromSiginfo(env, reaped[i].code, reaped[i].status));
    result.Set(static_cast<uint32_t>(i), exit);
  }
  return result;
}

}  // namespace

void InitReaper(Napi::Env env, Napi::Object exports) {
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper, "setChildSubreaper"));
  exports.Set("reapOrphans", Napi::Function::New(env, ReapOrphans, "reapOrphans"));
}

}  // namespace tsrun
