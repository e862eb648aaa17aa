// local<T>'s storage. Each local has a Control holding every thread's value; each thread
// caches its own values by the local's id (ids are never reused), so get() is one hash
// lookup without a lock once the value exists.
#include <unordered_map>

#include "spindle/threading.hpp"

namespace spindle::threading::detail {
namespace {
std::atomic<std::uint64_t> next_local_id{1};

struct StoredValue {
  void* value;
  void (*destroy)(void*);
};

struct ThreadValues;
}  // namespace

struct LocalStorage::Control {
  const std::uint64_t id = next_local_id.fetch_add(1, std::memory_order_relaxed);
  std::mutex mutex;
  std::unordered_map<const void*, StoredValue> values;  // keyed by the thread's ThreadValues
};

namespace {
// The calling thread's values. Destroyed when the thread ends, destroying them (spindle's
// own threads call destroy_thread_locals() earlier, before join() can return).
struct ThreadValues {
  std::unordered_map<std::uint64_t, void*> cache;
  std::vector<std::weak_ptr<LocalStorage::Control>> owners;

  void destroy_all() {
    cache.clear();
    std::vector<std::weak_ptr<LocalStorage::Control>> taken;
    taken.swap(owners);
    for (auto& weak : taken) {
      if (auto control = weak.lock()) {
        StoredValue stored{nullptr, nullptr};
        {
          std::lock_guard guard(control->mutex);
          auto found = control->values.find(this);
          if (found == control->values.end()) continue;
          stored = found->second;
          control->values.erase(found);
        }
        stored.destroy(stored.value);  // outside the lock: it may use other locals
      }
    }
  }
  ~ThreadValues() { destroy_all(); }
};
thread_local ThreadValues thread_values;
}  // namespace

void destroy_thread_locals() {
  // A value's destructor may create values in other locals: repeat until none is left.
  while (!thread_values.owners.empty())
    thread_values.destroy_all();
}

LocalStorage::LocalStorage() : control_(std::make_shared<Control>()) {}

LocalStorage::~LocalStorage() {
  std::unordered_map<const void*, StoredValue> values;
  {
    std::lock_guard guard(control_->mutex);
    values.swap(control_->values);
  }
  for (auto& [thread, stored] : values)
    stored.destroy(stored.value);
}

void* LocalStorage::find() const {
  auto found = thread_values.cache.find(control_->id);
  return found == thread_values.cache.end() ? nullptr : found->second;
}

void* LocalStorage::insert(void* value, void (*destroy)(void*)) {
  {
    std::lock_guard guard(control_->mutex);
    control_->values.emplace(&thread_values, StoredValue{value, destroy});
  }
  thread_values.owners.push_back(control_);
  thread_values.cache.emplace(control_->id, value);
  return value;
}

}  // namespace spindle::threading::detail
