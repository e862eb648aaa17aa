// spindle's exception hierarchy: Python's exceptions as C++ types of the same name.
//
// Every spindle exception derives from spindle::Error, itself a std::runtime_error, so
// `catch (const spindle::Error&)` catches all of them. Python's ValueError / RuntimeError
// misuse errors are std::invalid_argument / std::logic_error (see docs/python-mapping.md).
#pragma once

#include <stdexcept>
#include <string>

namespace spindle {

// The base of every exception spindle defines.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A blocking call ran out of time (Python's TimeoutError).
class TimeoutError : public Error {
 public:
  TimeoutError() : Error("timed out") {}
  using Error::Error;
};

}  // namespace spindle
