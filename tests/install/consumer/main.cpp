// A tiny program built against spindle the way users build against it.
#include <spindle/spindle.hpp>

int main() {
  spindle::queue::Queue<int> queue;
  spindle::threading::Thread producer([&queue] {
    for (int i = 1; i <= 3; ++i)
      queue.put(i);
  });
  producer.start();
  int sum = 0;
  for (int i = 0; i < 3; ++i)
    sum += queue.get();
  producer.join();
  spindle::print("consumer ok: {}", sum);
  return sum == 6 ? 0 : 1;
}
