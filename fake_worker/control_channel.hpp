// The zygote control channel (pool/ZYGOTE.md): one SOCK_SEQPACKET datagram per message, its
// payload one JSON object, descriptors as SCM_RIGHTS ancillary data. Used by the fake
// worker's template (zygote.cpp) and by the test that plays the pool against it.
//
//   auto sent = send_message(sock, {{"type", "ready"}}, {});
//   auto got = receive_message(sock);       // empty optional: EOF
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

namespace procpool::fake {

inline constexpr std::size_t max_control_message_bytes = 65'536;
// More descriptors than any message carries: a message with more is truncated (MSG_CTRUNC).
inline constexpr std::size_t max_control_fds = 8;

struct control_message {
  std::string payload;
  std::vector<unique_fd> fds;  // received close-on-exec, in the order the sender listed them
  // The payload exceeded max_control_message_bytes or the descriptors did not fit: a
  // protocol fault (the descriptors that did arrive are still owned here).
  bool truncated = false;
};

// Sends one datagram (never SIGPIPE: a closed peer is EPIPE). REQUIRES: fds.size() <=
// max_control_fds.
io_result<void> send_message(int sock, const nlohmann::json& body, std::span<const int> fds = {});

// Receives one datagram, retrying EINTR. An empty optional is EOF (the peer closed its end;
// a zero-length datagram reads the same, which is why the protocol never sends one).
io_result<std::optional<control_message>> receive_message(int sock);

}  // namespace procpool::fake
