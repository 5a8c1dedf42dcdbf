/*
 * watchReadable(): a uv_poll_t on the environment's own loop
 * (napi_get_uv_event_loop, so it also works in a worker), calling back on the JS
 * thread each time the fd is readable. Level-triggered: a pidfd of an exited
 * process stays readable, so the callback repeats every loop turn until the
 * watcher is closed.
 *
 * Lifetimes, which is where such addons crash:
 *  - The uv handle lives in a plain heap struct (PollHandle) freed only by
 *    uv_close's callback, because libuv may touch it until then. The struct's
 *    back pointer to the JS-facing object is cleared at close, so an event
 *    already queued for this loop turn finds no owner and does nothing: a closed
 *    watcher never calls back.
 *  - An open watcher holds a strong reference to its own JS object, so GC cannot
 *    collect a watcher that is still watching (the loop keeps it, like any Node
 *    handle; an open watcher keeps the process alive).
 *  - The callback may close its own watcher: the object is pinned by a local
 *    handle for the duration of the call, and nothing touches the uv handle after.
 *  - Environment teardown closes every open watcher (cleanup hook), so libuv never
 *    sees a live handle whose owner is gone.
 * uv_poll_init makes the fd non-blocking (O_NONBLOCK is shared by every dup of
 * the open file description). Close the watcher before closing its fd: libuv
 * refuses a second watcher for an fd number it still watches (EEXIST).
 */
#include <uv.h>

#include <unordered_set>

#include "common.h"

namespace tsrun {
namespace {

class FdWatcher;

struct AddonData {
  Napi::FunctionReference watcherClass;
  std::unordered_set<FdWatcher*> open;  // watchers not yet closed, for teardown
};

struct PollHandle {
  uv_poll_t poll;
  FdWatcher* owner;  // nullptr once closed
};

void FreePollHandle(uv_handle_t* handle) {
  delete reinterpret_cast<PollHandle*>(reinterpret_cast<char*>(handle) - offsetof(PollHandle, poll));
}

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<FdWatcher>::DefineClass(env, "FdWatcher", {InstanceMethod<&FdWatcher::Close>("close")});
  }

  // new FdWatcher(fd, onReadable): only watchReadable() constructs it.
  explicit FdWatcher(const Napi::CallbackInfo& info) : ObjectWrap<FdWatcher>(info) {
    Napi::Env env = info.Env();
    const int fd = FdArg(info, 0, "fd");
    Napi::Function onReadable = FunctionArg(info, 1, "onReadable");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "watchReadable: no event loop for this environment");
    }
    auto* handle = new PollHandle{};
    if (const int err = uv_poll_init(loop, &handle->poll, fd); err != 0) {
      delete handle;  // never registered with the loop: plain delete is right
      ThrowErrno(env, -err, "uv_poll_init");
    }
    handle->owner = this;
    if (const int err = uv_poll_start(&handle->poll, UV_READABLE, OnPoll); err != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&handle->poll), FreePollHandle);
      ThrowErrno(env, -err, "uv_poll_start");
    }
    handle_ = handle;
    callback_ = Napi::Persistent(onReadable);
    if (napi_async_init(env, Value(), Napi::String::New(env, "tsrun.FdWatcher"), &asyncContext_) != napi_ok) {
      asyncContext_ = nullptr;
    }
    data_ = env.GetInstanceData<AddonData>();
    data_->open.insert(this);
    Ref();  // an open watcher is never collected; Stop() lets go
  }

  ~FdWatcher() override { Stop(Teardown::kYes); }

  // Closes every open watcher of an environment that is going away.
  static void CloseAll(AddonData* data) {
    const std::unordered_set<FdWatcher*> open = data->open;
    for (FdWatcher* watcher : open) watcher->Stop(Teardown::kYes);
  }

 private:
  enum class Teardown { kNo, kYes };

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(Teardown::kNo);
    return info.Env().Undefined();
  }

  void Stop(Teardown teardown) {
    if (handle_ == nullptr) return;
    handle_->owner = nullptr;
    uv_poll_stop(&handle_->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), FreePollHandle);
    handle_ = nullptr;
    data_->open.erase(this);
    if (teardown == Teardown::kNo) {
      // During teardown JS is gone: references and the async context die with
      // the environment, and napi_async_destroy would schedule work on it.
      callback_.Reset();
      if (asyncContext_ != nullptr) napi_async_destroy(Env(), asyncContext_);
      asyncContext_ = nullptr;
      Unref();
    }
  }

  static void OnPoll(uv_poll_t* poll, int /*status*/, int /*events*/) {
    // An error status (e.g. the fd was closed) also calls back: the caller's next
    // read reports the real error. libuv has stopped the handle in that case.
    FdWatcher* self = reinterpret_cast<PollHandle*>(reinterpret_cast<char*>(poll) - offsetof(PollHandle, poll))->owner;
    if (self == nullptr) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    const Napi::Object pinned = self->Value();  // survives a close() inside the callback
    try {
      self->callback_.MakeCallback(pinned, {}, self->asyncContext_);
    } catch (const Napi::Error& error) {
      // Like any Node callback that throws: 'uncaughtException'.
      napi_fatal_exception(env, error.Value());
    }
  }

  PollHandle* handle_ = nullptr;
  Napi::FunctionReference callback_;
  napi_async_context asyncContext_ = nullptr;
  AddonData* data_ = nullptr;
};

Napi::Value WatchReadable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int fd = FdArg(info, 0, "fd");
  const Napi::Function onReadable = FunctionArg(info, 1, "onReadable");
  return env.GetInstanceData<AddonData>()->watcherClass.New({Napi::Number::New(env, fd), onReadable});
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->watcherClass = Napi::Persistent(FdWatcher::DefineClass(env));
  env.SetInstanceData<AddonData>(data);
  // Runs before the environment's references are finalized (hooks run in reverse
  // order of registration, and N-API registered its own before this module's Init).
  env.AddCleanupHook([data] { FdWatcher::CloseAll(data); });
  exports.Set("watchReadable", Napi::Function::New(env, WatchReadable, "watchReadable"));
}

}  // namespace tsrun
