// The zygote control channel (pool/ZYGOTE.md): one SOCK_SEQPACKET datagram per message, its
// payload one JSON object, descriptors as SCM_RIGHTS ancillary data. Both ends use it: the
// pool's zygote_template and a C++ template (the fake worker's --zygote).
//
//   auto sent = zygote::send_message(sock, {{"type", "ready"}, {"protocol", 1}});
//   auto got = zygote::receive_message(sock);     // empty optional: EOF
//   if (got && *got) use((*got)->payload, (*got)->fds);   // fds owned, close-on-exec
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "procpool/wire/fd.hpp"
#include "procpool/wire/file_io.hpp"

namespace procpool::zygote {

inline constexpr std::size_t max_control_message_bytes = 65'536;
// More descriptors than any message carries: a message with more is truncated (MSG_CTRUNC).
inline constexpr std::size_t max_control_fds = 8;

struct control_message {
  std::string payload;
  std::vector<unique_fd> fds;  // received close-on-exec, in the order the sender listed them
  bool truncated = false;      // payload or descriptors did not fit: a protocol fault
};

// Sends one datagram (never SIGPIPE: a closed peer is EPIPE). REQUIRES: fds.size() <=
// max_control_fds.
io_result<void> send_message(int sock, const nlohmann::json& body, std::span<const int> fds = {});

// Receives one datagram, retrying EINTR. An empty optional is EOF.
io_result<std::optional<control_message>> receive_message(int sock);

}  // namespace procpool::zygote
