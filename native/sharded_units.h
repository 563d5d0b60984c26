// ZeRO-3 units: groups of a module's parameters (one per decoder layer) stored sharded at rest. Each
// rank keeps its slice of a unit's flat values; gather() all-gathers the unit and points its
// parameters at the full buffer, free() points them at empty tensors again, reduceGrads() reduce-
// scatters the unit's gradients into this rank's gradient slice and releases them. The checkpointed
// layer call (layer_checkpoint.cc) gathers around the forward and around the re-run in backward.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "group_state.h"
#include "layer_checkpoint.h"

namespace torch_dpo {

struct UnitOptions {
  // false: no gradient slices (the fp32 masters of bf16 mixed precision: their gradients are the
  // working copy's units').
  bool grads = true;
  // The gradient slices' dtype, and the dtype of the reduce-scatter (bf16 weights, fp32 gradients).
  c10::optional<at::ScalarType> gradDtype;
  // Where the slices live and the units gather (default: the parameters' device). A model staged in
  // host memory is sharded onto its GPU unit by unit: no device ever holds the whole model.
  c10::optional<c10::Device> device;
};

// Where the units' collectives spent time, cumulative: seconds a gather was waited for (a prefetched
// one that is done costs nothing) and seconds in gradient reduce-scatters (blocking).
struct UnitStats {
  double gatherWaitSeconds = 0;
  int64_t gathers = 0;
  double reduceSeconds = 0;
  int64_t reduces = 0;
};

class ShardedUnits {
 public:
  ShardedUnits(std::shared_ptr<GroupState> group, std::vector<std::vector<at::Tensor>> units, UnitOptions options = {});

  // Starts the all-gather of unit u unless it is gathered or on its way (no wait).
  void Prefetch(size_t u);
  // Waits for unit u's gather (starting it if needed) and points its parameters at the full values.
  void Gather(size_t u);
  // Points unit u's parameters at empty tensors: only this rank's slice remains.
  void Free(size_t u);
  // Adds this rank's slice of the sum over ranks of unit u's gradients into its gradient slice; the
  // parameters' gradients are released.
  void ReduceGrads(size_t u);
  // Unit u is gathered and its parameters were written (a checkpoint loaded into them): this rank's
  // slice of the new values becomes its shard.
  void Commit(size_t u);

  size_t size() const { return units_.size(); }
  const at::Tensor& shard(size_t u) const { return units_[u].shard; }
  const at::Tensor& gradShard(size_t u) const { return units_[u].gradShard; }
  int64_t chunk(size_t u) const { return units_[u].chunk; }
  UnitStats stats();

 private:
  struct Unit {
    std::vector<at::Tensor> params;
    std::vector<std::vector<int64_t>> shapes;
    int64_t total = 0;
    int64_t chunk = 0;
    at::Tensor shard;
    at::Tensor gradShard;
    at::Tensor buffer;  // the full flat values while gathered, or while a gather is in flight
    WorkPtr pending;
    bool gathered = false;
  };
  void StartGather(Unit& unit);
  void Point(Unit& unit, const at::Tensor& flat);

  std::shared_ptr<GroupState> group_;
  std::vector<Unit> units_;
  std::mutex mutex_;
  UnitStats stats_;
};

Napi::Function DefineShardedUnitsClass(Napi::Env env);
// group.shardUnits(units: NativeTensor[][], options?: { grads?, gradDtype? }) → Promise<NativeShardedUnits>
// (the parameters are sharded at once).
Napi::Value CreateShardedUnits(Napi::Env env, std::shared_ptr<GroupState> group, const Napi::Value& units, const Napi::Value& options);
// The ShardedUnits of a NativeShardedUnits handle.
std::shared_ptr<ShardedUnits> ShardedUnitsFromJs(Napi::Value value);

// runCheckpointed's ZeRO-3 argument { units, unit, next?, previous? } (none: an empty UnitCall).
UnitCall UnitCallFromJs(Napi::Value value);

}  // namespace torch_dpo
