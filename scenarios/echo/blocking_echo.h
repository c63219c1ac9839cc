// The blocking echo loop shared by the thread and process models: recv, make the reply (by the rule
// of --reply: ReplyMode), send all, until the peer closes or an error. With `work` (--work), it
// reads whole messages by their header, does each one's work on this thread (its CPU burned, its
// wait slept, the worker held meanwhile, as a blocking service does), then replies. Uses only its
// stack and async-signal-safe calls, so a child forked from a threaded process may run it.
#pragma once

#include "scenarios/echo/protocol.h"

namespace echo {

void BlockingEcho(int fd, const ReplyMode& reply, bool work = false);

}  // namespace echo
