// The DPO loss family on per-sequence log-probs, with TRL's names and the semantics of
// ../shared/notes/dpo-spec.md. Plain ATen ops: autograd differentiates it.
//
// Inputs are tensors named by the `layout` attribute (comma-separated, in order). Required:
// policyChosen, policyRejected [B]. Optional: referenceChosen, referenceRejected [B] (absent ⇒
// reference-free), chosenLengths, rejectedLengths [B], chosenWpoLogSum, rejectedWpoLogSum [B] (WPO),
// and for LD-DPO the label-aligned per-token tensors chosenTokenLogps, rejectedTokenLogps,
// referenceChosenTokenLogps, referenceRejectedTokenLogps, chosenMask, rejectedMask [B,T].
// Attributes: loss_type (comma-separated), loss_weights, beta, label_smoothing, f_divergence_type,
// f_alpha_divergence_coef, discopop_tau, use_weighting, ld_alpha.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "op_attrs.h"

namespace torch_dpo {

// Outputs: loss (0-d), losses [B], chosenRewards / rejectedRewards [B] (detached), and metrics [6]:
// rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected.
std::vector<std::pair<std::string, at::Tensor>> DpoLoss(const std::vector<at::Tensor>& inputs, const OpAttrs& attrs);

}  // namespace torch_dpo
