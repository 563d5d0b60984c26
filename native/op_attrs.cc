#include "op_attrs.h"

#include <cmath>
#include <stdexcept>

#include "dtype.h"

namespace torch_dpo {

namespace {
constexpr double kMaxSafeInteger = 9007199254740991.0;

bool IsSafeInteger(double d) { return std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= kMaxSafeInteger; }

std::invalid_argument BadAttr(const std::string& name, const std::string& expected) {
  return std::invalid_argument("attribute '" + name + "' must be " + expected);
}
}  // namespace

OpAttrs OpAttrs::FromJs(Napi::Env env, Napi::Value value) {
  OpAttrs attrs;
  if (value.IsUndefined() || value.IsNull()) return attrs;
  if (!value.IsObject()) throw Napi::TypeError::New(env, "op attributes must be an object");
  Napi::Object object = value.As<Napi::Object>();
  Napi::Array keys = object.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = object.Get(key);
    Value parsed;
    if (v.IsUndefined()) continue;
    if (v.IsBoolean()) {
      parsed.kind = Value::Kind::Bool;
      parsed.boolean = v.As<Napi::Boolean>().Value();
    } else if (v.IsNumber()) {
      parsed.number = v.As<Napi::Number>().DoubleValue();
      parsed.kind = IsSafeInteger(parsed.number) ? Value::Kind::Integer : Value::Kind::Number;
      parsed.integer = parsed.kind == Value::Kind::Integer ? static_cast<int64_t>(parsed.number) : 0;
    } else if (v.IsBigInt()) {
      bool lossless = false;
      parsed.integer = v.As<Napi::BigInt>().Int64Value(&lossless);
      if (!lossless) throw Napi::RangeError::New(env, "attribute '" + key + "' does not fit in int64");
      parsed.kind = Value::Kind::Integer;
      parsed.number = static_cast<double>(parsed.integer);
    } else if (v.IsString()) {
      parsed.kind = Value::Kind::String;
      parsed.text = v.As<Napi::String>().Utf8Value();
    } else if (v.IsArray()) {
      parsed.kind = Value::Kind::List;
      Napi::Array array = v.As<Napi::Array>();
      for (uint32_t j = 0; j < array.Length(); ++j) {
        Napi::Value item = array.Get(j);
        if (!item.IsNumber()) throw Napi::TypeError::New(env, "attribute '" + key + "' must be a list of numbers");
        double d = item.As<Napi::Number>().DoubleValue();
        parsed.numbers.push_back(d);
        parsed.allIntegers = parsed.allIntegers && IsSafeInteger(d);
      }
    } else {
      throw Napi::TypeError::New(env, "attribute '" + key + "' has an unsupported type");
    }
    attrs.values_.emplace(key, std::move(parsed));
  }
  return attrs;
}

const OpAttrs::Value& OpAttrs::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::invalid_argument("attribute '" + name + "' is required");
  return it->second;
}

double OpAttrs::Double(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind != Value::Kind::Number && v.kind != Value::Kind::Integer) throw BadAttr(name, "a number");
  return v.number;
}

double OpAttrs::Double(const std::string& name, double fallback) const { return Has(name) ? Double(name) : fallback; }

std::optional<double> OpAttrs::OptionalDouble(const std::string& name) const {
  return Has(name) ? std::optional<double>(Double(name)) : std::nullopt;
}

int64_t OpAttrs::Int(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind != Value::Kind::Integer) throw BadAttr(name, "an integer");
  return v.integer;
}

int64_t OpAttrs::Int(const std::string& name, int64_t fallback) const { return Has(name) ? Int(name) : fallback; }

std::vector<int64_t> OpAttrs::IntList(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind == Value::Kind::Integer) return {v.integer};
  if (v.kind != Value::Kind::List || !v.allIntegers) throw BadAttr(name, "an integer or a list of integers");
  return std::vector<int64_t>(v.numbers.begin(), v.numbers.end());
}

std::vector<double> OpAttrs::DoubleList(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind == Value::Kind::Integer || v.kind == Value::Kind::Number) return {v.number};
  if (v.kind != Value::Kind::List) throw BadAttr(name, "a number or a list of numbers");
  return v.numbers;
}

std::optional<std::vector<int64_t>> OpAttrs::OptionalIntList(const std::string& name) const {
  return Has(name) ? std::optional<std::vector<int64_t>>(IntList(name)) : std::nullopt;
}

bool OpAttrs::Bool(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind != Value::Kind::Bool) throw BadAttr(name, "a boolean");
  return v.boolean;
}

bool OpAttrs::Bool(const std::string& name, bool fallback) const { return Has(name) ? Bool(name) : fallback; }

std::string OpAttrs::String(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind != Value::Kind::String) throw BadAttr(name, "a string");
  return v.text;
}

std::string OpAttrs::String(const std::string& name, const std::string& fallback) const { return Has(name) ? String(name) : fallback; }

c10::Scalar OpAttrs::ScalarValue(const std::string& name) const {
  const Value& v = Get(name);
  if (v.kind == Value::Kind::Integer) return c10::Scalar(v.integer);
  if (v.kind == Value::Kind::Number) return c10::Scalar(v.number);
  if (v.kind == Value::Kind::Bool) return c10::Scalar(v.boolean);
  throw BadAttr(name, "a number");
}

std::optional<c10::ScalarType> OpAttrs::Dtype(const std::string& name) const {
  if (!Has(name)) return std::nullopt;
  std::string text = String(name, "");
  auto parsed = ParseDtype(text);
  if (!parsed) throw std::invalid_argument("attribute '" + name + "': unknown dtype '" + text + "'");
  return parsed;
}

}  // namespace torch_dpo
