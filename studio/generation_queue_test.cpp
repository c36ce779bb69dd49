// The generation queue: one job at a time, a bounded line behind it, first come first
// served, and a refusal (not a wait) past the bound. Jobs block on promises the test
// releases, so nothing depends on timing.
#include "studio/generation_queue.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <vector>

namespace moeforge::studio {
namespace {

TEST(GenerationQueue, RunsOneAtATimeQueuesInOrderAndRefusesPastTheBound) {
  GenerationQueue q(/*max_waiting=*/2);
  std::promise<void> release_first;
  std::promise<void> first_started;
  std::shared_future<void> release = release_first.get_future().share();
  std::vector<std::string> order;
  std::mutex order_mu;
  auto job = [&](const std::string& name) {
    return [&, name]() -> Result<std::string> {
      std::lock_guard<std::mutex> lock(order_mu);
      order.push_back(name);
      return name;
    };
  };
  std::optional<Result<std::string>> a, b, c;
  std::thread ta([&] {
    a = q.Run([&]() -> Result<std::string> {
      first_started.set_value();
      release.wait();
      std::lock_guard<std::mutex> lock(order_mu);
      order.push_back("a");
      return std::string("a");
    });
  });
  first_started.get_future().wait();
  std::thread tb([&] { b = q.Run(job("b")); });
  while (q.waiting() < 1) std::this_thread::yield();
  std::thread tc([&] { c = q.Run(job("c")); });
  while (q.waiting() < 2) std::this_thread::yield();
  // Two wait, one runs: a fourth is refused at once, without running.
  auto d = q.Run(job("d"));
  EXPECT_FALSE(d.has_value());
  release_first.set_value();
  ta.join();
  tb.join();
  tc.join();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(**a, "a");
  EXPECT_EQ(**b, "b");
  EXPECT_EQ(**c, "c");
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(q.waiting(), 0);
  // Free again: a job runs at once, and a failing job's status comes back.
  auto e = q.Run([]() -> Result<std::string> { return Status::InvalidArgument("bad tag"); });
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status().code(), Status::Code::kInvalidArgument);
}

TEST(GenerationQueue, ZeroWaitingRefusesWhileAJobRuns) {
  GenerationQueue q(0);
  std::promise<void> started, release;
  std::shared_future<void> rel = release.get_future().share();
  std::thread t([&] {
    q.Run([&]() -> Result<std::string> {
      started.set_value();
      rel.wait();
      return std::string("x");
    });
  });
  started.get_future().wait();
  EXPECT_FALSE(q.Run([]() -> Result<std::string> { return std::string("y"); }).has_value());
  release.set_value();
  t.join();
  auto after = q.Run([]() -> Result<std::string> { return std::string("z"); });
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(**after, "z");
}

TEST(GenerationQueue, AThrowingJobBecomesAnErrorAndFreesTheQueue) {
  GenerationQueue q(1);
  auto r = q.Run([]() -> Result<std::string> { throw std::runtime_error("boom"); });
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->status().message().find("boom"), std::string::npos);
  auto next = q.Run([]() -> Result<std::string> { return std::string("ok"); });
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(**next, "ok");
}

}  // namespace
}  // namespace moeforge::studio
