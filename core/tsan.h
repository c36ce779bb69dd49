// Happens-before that ThreadSanitizer cannot see, stated by hand. oneTBB hands work between
// its threads with atomics and futexes inside libtbb, which is not instrumented, so under
// TSan each hand-off TBB guarantees looks like a race. Code run on TBB's threads states the
// guarantee it relies on: Release(p) after the writes, Acquire(p) before the reads, with one
// address standing for one edge. Outside a TSan build (scripts/test.sh --sanitize) both are
// empty.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define MOEFORGE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MOEFORGE_TSAN 1
#endif
#endif

#ifdef MOEFORGE_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace moeforge::tsan {

inline void Release([[maybe_unused]] const void* edge) {
#ifdef MOEFORGE_TSAN
  if (edge) __tsan_release(const_cast<void*>(edge));
#endif
}

inline void Acquire([[maybe_unused]] const void* edge) {
#ifdef MOEFORGE_TSAN
  if (edge) __tsan_acquire(const_cast<void*>(edge));
#endif
}

}  // namespace moeforge::tsan
