// tsrun_native: the syscalls Node lacks, as plain functions (contract:
// native/facade.ts). No policy, no threads; main-thread use only.
#include <napi.h>

#include "modules.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tsrun::InitSpawn(env, exports);
  tsrun::InitPidfd(env, exports);
  tsrun::InitReaper(env, exports);
  tsrun::InitPoller(env, exports);
  tsrun::InitFdPassing(env, exports);
  tsrun::InitTty(env, exports);
  tsrun::InitFds(env, exports);
  tsrun::InitMount(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(tsrun_native, Init)
