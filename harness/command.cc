#include "harness/command.h"

#include <cstdlib>

#include "harness/scenario.h"

namespace harness {

std::string UserPath(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path[0] == '/' || cwd == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

std::string DefaultOut(const std::string& file) {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  return std::string(workspace ? workspace : ".") + "/results/" + file;
}

std::vector<std::string> ClientScenarioNames() {
  std::vector<std::string> names;
  for (const auto& s : Scenarios()) {
    if (s->has_client()) names.push_back(s->name());
  }
  return names;
}

}  // namespace harness
