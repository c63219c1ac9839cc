// The one registration mechanism: scenarios, and each scenario's models (its servers, executors),
// register with one line at namespace scope, in the file that defines them:
//
//   HARNESS_REGISTER(harness::ScenarioEntry, std::make_unique<MyScenario>());
//   HARNESS_REGISTER(my::ModelEntry, {"threads", "a thread per connection", ...});
//
// An entry is found by its name (a `name` member, or name() through a pointer). Two entries of one
// kind with the same name are a build mistake: the program stops at start-up, naming it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace harness {

template <typename Entry>
class Registry {
 public:
  static void Add(Entry entry) {
    if (Find(NameOf(entry)) != nullptr) {
      std::fprintf(stderr, "harness: '%s' is registered twice\n", NameOf(entry).c_str());
      std::abort();
    }
    Entries().push_back(std::move(entry));
  }
  // In the order of registration (the order of the linked files' static initialisers).
  static const std::vector<Entry>& All() { return Entries(); }
  static const Entry* Find(const std::string& name) {
    for (const Entry& e : Entries()) {
      if (NameOf(e) == name) return &e;
    }
    return nullptr;
  }

 private:
  static std::vector<Entry>& Entries() {
    static auto* entries = new std::vector<Entry>();  // never destroyed: used from static initialisers
    return *entries;
  }
  template <typename T>
  static std::string NameOf(const T& e) {
    return e.name;
  }
  template <typename T>
  static std::string NameOf(const std::unique_ptr<T>& e) {
    return e->name();
  }
};

}  // namespace harness

#define HARNESS_CONCAT_INNER(a, b) a##b
#define HARNESS_CONCAT(a, b) HARNESS_CONCAT_INNER(a, b)
#define HARNESS_REGISTER(Entry, ...) \
  static const bool HARNESS_CONCAT(harness_registered_, __LINE__) = (::harness::Registry<Entry>::Add(__VA_ARGS__), true)
