// The zygote control channel's datagrams: see procpool/wire/control_channel.hpp.
#include "procpool/wire/control_channel.hpp"

#include <sys/socket.h>

#include <cassert>
#include <cerrno>
#include <cstring>

namespace procpool::zygote {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

union control_buffer {
  cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * max_control_fds)];
};

// Takes ownership of every descriptor in the SCM_RIGHTS headers of `msg`.
std::vector<unique_fd> take_fds(msghdr& msg) {
  std::vector<unique_fd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.emplace_back(fd);
    }
  }
  return fds;
}

}  // namespace

io_result<void> send_message(int sock, const nlohmann::json& body, std::span<const int> fds) {
  assert(fds.size() <= max_control_fds);
  const std::string payload = body.dump();
  iovec iov{const_cast<char*>(payload.data()), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  control_buffer control{};
  if (!fds.empty()) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); }) < 0) return last_error();
  return {};
}

io_result<std::optional<control_message>> receive_message(int sock) {
  control_message out;
  out.payload.resize(max_control_message_bytes);
  iovec iov{out.payload.data(), out.payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  control_buffer control{};
  msg.msg_control = control.bytes;
  msg.msg_controllen = sizeof control.bytes;
  const auto n = retry_eintr([&] { return ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); });
  if (n < 0) return last_error();
  out.fds = take_fds(msg);
  if (n == 0 && out.fds.empty()) return std::optional<control_message>{};
  out.payload.resize(static_cast<std::size_t>(n));
  out.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  return std::optional<control_message>{std::move(out)};
}

}  // namespace procpool::zygote
