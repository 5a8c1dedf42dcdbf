// Unix sockets: passing fds (SCM_RIGHTS), peer credentials, socket pairs, and
// listening sockets the caller owns as plain fds.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include "common.h"

namespace tsrun {
namespace {

// Sends every byte; the fds ride with the first one. When a non-blocking stream
// socket takes only part of the bytes, the rest is sent after waiting for room
// (poll), so a message and its fds are never split by a half-failed call.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int socketFd = FdArg(info, 0, "socketFd");
  const Napi::Uint8Array data = BytesArg(info, 1, "data");
  const std::vector<int> fds = FdArrayArg(info, 2, "fds", 0);
  if (!fds.empty() && data.ByteLength() == 0) {
    // A zero-byte sendmsg on a stream socket carries nothing, fds included.
    ThrowRangeError(env, "sendFds needs at least one byte of data to carry fds");
  }
  const auto* bytes = data.Data();
  const size_t length = data.ByteLength();

  const size_t controlLength = fds.empty() ? 0 : CMSG_SPACE(sizeof(int) * fds.size());
  std::unique_ptr<cmsghdr[]> control(new cmsghdr[controlLength / sizeof(cmsghdr) + 1]());
  iovec iov{const_cast<uint8_t*>(bytes), length};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (!fds.empty()) {
    message.msg_control = control.get();
    message.msg_controllen = controlLength;
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent = RetryOnEintr([&] { return sendmsg(socketFd, &message, MSG_NOSIGNAL); });
  if (sent < 0) ThrowErrno(env, errno, "sendmsg");
  size_t total = static_cast<size_t>(sent);
  while (total < length) {
    sent = RetryOnEintr([&] { return send(socketFd, bytes + total, length - total, MSG_NOSIGNAL); });
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd writable{socketFd, POLLOUT, 0};
      if (RetryOnEintr([&] { return poll(&writable, 1, -1); }) < 0) ThrowErrno(env, errno, "poll");
      continue;
    }
    if (sent < 0) ThrowErrno(env, errno, "send");
    total += static_cast<size_t>(sent);
  }
  return env.Undefined();
}

// One recvmsg. Received fds are O_CLOEXEC (MSG_CMSG_CLOEXEC). If the kernel had
// to drop fds (more than maxFds) or datagram bytes (more than maxData), every fd
// that did arrive is closed and EMSGSIZE is thrown: a partial message is useless
// and its fds would leak. End of stream reads as no data and no fds.
Napi::Value ReceiveFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int socketFd = FdArg(info, 0, "socketFd");
  const auto maxData = static_cast<size_t>(IntegerArg(info, 1, "maxData", 1, 16 * 1024 * 1024));
  const auto maxFds = static_cast<size_t>(IntegerArg(info, 2, "maxFds", 0, 253));  // SCM_MAX_FD

  std::vector<uint8_t> buffer(maxData);
  const size_t controlLength = maxFds == 0 ? 0 : CMSG_SPACE(sizeof(int) * maxFds);
  std::unique_ptr<cmsghdr[]> control(new cmsghdr[controlLength / sizeof(cmsghdr) + 1]());
  iovec iov{buffer.data(), buffer.size()};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = controlLength == 0 ? nullptr : control.get();
  message.msg_controllen = controlLength;
  const ssize_t received = RetryOnEintr([&] { return recvmsg(socketFd, &message, MSG_CMSG_CLOEXEC); });
  if (received < 0) ThrowErrno(env, errno, "recvmsg");

  std::vector<int> fds;
  if (message.msg_controllen > 0) {
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
        fds.push_back(fd);
      }
    }
  }
  if ((message.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0) {
    for (const int fd : fds) close(fd);
    ThrowErrno(env, EMSGSIZE, "recvmsg");
  }

  Napi::Uint8Array data = Napi::Uint8Array::New(env, static_cast<size_t>(received));
  if (received > 0) std::memcpy(data.Data(), buffer.data(), static_cast<size_t>(received));
  Napi::Array fdArray = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); ++i) fdArray.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", data);
  result.Set("fds", fdArray);
  return result;
}

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int socketFd = FdArg(info, 0, "socketFd");
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (getsockopt(socketFd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    ThrowErrno(env, errno, "getsockopt");
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, credentials.pid));
  result.Set("uid", Napi::Number::New(env, credentials.uid));
  result.Set("gid", Napi::Number::New(env, credentials.gid));
  return result;
}

Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) ThrowErrno(env, errno, "socketpair");
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0U, Napi::Number::New(env, fds[0]));
  result.Set(1U, Napi::Number::New(env, fds[1]));
  return result;
}

// socket + bind + listen. The caller owns the fd and the path: closing the fd
// never unlinks the path (unlike a Node server), so one process can bind it and
// another serve it.
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = StringArg(info, 0, "path");
  const int backlog = static_cast<int>(IntegerArg(info, 1, "backlog", 0, INT_MAX));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) ThrowErrno(env, ENAMETOOLONG, "bind", path);
  std::memcpy(address.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int err = errno;
    close(fd);
    ThrowErrno(env, err, "bind", path);
  }
  if (listen(fd, backlog) != 0) {
    const int err = errno;
    close(fd);
    unlink(path.c_str());  // we created it a moment ago
    ThrowErrno(env, err, "listen", path);
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("receiveFds", Napi::Function::New(env, ReceiveFds, "receiveFds"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
}

}  // namespace tsrun
