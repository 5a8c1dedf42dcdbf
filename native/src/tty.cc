// Pseudo-terminals and window sizes.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <string>

#include "common.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace tsrun {
namespace {

Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int master = RetryOnEintr([] { return posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC); });
  if (master < 0) ThrowErrno(env, errno, "posix_openpt", "/dev/ptmx");
  const auto fail = [&](const char* call) {
    const int err = errno;
    close(master);
    ThrowErrno(env, err, call);
  };
  if (grantpt(master) != 0) fail("grantpt");
  if (unlockpt(master) != 0) fail("unlockpt");
  char name[128];
  if (const int err = ptsname_r(master, name, sizeof name); err != 0) {
    errno = err;
    fail("ptsname_r");
  }
  // TIOCGPTPEER opens the peer through the master itself, immune to a /dev/pts
  // that is not the master's devpts instance; fall back to the path before 4.13.
  int slave = RetryOnEintr([&] { return ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC); });
  if (slave < 0 && (errno == EINVAL || errno == ENOTTY)) {
    slave = RetryOnEintr([&] { return open(name, O_RDWR | O_NOCTTY | O_CLOEXEC); });
  }
  if (slave < 0) fail("open");
  const int flags = fcntl(master, F_GETFL);
  if (flags < 0 || fcntl(master, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int err = errno;
    close(slave);
    errno = err;
    fail("fcntl");
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("master", Napi::Number::New(env, master));
  result.Set("slave", Napi::Number::New(env, slave));
  result.Set("slavePath", Napi::String::New(env, name));
  return result;
}

Napi::Value SetWindowSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  const Napi::Object size = ObjectArg(info, 1, "size");
  winsize window{};
  window.ws_row = static_cast<unsigned short>(ToInteger(env, size.Get("rows"), "size.rows", 0, 65535));
  window.ws_col = static_cast<unsigned short>(ToInteger(env, size.Get("cols"), "size.cols", 0, 65535));
  if (RetryOnEintr([&] { return ioctl(fd, TIOCSWINSZ, &window); }) != 0) ThrowErrno(env, errno, "ioctl");
  return env.Undefined();
}

Napi::Value GetWindowSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  winsize window{};
  if (RetryOnEintr([&] { return ioctl(fd, TIOCGWINSZ, &window); }) != 0) ThrowErrno(env, errno, "ioctl");
  Napi::Object result = Napi::Object::New(env);
  result.Set("rows", Napi::Number::New(env, window.ws_row));
  result.Set("cols", Napi::Number::New(env, window.ws_col));
  return result;
}

}  // namespace

void InitTty(Napi::Env env, Napi::Object exports) {
  exports.Set("openPty", Napi::Function::New(env, OpenPty, "openPty"));
  exports.Set("setWindowSize", Napi::Function::New(env, SetWindowSize, "setWindowSize"));
  exports.Set("getWindowSize", Napi::Function::New(env, GetWindowSize, "getWindowSize"));
}

}  // namespace tsrun
