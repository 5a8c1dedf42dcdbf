// Argument checks for the exported functions. The TS facade types every call,
// but the addon still refuses a wrong value loudly rather than passing garbage
// to a syscall (a NaN fd would otherwise become fd 0).
#include <cmath>
#include <cstring>

#include "common.h"

namespace tsrun {

int64_t ToInteger(Napi::Env env, Napi::Value value, const std::string& name, int64_t min,
                  int64_t max) {
  if (!value.IsNumber()) {
    ThrowTypeError(env, "The \"" + name + "\" argument must be of type number");
  }
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number ||
      number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowRangeError(env, "The value of \"" + name + "\" is out of range. It must be an integer >= " +
                             std::to_string(min) + " and <= " + std::to_string(max));
  }
  return static_cast<int64_t>(number);
}

std::string ToString(Napi::Env env, Napi::Value value, const std::string& name) {
  if (!value.IsString()) {
    ThrowTypeError(env, "The \"" + name + "\" argument must be of type string");
  }
  std::string text = value.As<Napi::String>().Utf8Value();
  // A NUL would silently cut the string short at the syscall.
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) {
    Napi::TypeError error = Napi::TypeError::New(
        env, "The \"" + name + "\" argument must be a string without null bytes");
    error.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    throw error;
  }
  return text;
}

int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<int>(ToInteger(info.Env(), info[index], name, 0, INT32_MAX));
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t min,
                   int64_t max) {
  return ToInteger(info.Env(), info[index], name, min, max);
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return ToString(info.Env(), info[index], name);
}

Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsFunction()) {
    ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be of type function");
  }
  return info[index].As<Napi::Function>();
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsObject()) {
    ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be of type object");
  }
  return info[index].As<Napi::Object>();
}

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Napi::Value value = info[index];
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(info.Env(), std::string("The \"") + name + "\" argument must be a Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
}

std::vector<int> FdArrayArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                            int minFd) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) {
    ThrowTypeError(env, std::string("The \"") + name + "\" argument must be an array of fds");
  }
  const Napi::Array array = info[index].As<Napi::Array>();
  std::vector<int> fds;
  fds.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    const std::string element = std::string(name) + "[" + std::to_string(i) + "]";
    fds.push_back(static_cast<int>(ToInteger(env, array.Get(i), element, minFd, INT32_MAX)));
  }
  return fds;
}

}  // namespace tsrun
