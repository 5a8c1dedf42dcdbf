// Plain fd syscalls Node lacks or hides: fifos opened non-blocking, dup2 onto a
// chosen number, close, eventfd, pipe, and the count of unread bytes (FIONREAD).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace tsrun {
namespace {

// open(path, mode | O_NONBLOCK | O_CLOEXEC). O_NONBLOCK is what lets a fifo open
// without waiting for its other end; 'write' with no reader fails with ENXIO,
// reported as is.
Napi::Value OpenFifo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  const std::string mode = StringArg(info, 1, "mode");
  int access;
  if (mode == "read") {
    access = O_RDONLY;
  } else if (mode == "write") {
    access = O_WRONLY;
  } else if (mode == "readwrite") {
    access = O_RDWR;
  } else {
    Napi::TypeError error = Napi::TypeError::New(env, "The \"mode\" argument must be 'read', 'write' or 'readwrite'; received '" + mode + "'");
    error.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw error;
  }
  const int fd = RetryOnEintr([&] { return open(path.c_str(), access | O_NONBLOCK | O_CLOEXEC | O_NOCTTY); });
  if (fd < 0) ThrowErrno(env, errno, "open", path);
  return Napi::Number::New(env, fd);
}

// dup2 semantics (the copy is not close-on-exec: it is meant for fds like 2 that
// a later exec keeps); dup3 would refuse oldFd == newFd, dup2 accepts it.
Napi::Value Dup2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int oldFd = FdArg(info, 0, "oldFd");
  const int newFd = FdArg(info, 1, "newFd");
  int result;
  do {
    result = dup2(oldFd, newFd);
  } while (result < 0 && (errno == EINTR || errno == EBUSY));
  if (result < 0) ThrowErrno(env, errno, "dup2");
  return env.Undefined();
}

// EINTR is not retried: Linux has released the fd by then, and a retry could
// close an fd another thread just opened under the same number.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  if (close(fd) != 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

Napi::Value EventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowErrno(env, errno, "eventfd");
  return Napi::Number::New(env, fd);
}

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno(env, errno, "pipe2");
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0U, Napi::Number::New(env, fds[0]));
  result.Set(1U, Napi::Number::New(env, fds[1]));
  return result;
}

// ioctl(FIONREAD): the bytes waiting to be read. For a pipe or fifo that is the
// pipe's buffer, whichever end `fd` is (the kernel's pipe_ioctl does not look at the
// access mode), so a writer can see whether its reader has caught up. Sockets and
// terminals answer too; an fd without such a count (eventfd, pidfd) fails with ENOTTY.
Napi::Value PendingBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  int count = 0;
  if (RetryOnEintr([&] { return ioctl(fd, FIONREAD, &count); }) != 0) ThrowErrno(env, errno, "ioctl");
  return Napi::Number::New(env, count);
}

}  // namespace

void InitFds(Napi::Env env, Napi::Object exports) {
  exports.Set("openFifo", Napi::Function::New(env, OpenFifo, "openFifo"));
  exports.Set("dup2", Napi::Function::New(env, Dup2, "dup2"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("pipe", Napi::Function::New(env, Pipe, "pipe"));
  exports.Set("pendingBytes", Napi::Function::New(env, PendingBytes, "pendingBytes"));
}

}  // namespace tsrun
