// Each part of the addon adds its functions to the exports object.
#pragma once

#include <napi.h>

namespace tsrun {

void InitSpawn(Napi::Env env, Napi::Object exports);     // spawn.cc
void InitPidfd(Napi::Env env, Napi::Object exports);     // pidfd.cc
void InitReaper(Napi::Env env, Napi::Object exports);    // reaper.cc
void InitPoller(Napi::Env env, Napi::Object exports);    // poller.cc
void InitFdPassing(Napi::Env env, Napi::Object exports); // fdpass.cc
void InitTty(Napi::Env env, Napi::Object exports);       // tty.cc
void InitFds(Napi::Env env, Napi::Object exports);       // fds.cc
void InitMount(Napi::Env env, Napi::Object exports);     // mount.cc

}  // namespace tsrun
