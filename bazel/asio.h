// The one way this project includes Boost.Asio. Boost 1.74's awaitable.hpp uses std::exchange
// without including <utility> (fixed upstream in 1.79); including it first makes C++20 builds work.
#pragma once

#include <utility>

#include <boost/asio.hpp>
