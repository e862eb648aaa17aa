// Everything spindle offers, in one include.
#pragma once

#include "spindle/asyncio.hpp"
#include "spindle/errors.hpp"
#include "spindle/futures.hpp"
#include "spindle/http.hpp"
#include "spindle/multiprocessing.hpp"
#include "spindle/print.hpp"
#include "spindle/queue.hpp"
#include "spindle/threading.hpp"
#include "spindle/trace.hpp"
