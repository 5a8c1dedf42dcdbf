// mount(2) and umount2(2). An empty source, fstype or data string is passed as
// NULL, which is what bind mounts, remounts and propagation changes expect.
#include <sys/mount.h>

#include <string>

#include "common.h"

namespace tsrun {
namespace {

const char* OrNull(const std::string& text) { return text.empty() ? nullptr : text.c_str(); }

Napi::Value Mount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string source = StringArg(info, 0, "source");
  const std::string target = StringArg(info, 1, "target");
  const std::string fstype = StringArg(info, 2, "fstype");
  const auto flags = static_cast<unsigned long>(IntegerArg(info, 3, "flags", 0, 0xFFFFFFFFLL));
  const std::string data = StringArg(info, 4, "data");
  if (RetryOnEintr([&] { return mount(OrNull(source), target.c_str(), OrNull(fstype), flags, OrNull(data)); }) != 0) {
    ThrowErrno(env, errno, "mount", target);
  }
  return env.Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string target = StringArg(info, 0, "target");
  const auto flags = static_cast<int>(IntegerArg(info, 1, "flags", 0, 0x7FFFFFFF));
  if (RetryOnEintr([&] { return umount2(target.c_str(), flags); }) != 0) ThrowErrno(env, errno, "umount2", target);
  return env.Undefined();
}

}  // namespace

void InitMount(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount, "mount"));
  exports.Set("umount2", Napi::Function::New(env, Umount2, "umount2"));
}

}  // namespace tsrun
