// Files written so that readers see the old file or the complete new one, never a part (the same
// semantics as lib/atomic-file.ts, for files libtorch writes itself, such as TorchScript models).
#pragma once

#include <functional>
#include <string>

namespace torch_dpo {

// Calls write(temporary) with a temporary path beside `path`, unique to this process and call; then
// fsyncs it, renames it over `path` and fsyncs the folder. On failure the temporary is removed and
// the error (std::system_error naming the path, or the writer's own) propagates.
void WriteFileAtomic(const std::string& path, const std::function<void(const std::string& temporary)>& write);

}  // namespace torch_dpo
