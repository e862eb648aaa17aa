// The libuv loop under an asyncio::EventLoop, for modules built on libuv (streams,
// subprocesses, signals). Include only where libuv's headers are wanted.
#pragma once

#include <uv.h>

#include "spindle/detail/asyncio_core.hpp"

namespace spindle::asyncio::internal {

// The uv_loop_t the EventLoop runs; valid until the EventLoop is closed. Handles started on
// it must be used on the loop's thread and closed (uv_close) before EventLoop::close(), which
// closes any handle still open. Callbacks run inside the loop's poll phase: they may
// schedule work (push_ready, wake a task) but should not run user code directly.
inline uv_loop_t* uv_loop(EventLoop& loop) noexcept {
  return static_cast<uv_loop_t*>(loop.uv_loop_pointer());
}

}  // namespace spindle::asyncio::internal
