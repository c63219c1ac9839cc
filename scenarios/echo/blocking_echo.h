// The blocking echo loop shared by the thread and process models: recv, make the reply (by the rule
// of --reply: ReplyMode), send all, until the peer closes or an error. Uses only its stack and async-signal-safe calls,
// so a child forked from a threaded process may run it.
#pragma once

#include "scenarios/echo/protocol.h"

namespace echo {

void BlockingEcho(int fd, const ReplyMode& reply);

}  // namespace echo
