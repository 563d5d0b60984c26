/**
 * trainer_state.json in transformers' TrainerState schema (dataclasses.asdict, keys sorted, indent 2),
 * so that tools reading HF checkpoints (log_history plots, global_step lookups) read ours.
 * torch-dpo's own resume state is torch_dpo_state.json.
 */
export interface HfTrainerStateInput {
  globalStep: number;
  epoch: number;
  maxSteps: number;
  numTrainEpochs: number;
  loggingSteps: number;
  evalSteps: number;
  saveSteps: number;
  trainBatchSize: number;
  tokensSeen: number;
  logHistory: Record<string, number>[];
}

export function hfTrainerState(s: HfTrainerStateInput): Record<string, unknown> {
  const state: Record<string, unknown> = {
    best_global_step: null,
    best_metric: null,
    best_model_checkpoint: null,
    epoch: s.epoch,
    eval_steps: s.evalSteps,
    global_step: s.globalStep,
    is_hyper_param_search: false,
    is_local_process_zero: true,
    is_world_process_zero: true,
    log_history: s.logHistory,
    logging_steps: s.loggingSteps,
    max_steps: s.maxSteps,
    num_input_tokens_seen: s.tokensSeen,
    num_train_epochs: s.numTrainEpochs,
    save_steps: s.saveSteps,
    stateful_callbacks: {},
    total_flos: 0,
    train_batch_size: s.trainBatchSize,
    trial_name: null,
    trial_params: null,
  };
  return Object.fromEntries(Object.keys(state).sort().map((k) => [k, state[k]]));
}
