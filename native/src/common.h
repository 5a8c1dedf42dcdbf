// Helpers shared by every part of the addon: errno-shaped errors, argument
// checks, EINTR retries. Nothing here holds state.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

namespace tsrun {

// Calls `call` until it stops failing with EINTR (the facade promises callers
// never see EINTR).
template <typename Call>
auto RetryOnEintr(Call call) -> decltype(call()) {
  decltype(call()) result;
  do {
    result = call();
  } while (result == -1 && errno == EINTR);
  return result;
}

// An Error shaped like Node's own errno errors (node:fs, libuv):
// message "ESRCH: no such process, pidfd_send_signal", code "ESRCH",
// errno -3 (negative, as Node's), syscall, and path when there is one.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string* path = nullptr);

// Throws ErrnoError (as a C++ exception that node-addon-api turns into a JS one).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall,
                             const std::string& path);

// Argument checks. Each throws a TypeError (code ERR_INVALID_ARG_TYPE) or a
// RangeError (code ERR_OUT_OF_RANGE) naming the argument, as Node's own do.
int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name);
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                   int64_t min, int64_t max);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t index, const char* name);
std::vector<int> FdArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                            int minFd);

// The same checks for a value already in hand (e.g. a property of an options
// object); `name` is used in the message.
int64_t ToInteger(Napi::Env env, Napi::Value value, const std::string& name, int64_t min,
                  int64_t max);
std::string ToString(Napi::Env env, Napi::Value value, const std::string& name);

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

// A WaitStatus object ({kind:'exited',code} | {kind:'signaled',signal,coreDumped})
// from the siginfo that waitid() filled in.
Napi::Object WaitStatusFromSiginfo(Napi::Env env, int siCode, int siStatus);

}  // namespace tsrun
