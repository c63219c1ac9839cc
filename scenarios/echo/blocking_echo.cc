#include "scenarios/echo/blocking_echo.h"

#include <sys/socket.h>

#include <cerrno>

#include "scenarios/echo/protocol.h"

namespace echo {
namespace {

bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t sent = send(fd, data, n, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    n -= static_cast<size_t>(sent);
  }
  return true;
}

}  // namespace

void BlockingEcho(int fd, const ReplyMode& reply) {
  char buf[kBufferSize];
  const size_t room = reply.headroom();
  while (true) {
    const ssize_t n = recv(fd, buf + room, sizeof buf - room, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    if (!SendAll(fd, buf, reply.Make(buf, static_cast<size_t>(n)))) return;
  }
}

}  // namespace echo
