// Errors with Node's errno shape, so TS code handles native failures exactly
// like node:fs failures (`err.code === 'ESRCH'`).
#include <string.h>
#include <uv.h>

#include "common.h"

namespace tsrun {
namespace {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "E" + std::to_string(err);
}

// libuv's wording when libuv knows the code (what node:fs messages say), glibc's
// (first letter lowered, to read the same) for the few libuv lacks, e.g. ECHILD.
std::string ErrnoDescription(int err) {
  char buffer[256];
  uv_err_name_r(-err, buffer, sizeof buffer);
  if (strncmp(buffer, "Unknown system error", 20) != 0) {
    uv_strerror_r(-err, buffer, sizeof buffer);
    return buffer;
  }
  const char* description = strerrordesc_np(err);
  std::string text = description != nullptr ? description : "unknown error " + std::to_string(err);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z' &&
      !(text.size() > 1 && text[1] >= 'A' && text[1] <= 'Z')) {
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  }
  return text;
}

}  // namespace

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const std::string* path) {
  const std::string code = ErrnoName(err);
  std::string message = code + ": " + ErrnoDescription(err) + ", " + syscall;
  if (path != nullptr) message += " '" + *path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object object = error.Value();
  object.Set("errno", Napi::Number::New(env, -err));
  object.Set("code", Napi::String::New(env, code));
  object.Set("syscall", Napi::String::New(env, syscall));
  if (path != nullptr) object.Set("path", Napi::String::New(env, *path));
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  throw ErrnoError(env, err, syscall);
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& path) {
  throw ErrnoError(env, err, syscall, &path);
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  throw error;
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError error = Napi::RangeError::New(env, message);
  error.Value().Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  throw error;
}

}  // namespace tsrun
