// Turning libtorch's exceptions into messages a JS user can act on.
#pragma once

#include <c10/util/Exception.h>
#include <napi.h>

#include <exception>
#include <string>

namespace torch_dpo {

// c10::Error::what() carries a C++ backtrace; JS users want the sentence.
inline std::string DescribeException(const std::exception& e) {
  if (auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// Runs `body` on the JS thread and rethrows libtorch errors as JS errors with clean messages.
template <typename Body>
auto Guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, DescribeException(e));
  }
}

}  // namespace torch_dpo
