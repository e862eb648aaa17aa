// Finding a function again in another process of the same program: the loaded object that
// holds it and its offset from the object's load address (which differs per process with
// address-space layout randomisation).
#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "spindle/detail/process_call.hpp"

namespace spindle::multiprocessing::detail {
namespace {

struct Search {
  std::uintptr_t address;
  std::optional<FunctionRef> found;
  bool first = true;
};

int find_object(dl_phdr_info* info, std::size_t, void* data) {
  auto& search = *static_cast<Search*>(data);
  const bool main_program = std::exchange(search.first, false);
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD) continue;
    const std::uintptr_t start = info->dlpi_addr + segment.p_vaddr;
    if (search.address >= start && search.address < start + segment.p_memsz) {
      search.found = FunctionRef{main_program ? std::string() : std::string(info->dlpi_name),
                                 search.address - info->dlpi_addr};
      return 1;
    }
  }
  return 0;
}

struct BaseSearch {
  const std::string* object;
  std::optional<std::uintptr_t> base;
  bool first = true;
};

int find_base(dl_phdr_info* info, std::size_t, void* data) {
  auto& search = *static_cast<BaseSearch*>(data);
  const bool main_program = std::exchange(search.first, false);
  if (main_program ? search.object->empty() : *search.object == info->dlpi_name) {
    search.base = info->dlpi_addr;
    return 1;
  }
  return 0;
}

std::mutex cache_mutex;
std::unordered_map<std::uintptr_t, FunctionRef>& located() {
  static auto* cache = new std::unordered_map<std::uintptr_t, FunctionRef>();
  return *cache;
}
std::unordered_map<std::string, std::uintptr_t>& bases() {
  static auto* cache = new std::unordered_map<std::string, std::uintptr_t>();
  return *cache;
}

std::optional<std::uintptr_t> base_of(const std::string& object) {
  BaseSearch search{&object, std::nullopt};
  dl_iterate_phdr(&find_base, &search);
  return search.base;
}

}  // namespace

FunctionRef locate_function(std::uintptr_t address) {
  {
    std::lock_guard lock(cache_mutex);
    const auto found = located().find(address);
    if (found != located().end()) return found->second;
  }
  Search search{address, std::nullopt};
  dl_iterate_phdr(&find_object, &search);
  if (!search.found) {
    throw std::invalid_argument("the target function is not in any loaded object of the program");
  }
  std::lock_guard lock(cache_mutex);
  located().emplace(address, *search.found);
  return *search.found;
}

std::uintptr_t resolve_function(const FunctionRef& ref) {
  std::lock_guard lock(cache_mutex);
  auto found = bases().find(ref.object);
  if (found == bases().end()) {
    std::optional<std::uintptr_t> base = base_of(ref.object);
    if (!base && !ref.object.empty()) {
      // A library the parent loaded with dlopen: load it here too (kept for the process's life).
      if (::dlopen(ref.object.c_str(), RTLD_NOW | RTLD_GLOBAL) != nullptr)
        base = base_of(ref.object);
    }
    if (!base) {
      throw CorruptMessage("cannot find the object '" + ref.object +
                           "' holding the target in this process");
    }
    found = bases().emplace(ref.object, *base).first;
  }
  return found->second + ref.offset;
}

void write_function_ref(Encoder& out, const FunctionRef& ref) {
  write(out, ref.object);
  write(out, ref.offset);
}

FunctionRef read_function_ref(Decoder& in) {
  FunctionRef ref;
  read(in, ref.object);
  read(in, ref.offset);
  return ref;
}

std::string_view call_target(std::string_view call) noexcept {
  // Two function references, each a string (a 64-bit length, then its bytes) and a 64-bit
  // offset.
  std::size_t at = 0;
  for (int ref = 0; ref < 2; ++ref) {
    std::uint64_t length = 0;
    if (call.size() - at < 2 * sizeof length) return call;
    std::memcpy(&length, call.data() + at, sizeof length);
    if (length > call.size() - at - sizeof length - sizeof(std::uint64_t)) return call;
    at += sizeof length + length + sizeof(std::uint64_t);
  }
  return call.substr(0, at);
}

void run_call(Decoder& in, Encoder& out) {
  const FunctionRef thunk_ref = read_function_ref(in);
  const FunctionRef target_ref = read_function_ref(in);
  const auto thunk = reinterpret_cast<Thunk>(resolve_function(thunk_ref));
  const std::uintptr_t target =
      target_ref.object.empty() && target_ref.offset == 0 ? 0 : resolve_function(target_ref);
  thunk(target, in, out);
  if (in.remaining() != 0) {
    throw CorruptMessage("corrupt call message: " + std::to_string(in.remaining()) +
                         " bytes left after the arguments");
  }
}

}  // namespace spindle::multiprocessing::detail
