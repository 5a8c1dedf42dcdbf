// The facade's WaitStatus from what waitid() reported.
#include <sys/wait.h>

#include "common.h"

namespace tsrun {

Napi::Object WaitStatusFromSiginfo(Napi::Env env, int siCode, int siStatus) {
  Napi::Object status = Napi::Object::New(env);
  switch (siCode) {
    case CLD_EXITED:
      status.Set("kind", "exited");
      status.Set("code", Napi::Number::New(env, siStatus));
      return status;
    case CLD_KILLED:
    case CLD_DUMPED:
      status.Set("kind", "signaled");
      status.Set("signal", Napi::Number::New(env, siStatus));
      status.Set("coreDumped", Napi::Boolean::New(env, siCode == CLD_DUMPED));
      return status;
    default:
      // Only WEXITED is ever asked for, so stopped/continued/trapped cannot come back.
      throw Napi::Error::New(env, "waitid reported an unexpected si_code " + std::to_string(siCode));
  }
}

}  // namespace tsrun
