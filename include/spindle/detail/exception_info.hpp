// Describing an exception for reports ("TYPE: what()"), shared by every module that prints
// or ships an exception nobody caught.
#pragma once

#include <exception>
#include <string>

namespace spindle::detail {

struct ExceptionInfo {
  std::string type_name;  // demangled C++ type, "std::runtime_error" say
  std::string message;    // what(), or empty for a type not derived from std::exception
};

// The dynamic type and message of the exception `error` holds. Never throws.
ExceptionInfo describe_exception(std::exception_ptr error) noexcept;

// "TYPE: what()" (or "TYPE" without a message), as Python's traceback's last line.
std::string format_exception(std::exception_ptr error) noexcept;

}  // namespace spindle::detail
