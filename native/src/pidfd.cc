// pidfd_open, pidfd_send_signal and the pidfd wait: waiting for and signalling a
// process by pidfd, so a recycled pid is never mistaken for the process we meant.
#include "pidfd.h"

#include <signal.h>
#include <unistd.h>

#include <climits>

#include "common.h"
#include "tracked.h"

namespace tsrun {
namespace {

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto pid = static_cast<pid_t>(IntegerArg(info, 0, "pid", 1, INT_MAX));
  std::lock_guard<std::mutex> lock(tracked::Lock());
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, PIDFD_NONBLOCK));
  if (fd < 0) ThrowErrno(env, errno, "pidfd_open");
  // Is it our child? WNOWAIT: ask without collecting. ECHILD means it is not (a
  // stranger, or a process someone else parents); anything else is a real error.
  siginfo_t probe{};
  if (RetryOnEintr([&] { return waitid(static_cast<idtype_t>(P_PIDFD), fd, &probe,
                                       WEXITED | WNOHANG | WNOWAIT | __WALL); }) == 0) {
    tracked::Add(pid);
  } else if (errno != ECHILD) {
    const int err = errno;
    close(fd);
    ThrowErrno(env, err, "waitid");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "pidfd");
  const int signal = static_cast<int>(IntegerArg(info, 1, "signal", 0, 64));
  if (RetryOnEintr([&] { return syscall(SYS_pidfd_send_signal, fd, signal, nullptr, 0U); }) != 0) {
    ThrowErrno(env, errno, "pidfd_send_signal");
  }
  return env.Undefined();
}

Napi::Value PidfdWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "pidfd");
  std::lock_guard<std::mutex> lock(tracked::Lock());
  siginfo_t exit{};  // si_pid stays 0 when WNOHANG finds the child still running
  if (RetryOnEintr([&] { return waitid(static_cast<idtype_t>(P_PIDFD), fd, &exit,
                                       WEXITED | WNOHANG | __WALL); }) != 0) {
    ThrowErrno(env, errno, "waitid");
  }
  if (exit.si_pid == 0) return env.Undefined();
  // Reaped: the pid may be recycled from now on, so it leaves the set in the
  // same locked step.
  tracked::Remove(exit.si_pid);
  return WaitStatusFromSiginfo(env, exit.si_code, exit.si_status);
}

}  // namespace

void InitPidfd(Napi::Env env, Napi::Object exports) {
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal, "pidfdSendSignal"));
  exports.Set("pidfdWait", Napi::Function::New(env, PidfdWait, "pidfdWait"));
}

}  // namespace tsrun
