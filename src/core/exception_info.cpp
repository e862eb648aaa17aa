#include "spindle/detail/exception_info.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

namespace spindle::detail {
namespace {

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

}  // namespace

ExceptionInfo describe_exception(std::exception_ptr error) noexcept {
  ExceptionInfo info;
  if (!error) return info;
  try {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& exception) {
      info.type_name = demangle(typeid(exception).name());
      info.message = exception.what();
    } catch (...) {
      const std::type_info* type = abi::__cxa_current_exception_type();
      info.type_name = type != nullptr ? demangle(type->name()) : "unknown exception";
    }
  } catch (...) {  // std::bad_alloc while building the strings: keep what we have
  }
  return info;
}

std::string format_exception(std::exception_ptr error) noexcept {
  try {
    ExceptionInfo info = describe_exception(error);
    if (info.message.empty()) return info.type_name;
    return info.type_name + ": " + info.message;
  } catch (...) {
    return "exception";
  }
}

}  // namespace spindle::detail
