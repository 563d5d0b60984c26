// The attributes object of an op call ({ dim: 1, keepdim: true, ... }), read once on the JS thread
// into plain C++ values so the worker never touches JS.
#pragma once

#include <c10/core/Scalar.h>
#include <c10/core/ScalarType.h>
#include <napi.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace torch_dpo {

class OpAttrs {
 public:
  static OpAttrs FromJs(Napi::Env env, Napi::Value value);

  // All accessors throw std::invalid_argument naming the attribute on a missing or ill-typed value.
  double Double(const std::string& name) const;
  double Double(const std::string& name, double fallback) const;
  std::optional<double> OptionalDouble(const std::string& name) const;
  int64_t Int(const std::string& name) const;
  int64_t Int(const std::string& name, int64_t fallback) const;
  std::vector<int64_t> IntList(const std::string& name) const;
  std::optional<std::vector<int64_t>> OptionalIntList(const std::string& name) const;
  std::vector<double> DoubleList(const std::string& name) const;
  bool Bool(const std::string& name) const;
  bool Bool(const std::string& name, bool fallback) const;
  std::string String(const std::string& name) const;
  std::string String(const std::string& name, const std::string& fallback) const;
  // An integral number becomes an integer Scalar, so int tensors stay int.
  c10::Scalar ScalarValue(const std::string& name) const;
  std::optional<c10::ScalarType> Dtype(const std::string& name) const;
  bool Has(const std::string& name) const { return values_.count(name) > 0; }

 private:
  struct Value {
    enum class Kind { Number, Integer, Bool, String, List } kind;
    double number = 0;
    int64_t integer = 0;
    bool boolean = false;
    std::string text;
    std::vector<double> numbers;
    bool allIntegers = true;  // a list of integers can also serve as an IntList
  };
  const Value& Get(const std::string& name) const;
  std::map<std::string, Value> values_;
};

}  // namespace torch_dpo
