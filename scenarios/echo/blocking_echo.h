// The blocking echo loop shared by the thread and process models: recv, upper-case, send all,
// until the peer closes or an error. Uses only its stack and async-signal-safe calls, so a child
// forked from a threaded process may run it.
#pragma once

namespace echo {

void BlockingEcho(int fd);

}  // namespace echo
